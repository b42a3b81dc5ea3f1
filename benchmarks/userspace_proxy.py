"""The userspace proxy's cost in a running cluster: iperf3 throughput and new connections per second
through a ClusterIP, against the same paths straight to the pod IP.

Anchor: kubernetes PR 16344 (2015) measured the userspace proxy at 36 % of direct pod-to-pod
throughput and the iptables proxy at 96 %. Targets here: >= 30 % of direct iperf3 throughput and
>= 2,000 new connections/s through the proxy.

One 3-node cluster in userspace mode (the default topology): an iperf3 server pod on node2 and a
client pod on node1 (so the client's node proxies: pod -> node1's proxy -> node2's pod), then
`iperf3 -c <pod IP | ClusterIP> -t SECONDS` REPEATS times each, alternating; then an echo
Deployment of 3 replicas and testbed/workloads/conn_rate.py (one HTTP request per connection,
CONCURRENCY clients) against the pod IP of one replica and against the ClusterIP.
Raw samples and metadata go to results/bench-userspace-proxy-<timestamp>.json.

With --services N it then adds N selector-less Services (endpoints: the echo pods) and times a
new connection's request (connect, GET, first bytes) to the first and to the last of them.

Needs root. Usage: .venv/bin/python benchmarks/userspace_proxy.py [--seconds 5] [--repeats 3]
                   [--concurrency 4] [--mode userspace] [--services N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testbed import Cluster  # noqa: E402
from testbed.experiments.common import connection_rate, data_plane_label, deployment  # noqa: E402
from common import command_output, first_line, run_metadata, write_result  # noqa: E402

FORMAT = "testbed-bench-userspace-proxy/1"
ANCHOR = {"source": "kubernetes PR 16344 (2015)", "userspace_ratio": 0.36, "iptables_ratio": 0.96}


def iperf_manifests() -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "iperf", "labels": {"app": "iperf"}},
         "spec": {"nodeSelector": {"kubernetes.io/hostname": "node2"},
                  "containers": [{"name": "iperf", "image": "networkstatic/iperf3", "ports": [{"containerPort": 5201}]}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "load"},
         "spec": {"nodeSelector": {"kubernetes.io/hostname": "node1"},
                  "containers": [{"name": "load", "image": "busybox", "command": ["sleep", "infinity"]}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "iperf"},
         "spec": {"selector": {"app": "iperf"}, "ports": [{"port": 5201}]}},
    ]


def iperf(client, address: str, seconds: int) -> dict:
    output = client.cmd(f"iperf3 -c {address} -p 5201 -t {seconds} -J")
    result = json.loads(output[output.index("{"):])
    if "error" in result:
        return {"error": result["error"]}
    end = result["end"]
    return {"gbps": end["sum_received"]["bits_per_second"] / 1e9, "retransmits": end["sum_sent"].get("retransmits", 0)}


def run(mode: str, seconds: int, repeats: int, concurrency: int, services: int) -> tuple[dict, list[dict]]:
    rows: list[dict] = []
    with Cluster(topo="default", proxy_mode=mode, seed=1) as cluster:
        cluster.apply(iperf_manifests())
        label = data_plane_label(cluster)
        client = cluster.pod("load")
        targets = {"pod-ip": cluster.get("pod", "iperf")["status"]["podIP"],
                   "cluster-ip": cluster.get("svc", "iperf")["spec"]["clusterIP"]}
        for repeat in range(repeats):
            for path, address in targets.items():
                rows.append({**label, "metric": "throughput", "path": path, "repeat": repeat,
                             **iperf(client, address, seconds)})
        cluster.apply(deployment("echo", 3))      # a Deployment and its Service
        echo_pod = sorted(p["status"]["podIP"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("echo-"))[0]
        conn_targets = {"pod-ip": echo_pod, "cluster-ip": cluster.get("svc", "echo")["spec"]["clusterIP"]}
        for repeat in range(repeats):
            for path, address in conn_targets.items():
                result = connection_rate(client, address, 80, seconds, concurrency)
                rows.append({**label, "metric": "connection-rate", "path": path, "repeat": repeat,
                             "connections_per_second": result["ok"] / seconds, "errors": result["errors"],
                             "concurrency": concurrency, "backends": result.get("backends", {})})
        if services:
            rows += [{**label, **row} for row in first_and_last_latency(cluster, client, services)]
    return label, rows


LATENCY_PROBE = (
    "import socket,sys,time\n"
    "host=sys.argv[1]; out=[]\n"
    "for _ in range(int(sys.argv[2])):\n"
    "    t=time.perf_counter(); s=socket.create_connection((host,80),timeout=3)\n"
    "    s.sendall(b'GET /hostname.html HTTP/1.0\\r\\n\\r\\n'); d=s.recv(4096); s.close()\n"
    "    out.append(time.perf_counter()-t)\n"
    "out.sort(); print(out[len(out)//2])\n")


def first_and_last_latency(cluster, client, count: int, samples: int = 20) -> list[dict]:
    """`count` selector-less Services whose endpoints are the echo pods; the median time of a new
    connection's request to the first and to the last of them (connect, GET, first bytes back)."""
    pods = sorted(p["status"]["podIP"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("echo-"))
    objects = []
    for i in range(count):
        meta = {"name": f"lat-{i}", "namespace": "default"}
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"ports": [{"port": 80}]}})
        objects.append({"apiVersion": "v1", "kind": "Endpoints", "metadata": dict(meta),
                        "subsets": [{"addresses": [{"ip": ip} for ip in pods], "ports": [{"port": 80}]}]})
    started = time.monotonic()
    cluster.apply(objects)
    applied = time.monotonic() - started
    rows = []
    probe = Path(tempfile.mkdtemp(prefix="tb-latency-")) / "probe.py"   # pods see the host's files
    probe.write_text(LATENCY_PROBE)
    for which, index in (("first", 0), ("last", count - 1)):
        vip = cluster.get("svc", f"lat-{index}")["spec"]["clusterIP"]
        seconds = float(client.cmd(f"{sys.executable} -I -S {probe} {vip} {samples}").split()[-1])
        rows.append({"metric": "request-latency", "path": which, "services": count, "seconds": seconds,
                     "apply_seconds": applied})
    return rows


