"""How long kube-proxy's userspace mode takes to sync 1 to 10,000 Services on one node.

The shared load (benchmarks/common.py: N Services with 2 endpoints, every fourth a NodePort) is
synced by UserspaceProxier, with its real proxy process, in a throwaway namespace
`tbus-bench-<pid>` (the node IP on its loopback, so the proxy can hold NodePorts there):
- render: build_rules + the restore text (pure);
- full sync: the proxy started, N listeners opened through the control socket, one
  iptables-restore of every portal;
- partial sync, repeated: one Service gets one endpoint replaced (a balancer update in the proxy,
  no iptables change), and one Service added (a listener and its rules).
Raw samples and metadata go to results/bench-userspace-<timestamp>.json.

Needs root. Usage: .venv/bin/python benchmarks/userspace_sync.py [--sizes 1 1000 10000] [--repeats 3]
                   [--backend nft|legacy]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testbed.backends.userspace import RESTORE_COMMANDS, PortAllocator, UserspaceProxier, build_rules, restore_text  # noqa: E402
from testbed.net.addressing import node_ip, node_pod_cidr  # noqa: E402
from testbed.net.runner import NamespaceRunner  # noqa: E402
from testbed.proxy.model import NodeInfo  # noqa: E402
from common import NODEPORT_EVERY, NODES, command_output, endpoint, run_metadata, service_ports, sync_row, write_result  # noqa: E402
from iptables_sync import with_endpoint_replaced  # noqa: E402

FORMAT = "testbed-bench-userspace/1"
NODE = NodeInfo(name="node1", ip=node_ip(1), pod_cidr=node_pod_cidr(1), cluster_cidr="10.244.0.0/16")


def run_size(count: int, repeats: int, backend: str) -> list[dict]:
    ports = service_ports(count)
    started = time.perf_counter()
    text = restore_text(build_rules(ports, NODE, PortAllocator()))
    base = {"backend": backend, "services": count, "endpoints": sum(len(p.endpoints) for p in ports),
            "restore_bytes": len(text)}
    samples = [{**base, "phase": "render", "repeat": 0, "seconds_render": time.perf_counter() - started}]
    name = f"tbus-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        runner = NamespaceRunner(netns_path=f"/run/netns/{name}")
        runner.run(["ip", "link", "set", "lo", "up"])
        runner.run(["ip", "addr", "add", f"{NODE.ip}/32", "dev", "lo"])
        with tempfile.TemporaryDirectory(prefix="tbus-bench-") as run_dir:
            proxier = UserspaceProxier(runner, NODE, Path(run_dir), restore_command=RESTORE_COMMANDS[backend])
            try:
                samples.append({**base, "phase": "full", "repeat": 0, **sync_row(proxier.sync(ports))})
                for r in range(repeats):
                    index = (r * 7919) % count
                    ports = with_endpoint_replaced(ports, index, r + 1)
                    samples.append({**base, "phase": "partial-endpoint", "repeat": r,
                                    **sync_row(proxier.sync(ports, frozenset({ports[index].service_key})))})
                    extra = dataclasses.replace(ports[0], name=f"added-{r}", cluster_ip=f"10.111.0.{r + 1}",
                                                service_type="ClusterIP", node_port=None,
                                                endpoints=(endpoint(r, 0), endpoint(r, 1)))
                    ports = [*ports, extra]
                    samples.append({**base, "phase": "partial-add", "repeat": r,
                                    **sync_row(proxier.sync(ports, frozenset({extra.service_key})))})
                proxier.cleanup()
            finally:
                proxier.stop()
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    return samples


def metadata(backend: str) -> dict:
    return {**run_metadata(iptables=command_output(RESTORE_COMMANDS[backend].replace("-restore", ""), "--version"),
                           node=dataclasses.asdict(NODE), nodes=NODES, endpoints_per_service=2,
                           nodeport_every=NODEPORT_EVERY),
            "load_average": os.getloadavg()}


def print_table(samples: list[dict]) -> None:
    header = f"{'services':>8} {'rules':>7} {'render s':>9} {'full s':>8} {'endpoint s':>11} {'add s':>8}"
    print(header)
    print("-" * len(header))
    for count in sorted({s["services"] for s in samples}):
        rows = [s for s in samples if s["services"] == count]

        def median(phase, rows=rows):
            values = sorted(s["seconds_total"] for s in rows if s["phase"] == phase)
            return values[len(values) // 2] if values else float("nan")
        render = next(s for s in rows if s["phase"] == "render")
        full = next(s for s in rows if s["phase"] == "full")
        print(f"{count:>8} {full['rules']:>7} {render['seconds_render']:>9.4f} {full['seconds_total']:>8.3f} "
              f"{median('partial-endpoint'):>11.3f} {median('partial-add'):>8.3f}")


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", choices=sorted(RESTORE_COMMANDS), default="nft")
    parser.add_argument("--out", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("userspace_sync: needs root (a throwaway network namespace)")
    meta = metadata(args.backend)
    samples: list[dict] = []
    for count in args.sizes:
        samples += run_size(count, args.repeats, args.backend)
    print_table(samples)
    return write_result(args.out, "userspace", {"format": FORMAT, "meta": meta, "runs": samples})


if __name__ == "__main__":
    main()
