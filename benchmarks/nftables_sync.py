"""How long kube-proxy's nftables mode takes to render and apply 1 to 10,000 Services, and whether
the first and the last Service answer equally fast.

For each size: Services with 2 endpoints each, spread over 3 nodes (every fourth a NodePort, the
rest ClusterIP; benchmarks/common.py, the load the iptables and SDN benchmarks use), rendered for
node1 and applied by NftablesProxier in a fresh throwaway namespace `tbtest-nftbench-<pid>-<n>`:
- render: `build_ruleset(...).dump()` alone (pure, no I/O);
- full sync: the first sync (list the table, one `nft -f -` transaction of everything);
- partial sync, repeated: one Service gets one endpoint replaced (its chains rewritten, one stale
  endpoint chain flushed, deleted by a later sync);
- connect latency: the first and the last Service's endpoints are made local addresses with a TCP
  server behind them, and a client in the namespace times connections to both ClusterIPs (the
  node's own traffic: nat-output, then the `service-ips` map lookup).
And a kernel probe, independent of kube-proxy's layout: the time to load K chains whose one rule
holds an anonymous verdict map (`numgen random mod 2 vmap { ... }`, one per Service chain in
kube-proxy's layout), an anonymous set without jumps, or jumps without sets, K = 1,000 / 2,000 /
4,000, to show which cost grows faster than K on this kernel.
Raw samples and the run's metadata go to results/bench-nftables-<timestamp>.json.

Needs root. Usage: .venv/bin/python benchmarks/nftables_sync.py [--sizes 1 1000 10000] [--repeats 5]
                   [--connects 200] [--no-probe]
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testbed.backends.nftables import STALE_CHAIN_DELAY, NftablesProxier, build_ruleset  # noqa: E402
from testbed.net.addressing import node_ip, node_pod_cidr  # noqa: E402
from testbed.net.runner import NamespaceRunner  # noqa: E402
from testbed.proxy.model import NodeInfo, ServicePort  # noqa: E402
from common import NODEPORT_EVERY, NODES, command_output, endpoint, run_metadata, service_ports, sync_row, write_result  # noqa: E402

FORMAT = "testbed-bench-nftables/1"
NODE = NodeInfo(name="node1", ip=node_ip(1), pod_cidr=node_pod_cidr(1), cluster_cidr="10.244.0.0/16")
CLIENT_IP = "10.244.1.250"
_names = itertools.count()

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(256)
while True:
    c, _ = s.accept(); c.close()
"""
CLIENT = """
import socket, sys, time
samples = []
for _ in range(int(sys.argv[3])):
    started = time.perf_counter()
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2, source_address=(sys.argv[4], 0))
    samples.append(time.perf_counter() - started)
    c.close()
print(" ".join(f"{s:.7f}" for s in samples))
"""


class Namespace:
    """A throwaway network namespace, removed on exit."""

    def __init__(self):
        self.name = f"tbtest-nftbench-{os.getpid()}-{next(_names)}"

    def __enter__(self) -> NamespaceRunner:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        runner = NamespaceRunner(netns_path=f"/run/netns/{self.name}")
        runner.run(["ip", "link", "set", "lo", "up"])
        return runner

    def __exit__(self, *exc) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


class Clock:
    """The proxier's clock: the benchmark moves it on, so stale chains go without waiting."""
    now = 0.0

    def __call__(self) -> float:
        return self.now


def with_endpoint_replaced(ports: list[ServicePort], index: int, generation: int) -> list[ServicePort]:
    changed = list(ports)
    old = changed[index]
    changed[index] = dataclasses.replace(old, endpoints=(old.endpoints[0], endpoint(index, 1, generation)))
    return changed


def connect_latency(runner: NamespaceRunner, ports: list[ServicePort], connects: int) -> list[dict]:
    """Median connect time to the first and the last Service's ClusterIP, their endpoints local."""
    targets = {"first": ports[0], "last": ports[-1]}
    runner.run(["ip", "link", "add", "tbnb0", "type", "veth", "peer", "name", "tbnb1"])
    for link in ("tbnb0", "tbnb1"):
        runner.run(["ip", "link", "set", link, "up"])
    addresses = {f"{NODE.ip}/16", f"{CLIENT_IP}/32"} | {f"{e.ip}/32" for p in targets.values() for e in p.endpoints}
    for address in sorted(addresses):
        runner.run(["ip", "addr", "add", address, "dev", "tbnb0"])
    runner.run(["ip", "route", "add", "default", "dev", "tbnb0"])
    servers = [runner.popen([sys.executable, "-c", SERVER, e.ip, str(e.port)])
               for e in sorted({e for p in targets.values() for e in p.endpoints})]
    rows = []
    try:
        time.sleep(0.3)
        for which, port in targets.items():
            runner.run([sys.executable, "-c", CLIENT, port.cluster_ip, str(port.port), "20", CLIENT_IP])  # warm up
            out = runner.run([sys.executable, "-c", CLIENT, port.cluster_ip, str(port.port), str(connects), CLIENT_IP])
            samples = [float(s) for s in out.stdout.split()]
            rows.append({"phase": "connect", "target": which, "service": port.name, "cluster_ip": port.cluster_ip,
                         "samples": samples, "median_seconds": statistics.median(samples)})
    finally:
        for server in servers:
            server.kill()
            server.wait()
    return rows