def summary(rows: list[dict]) -> dict:
    def mean(metric, path, key):
        values = [r[key] for r in rows if r["metric"] == metric and r["path"] == path and key in r]
        return sum(values) / len(values) if values else float("nan")
    direct, proxied = mean("throughput", "pod-ip", "gbps"), mean("throughput", "cluster-ip", "gbps")
    return {"direct_gbps": direct, "proxied_gbps": proxied, "throughput_ratio": proxied / direct if direct else float("nan"),
            "direct_connections_per_second": mean("connection-rate", "pod-ip", "connections_per_second"),
            "proxied_connections_per_second": mean("connection-rate", "cluster-ip", "connections_per_second"),
            **{f"request_latency_{r['path']}_of_{r['services']}": r["seconds"] for r in rows
               if r["metric"] == "request-latency"}}


def metadata() -> dict:
    return {**run_metadata(iperf3=command_output("iperf3", "--version"), ovs=first_line("ovs-vswitchd", "--version")),
            "load_average": os.getloadavg(), "anchor": ANCHOR}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="userspace")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--services", type=int, default=0,
                        help="also add N Services and time a request to the first and the last (0: skip)")
    parser.add_argument("--out", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("userspace_proxy: needs root (an emulated cluster)")
    meta = metadata()
    started = time.monotonic()
    label, rows = run(args.mode, args.seconds, args.repeats, args.concurrency, args.services)
    result = summary(rows)
    meta["seconds_total"] = time.monotonic() - started
    print(json.dumps({"mode": label, **result, "anchor": ANCHOR}, indent=1))
    return write_result(args.out, f"{args.mode}-proxy", {"format": FORMAT, "meta": meta, "summary": result, "runs": rows})


if __name__ == "__main__":
    main()
