"""Benchmark: bring-up time of an emulated cluster with 3 nodes x 6 pods (target <= 15 s).

Measured per run: the empty cluster's start (OVS, Mininet, nodes, cluster DNS pods Ready), then a
Deployment of 18 replicas (6 per node) applied until every pod is Ready and the data plane synced,
then a check that a client reaches all 18 through the Service. Written to results/ as JSON with the
datapath, proxy mode and kernel recorded.

    sudo .venv/bin/python benchmarks/cluster_bringup.py [--runs 3] [--proxy-mode iptables]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testbed import Cluster  # noqa: E402
from common import write_result  # noqa: E402

WORKLOAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 18
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
"""


def one_run(proxy_mode: str) -> dict:
    started = time.monotonic()
    with Cluster(topo="default", proxy_mode=proxy_mode, seed=1) as cluster:
        up = time.monotonic() - started
        cluster.apply(WORKLOAD)
        cluster.wait_ready(60)
        pods_ready = time.monotonic() - started
        client = cluster.client()
        seen = {client.cmd("curl -s -m 2 http://web/hostname.html").strip() for _ in range(120)}
        names = {p["metadata"]["name"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("web-")}
        per_node = {}
        for pod in cluster.get("pods"):
            if pod["metadata"]["name"].startswith("web-"):
                per_node[pod["spec"]["nodeName"]] = per_node.get(pod["spec"]["nodeName"], 0) + 1
        datapath = cluster.emulation.datapath.type
    return {"cluster_up_seconds": round(up, 3), "bring_up_with_18_pods_seconds": round(pods_ready, 3),
            "pods_per_node": per_node, "pods_reached": len(seen & names), "pods": len(names),
            "datapath": datapath, "teardown_seconds": round(time.monotonic() - started - pods_ready, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--proxy-mode", default="iptables")
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    runs = [one_run(args.proxy_mode) for _ in range(args.runs)]
    for i, run in enumerate(runs, 1):
        print(f"run {i}: cluster up {run['cluster_up_seconds']} s, 3x6 pods Ready {run['bring_up_with_18_pods_seconds']} s "
              f"({run['pods_reached']}/{run['pods']} reached through the Service), teardown {run['teardown_seconds']} s")
    median = statistics.median(r["bring_up_with_18_pods_seconds"] for r in runs)
    print(f"median bring-up of 3 nodes x 6 pods: {median} s (target <= 15 s)")
    report = {"benchmark": "cluster_bringup", "format": 1, "proxy_mode": args.proxy_mode,
              "kernel": platform.release(), "python": platform.python_version(),
              "ovs": subprocess.run(["ovs-vsctl", "--version"], capture_output=True, text=True).stdout.split("\n")[0],
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True).stdout.strip(),
              "runs": runs, "median_bring_up_seconds": median}
    write_result(args.out, "bringup", report)


if __name__ == "__main__":
    main()
