"""How long kube-proxy's IPVS mode takes to render and apply 1 to 10,000 Services on one node.

The load is the shared one (benchmarks/common.py: N Services with 2 endpoints, every fourth a
NodePort), rendered for node1 and applied by IpvsProxier in a throwaway namespace
`tbipvs-bench-<pid>`:
- render: `build_state(...)` plus the ipvsadm, ipset and iptables texts (pure, no I/O);
- full sync: the first sync (sysctls, kube-ipvs0, reads, one ipset restore, one ip -batch, one
  ipvsadm-restore, one iptables-restore);
- partial sync, repeated: one Service gets one endpoint replaced (one real server added, the idle
  old one deleted at once).
Raw samples and the run's metadata go to results/bench-ipvs-<timestamp>.json.

Needs root and a kernel with IPVS: this machine's has none, so run it under `testbed vm`, where
times come from qemu's software emulation (TCG) when KVM does not work: not comparable with host
numbers (the metadata says which accelerator ran).
Usage: .venv/bin/python benchmarks/ipvs_sync.py [--sizes 1 1000 10000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testbed.backends.ipvs import IpvsProxier, address_text, build_state, ipset_text, unavailable  # noqa: E402
from testbed.net.addressing import node_ip, node_pod_cidr  # noqa: E402
from testbed.net.runner import NamespaceRunner  # noqa: E402
from testbed.proxy.model import NodeInfo  # noqa: E402
from common import NODEPORT_EVERY, NODES, command_output, run_metadata, service_ports, sync_row, write_result  # noqa: E402
from iptables_sync import with_endpoint_replaced  # noqa: E402

FORMAT = "testbed-bench-ipvs/1"
NODE = NodeInfo(name="node1", ip=node_ip(1), pod_cidr=node_pod_cidr(1), cluster_cidr="10.244.0.0/16")


def run_size(count: int, repeats: int) -> list[dict]:
    ports = service_ports(count)
    started = time.perf_counter()
    state = build_state(ports, NODE)
    texts = (state.ipvsadm_text(), ipset_text(state.ipset_entries()), address_text(state.bind_addresses),
             state.iptables_text())
    render_seconds = time.perf_counter() - started
    base = {"services": count, "endpoints": sum(len(p.endpoints) for p in ports),
            "virtual_servers": len(state.virtual_servers), "real_servers": state.real_server_count,
            "restore_bytes": sum(len(t) for t in texts)}
    samples = [{**base, "phase": "render", "repeat": 0, "seconds_render": render_seconds}]
    name = f"tbipvs-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        runner = NamespaceRunner(netns_path=f"/run/netns/{name}")
        # IPVS refuses real servers whose address type is not unicast (ip_vs_new_dest): a fresh
        # namespace has no local routing table until loopback is up.
        runner.run(["ip", "link", "set", "lo", "up"])
        proxier = IpvsProxier(runner, NODE)
        samples.append({**base, "phase": "full", "repeat": 0, **sync_row(proxier.sync(ports))})
        for r in range(repeats):
            changed = with_endpoint_replaced(ports, (r * 7919) % count, r + 1)
            key = changed[(r * 7919) % count].service_key
            samples.append({**base, "phase": "partial", "repeat": r,
                            **sync_row(proxier.sync(changed, frozenset({key})))})
            ports = changed
        proxier.cleanup()
        proxier.stop()
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    return samples


def metadata() -> dict:
    vm = json.loads(os.environ["TESTBED_VM_INFO"]) if os.environ.get("TESTBED_VM_INFO") else None
    return run_metadata(ipvsadm=command_output("ipvsadm", "--version"), ipset=command_output("ipset", "--version"),
                        iptables=command_output("iptables", "--version"), vm=vm,
                        accelerator=(vm or {}).get("accelerator", "none (host)"), note=(vm or {}).get("note", ""),
                        node=dataclasses.asdict(NODE), nodes=NODES, endpoints_per_service=2,
                        nodeport_every=NODEPORT_EVERY)


def print_table(samples: list[dict]) -> None:
    header = f"{'services':>8} {'VS+RS':>7} {'render s':>9} {'full s':>8} {'partial s':>10} {'partial lines':>13}"
    print(header)
    print("-" * len(header))
    for count in sorted({s["services"] for s in samples}):
        rows = [s for s in samples if s["services"] == count]
        render = next(s for s in rows if s["phase"] == "render")
        full = next(s for s in rows if s["phase"] == "full")
        partial = sorted(s["seconds_total"] for s in rows if s["phase"] == "partial")
        median = partial[len(partial) // 2] if partial else float("nan")
        written = max((s["rules_written"] for s in rows if s["phase"] == "partial"), default=0)
        print(f"{count:>8} {full['rules']:>7} {render['seconds_render']:>9.4f} {full['seconds_total']:>8.3f} "
              f"{median:>10.3f} {written:>13}")


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("ipvs_sync: needs root (a throwaway network namespace)")
    reason = unavailable()
    if reason:
        raise SystemExit(f"ipvs_sync: {reason}")
    meta = metadata()
    samples: list[dict] = []
    for count in args.sizes:
        samples += run_size(count, args.repeats)
    print_table(samples)
    return write_result(args.out, "ipvs", {"format": FORMAT, "meta": meta, "runs": samples})


if __name__ == "__main__":
    main()
