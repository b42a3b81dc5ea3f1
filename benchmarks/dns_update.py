"""How long cluster DNS takes to load and to follow a one-Service change, at 10 to 10,000 Services.

For each size: Services with 2 endpoints each (every tenth one headless, with a named port),
their Pods, then
- compute: `cluster_records()` over all objects (the pure part, done on every change);
- initial load: one bulk `unbound-control local_datas` into a fresh unbound (UnboundServer.start);
- one-Service changes, repeated: a ClusterIP Service gets a new clusterIP, and a headless Service
  gets one endpoint replaced. Each sample keeps the recompute time, the size of the difference,
  the control-call time (UnboundServer.sync) and the time until a query from inside the namespace
  sees the new answer.
Raw samples are written, with the run's metadata, to results/bench-dns-<timestamp>.json.

Needs root (a throwaway network namespace `tbdns-bench-<pid>`, deleted at the end).
Usage: .venv/bin/python benchmarks/dns_update.py [--sizes 10 1000 10000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testbed.dns import UnboundServer, cluster_records, dns_query  # noqa: E402
from testbed.dns.records import RecordDiff  # noqa: E402
from testbed.net.addressing import CLUSTER_CIDR, SERVICE_CIDR  # noqa: E402
from testbed.net.runner import NamespaceRunner  # noqa: E402
from common import first_line, run_metadata, write_result  # noqa: E402

FORMAT = "testbed-bench-dns/1"
HEADLESS_EVERY = 10
ENDPOINTS_PER_SERVICE = 2


def cluster_objects(count: int) -> tuple[list[dict], list[dict], list[dict]]:
    """`count` Services (every tenth headless), one EndpointSlice and two Pods each."""
    services, slices, pods = [], [], []
    for i in range(count):
        name, headless = f"svc-{i}", i % HEADLESS_EVERY == 0
        cluster_ip = "None" if headless else str(SERVICE_CIDR.network_address + 10 + i)
        services.append({"metadata": {"name": name, "namespace": "default"},
                         "spec": {"clusterIP": cluster_ip,
                                  "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
        ips = [pod_ip(i, k) for k in range(ENDPOINTS_PER_SERVICE)]
        slices.append(endpoint_slice(name, ips))
        pods += [{"metadata": {"name": f"{name}-{k}", "namespace": "default"}, "spec": {},
                  "status": {"phase": "Running", "podIP": ip}} for k, ip in enumerate(ips)]
    return services, slices, pods


def pod_ip(service_index: int, k: int) -> str:
    return str(CLUSTER_CIDR.network_address + 256 + service_index * ENDPOINTS_PER_SERVICE + k)


def endpoint_slice(service_name: str, ips: list[str]) -> dict:
    return {"addressType": "IPv4",
            "metadata": {"name": f"{service_name}-a", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


def measure_change(server: UnboundServer, runner: NamespaceRunner, objects, qname: str, expect: str) -> dict:
    """Recompute, sync, and poll from inside the namespace until `qname` answers `expect`."""
    started = time.perf_counter()
    records = cluster_records(*objects)
    computed = time.perf_counter()
    diff = RecordDiff.between(server.records, records)
    sync_seconds = server.sync(records)
    while True:
        response, _ = dns_query(runner, qname, "A", "127.0.0.1")
        if expect in [rr.to_text() for rrset in response.answer for rr in rrset]:
            break
        if time.perf_counter() - started > 10:
            raise TimeoutError(f"{qname} never answered {expect}")
    visible = time.perf_counter()
    return {"compute_seconds": computed - started, "names_removed": len(diff.removed_names),
            "names_added": len(diff.added), "sync_seconds": sync_seconds,
            "visible_seconds": visible - started}


def run_size(count: int, repeats: int, runner: NamespaceRunner, workdir: Path) -> dict:
    services, slices, pods = cluster_objects(count)
    started = time.perf_counter()
    records = cluster_records(services, slices, pods)
    compute_seconds = time.perf_counter() - started
    server = UnboundServer(workdir / f"unbound-{count}", runner, listen="127.0.0.1", port=53)
    try:
        launched = time.perf_counter()
        load_seconds = server.start(records)
        start_seconds = time.perf_counter() - launched
        rss_kib = rss_of(server.pid)
        changes = []
        cluster_ip_index = 1                     # svc-1: a ClusterIP Service
        headless_index = 0                       # svc-0: a headless Service
        for r in range(repeats):
            new_ip = str(SERVICE_CIDR.network_address + 20000 + r)
            services[cluster_ip_index] = {**services[cluster_ip_index],
                                          "spec": {**services[cluster_ip_index]["spec"], "clusterIP": new_ip}}
            sample = measure_change(server, runner, (services, slices, pods),
                                    f"svc-{cluster_ip_index}.default.svc.cluster.local.", new_ip)
            changes.append({"kind": "cluster_ip", "repeat": r, **sample})

            new_endpoint = str(CLUSTER_CIDR.network_address + 60000 + r)
            ips = [pod_ip(headless_index, 0), new_endpoint]
            slices[headless_index] = endpoint_slice(f"svc-{headless_index}", ips)
            sample = measure_change(server, runner, (services, slices, pods),
                                    f"svc-{headless_index}.default.svc.cluster.local.", new_endpoint)
            changes.append({"kind": "headless_endpoint", "repeat": r, **sample})
    finally:
        server.stop()
    return {"services": count, "headless": sum(1 for s in services if s["spec"]["clusterIP"] == "None"),
            "names": len(records), "records": records.record_count(),
            "compute_seconds": compute_seconds, "initial_load_seconds": load_seconds,
            "start_seconds": start_seconds, "unbound_rss_kib": rss_kib, "changes": changes}


def rss_of(pid: int) -> int | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def metadata() -> dict:
    return run_metadata(unbound=first_line("unbound", "-V"))


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces)")

    netns = f"tbdns-bench-{os.getpid()}"
    meta = metadata()
    runs = []
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        runner = NamespaceRunner(netns_path=f"/run/netns/{netns}")
        with tempfile.TemporaryDirectory(prefix="tbdns-") as workdir:
            for count in args.sizes:
                run = run_size(count, args.repeats, runner, Path(workdir))
                runs.append(run)
                median = sorted(c["visible_seconds"] for c in run["changes"])[len(run["changes"]) // 2]
                print(f"{count:>6} services: {run['records']:>6} records, compute {run['compute_seconds']:.3f}s, "
                      f"load {run['initial_load_seconds']:.3f}s, change visible in {median * 1000:.1f} ms (median)")
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=False)

    return write_result(args.out, "dns", {"format": FORMAT, "meta": meta, "runs": runs})


if __name__ == "__main__":
    main()