def run_size(count: int, repeats: int, connects: int) -> list[dict]:
    ports = service_ports(count)
    started = time.perf_counter()
    text = build_ruleset(ports, NODE).dump()
    render_seconds = time.perf_counter() - started
    base = {"services": count, "endpoints": sum(len(p.endpoints) for p in ports), "dump_bytes": len(text)}
    samples = [{**base, "phase": "render", "repeat": 0, "seconds_render": render_seconds}]
    clock = Clock()
    with Namespace() as runner:
        proxier = NftablesProxier(runner, NODE, clock=clock)
        full = proxier.sync(ports)
        samples.append({**base, "phase": "full", "repeat": 0, **sync_row(full)})
        print(f"  {count} Services: full sync {full.seconds_render + full.seconds_apply:.3f} s", flush=True)
        for r in range(repeats):
            index = (r * 7919) % count
            ports = with_endpoint_replaced(ports, index, r + 1)
            clock.now += STALE_CHAIN_DELAY      # the previous change's stale chain is deleted in this sync
            result = proxier.sync(ports, frozenset({(ports[index].namespace, ports[index].name)}))
            samples.append({**base, "phase": "partial", "repeat": r, **sync_row(result)})
        if connects:
            samples += [{**base, **row} for row in connect_latency(runner, ports, connects)]
        proxier.cleanup()
    return samples


PROBE_RULES = {
    # kube-proxy's dispatch: an anonymous verdict map with jumps in every Service chain
    "anonymous_vmaps": "numgen random mod 2 vmap {{ 0 : goto a , 1 : goto b }}",
    # an anonymous set and no jump at all: if this grows alike, the cost is creating anonymous sets
    "anonymous_sets": "ip daddr {{ 10.0.{hi}.{lo} , 10.1.{hi}.{lo} }} accept",
    # the same jumps without any set: the control
    "plain_jumps": "meta mark 1 goto a",
}


def kernel_probe(sizes=(1000, 2000, 4000)) -> list[dict]:
    """Load K chains of one rule each, in a fresh namespace, for each kind of rule above."""
    rows = []
    for kind, template in PROBE_RULES.items():
        for k in sizes:
            lines = ["add table ip tbprobe", "add chain ip tbprobe a", "add chain ip tbprobe b"]
            lines += [f"add chain ip tbprobe c{i}" for i in range(k)]
            lines += [f"add rule ip tbprobe c{i} " + template.format(hi=i // 250, lo=i % 250) for i in range(k)]
            with Namespace() as runner:
                started = time.perf_counter()
                runner.run(["nft", "-f", "-"], input="\n".join(lines) + "\n", timeout=None)
                seconds = time.perf_counter() - started
            rows.append({"phase": "kernel_probe", "kind": kind, "rules": k, "seconds": seconds})
            print(f"  kernel probe: {k} rules with {kind.replace('_', ' ')} in {seconds:.2f} s", flush=True)
    return rows


def metadata() -> dict:
    return run_metadata(nft=command_output("nft", "--version"), node=dataclasses.asdict(NODE), nodes=NODES,
                        endpoints_per_service=2, nodeport_every=NODEPORT_EVERY, load_average_at_start=os.getloadavg())


def print_table(samples: list[dict]) -> None:
    header = (f"{'services':>8} {'rules':>7} {'elements':>8} {'chains':>7} {'render s':>9} {'full s':>8} "
              f"{'partial s':>10} {'partial ops':>11} {'connect first/last ms':>22}")
    print(header)
    print("-" * len(header))
    for count in sorted({s["services"] for s in samples if "services" in s}):
        rows = [s for s in samples if s.get("services") == count]
        render = next(s for s in rows if s["phase"] == "render")
        full = next(s for s in rows if s["phase"] == "full")
        partial = sorted(s["seconds_total"] for s in rows if s["phase"] == "partial")
        median = statistics.median(partial) if partial else float("nan")
        ops = max((s["details"]["operations"] for s in rows if s["phase"] == "partial"), default=0)
        connect = {s["target"]: s["median_seconds"] * 1000 for s in rows if s["phase"] == "connect"}
        latency = f"{connect.get('first', float('nan')):.3f} / {connect.get('last', float('nan')):.3f}"
        print(f"{count:>8} {full['rules']:>7} {full['details']['elements']:>8} {full['details']['chains']:>7} "
              f"{render['seconds_render']:>9.4f} {full['seconds_total']:>8.3f} {median:>10.4f} {ops:>11} {latency:>22}")


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--connects", type=int, default=200, help="connections per latency target (0: skip)")
    parser.add_argument("--no-probe", action="store_true", help="skip the anonymous verdict map probe")
    parser.add_argument("--out", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("nftables_sync: needs root (throwaway network namespaces)")
    meta = metadata()
    samples: list[dict] = []
    for count in args.sizes:
        samples += run_size(count, args.repeats, args.connects)
    if not args.no_probe:
        samples += kernel_probe()
    meta["load_average_at_end"] = os.getloadavg()
    print_table(samples)
    return write_result(args.out, "nftables", {"format": FORMAT, "meta": meta, "runs": samples})


if __name__ == "__main__":
    main()
