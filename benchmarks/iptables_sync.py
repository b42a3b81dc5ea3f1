"""How long kube-proxy's iptables mode takes to render and apply 1 to 10,000 Services, per backend.

For each backend (iptables-nft, iptables-legacy) and size: Services with 2 endpoints each, spread
over 3 nodes (every fourth one a NodePort, the rest ClusterIP), rendered for node1 and applied by
IptablesProxier in a fresh throwaway namespace `tbipt-bench-<pid>`:
- render: `build_ruleset(...).restore_text()` alone (pure, no I/O);
- full sync: the first sync (iptables-save + one iptables-restore of everything);
- partial sync, repeated: one Service gets one endpoint replaced; only its chains are rewritten
  (plus the top-level chains, which kube-proxy always rewrites whole).
Raw samples and the run's metadata go to results/bench-iptables-<timestamp>.json.

Needs root. Usage: .venv/bin/python benchmarks/iptables_sync.py [--sizes 1 1000 10000]
                   [--backends nft legacy] [--repeats 3]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testbed.net.addressing import node_ip, node_pod_cidr  # noqa: E402
from testbed.net.runner import NamespaceRunner  # noqa: E402
from testbed.backends.iptables import IptablesProxier, build_ruleset  # noqa: E402
from testbed.proxy.model import NodeInfo, ServicePort  # noqa: E402
from common import NODEPORT_EVERY, NODES, command_output, endpoint, run_metadata, service_ports, sync_row, write_result  # noqa: E402

FORMAT = "testbed-bench-iptables/1"
BACKENDS = {"nft": "iptables-nft-restore", "legacy": "iptables-legacy-restore"}
NODE = NodeInfo(name="node1", ip=node_ip(1), pod_cidr=node_pod_cidr(1), cluster_cidr="10.244.0.0/16")


def with_endpoint_replaced(ports: list[ServicePort], index: int, generation: int) -> list[ServicePort]:
    changed = list(ports)
    old = changed[index]
    changed[index] = dataclasses.replace(old, endpoints=(old.endpoints[0], endpoint(index, 1, generation)))
    return changed


def run_backend_size(backend: str, count: int, repeats: int) -> list[dict]:
    ports = service_ports(count)
    started = time.perf_counter()
    text = build_ruleset(ports, NODE).restore_text()
    render_seconds = time.perf_counter() - started
    base = {"backend": backend, "restore_command": BACKENDS[backend], "services": count,
            "endpoints": sum(len(p.endpoints) for p in ports), "restore_bytes": len(text)}
    samples = [{**base, "phase": "render", "repeat": 0, "seconds_render": render_seconds}]
    name = f"tbipt-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        runner = NamespaceRunner(netns_path=f"/run/netns/{name}")
        proxier = IptablesProxier(runner, NODE, BACKENDS[backend])
        samples.append({**base, "phase": "full", "repeat": 0, **sync_row(proxier.sync(ports))})
        for r in range(repeats):
            ports = with_endpoint_replaced(ports, (r * 7919) % count, r + 1)
            samples.append({**base, "phase": "partial", "repeat": r, **sync_row(proxier.sync(ports))})
        proxier.cleanup()
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    return samples


def metadata(backends: list[str]) -> dict:
    return run_metadata(iptables={b: command_output(BACKENDS[b].replace("-restore", ""), "--version") for b in backends},
                        node=dataclasses.asdict(NODE), nodes=NODES, endpoints_per_service=2,
                        nodeport_every=NODEPORT_EVERY)


def print_table(samples: list[dict]) -> None:
    header = f"{'backend':8} {'services':>8} {'rules':>7} {'render s':>9} {'full s':>8} {'partial s':>10} {'partial rules':>13}"
    print(header)
    print("-" * len(header))
    keys = sorted({(s["backend"], s["services"]) for s in samples}, key=lambda k: (k[0], k[1]))
    for backend, count in keys:
        rows = [s for s in samples if s["backend"] == backend and s["services"] == count]
        render = next(s for s in rows if s["phase"] == "render")
        full = next(s for s in rows if s["phase"] == "full")
        partial = sorted(s["seconds_total"] for s in rows if s["phase"] == "partial")
        median = partial[len(partial) // 2] if partial else float("nan")
        written = max((s["rules_written"] for s in rows if s["phase"] == "partial"), default=0)
        print(f"{backend:8} {count:>8} {full['rules']:>7} {render['seconds_render']:>9.4f} "
              f"{full['seconds_total']:>8.3f} {median:>10.3f} {written:>13}")


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 1000, 10000])
    parser.add_argument("--backends", nargs="+", choices=sorted(BACKENDS), default=["nft", "legacy"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("iptables_sync: needs root (a throwaway network namespace)")
    meta = metadata(args.backends)
    samples: list[dict] = []
    for backend in args.backends:
        for count in args.sizes:
            samples += run_backend_size(backend, count, args.repeats)
    print_table(samples)
    return write_result(args.out, "iptables", {"format": FORMAT, "meta": meta, "runs": samples})


if __name__ == "__main__":
    main()
