"""links: shaped topology links (Mininet TCLink's bw, delay, loss) seen through a Service.

The default topology with node2's link shaped (`[node2, fabric, {bw: ..., delay: ..., loss: ...}]`,
testbed/net/links.py); an iperf3 server and an echo server on node2, the client on node1. Samples:
`bulk_gbps` through the VIP (against the configured bw), `connect_us` to the echo Service's VIP
(against the configured delay: each connect crosses the shaped link twice), `http_errors` out of
`requests` (against the configured loss). HTB (bw) works on every kernel here; delay and loss
need netem: where the kernel lacks it, those points are recorded as not run, naming `testbed vm`.

    python experiments/links.py --modes iptables --bws 10,100 --delays 0ms,5ms
"""
from __future__ import annotations

import sys

from testbed.experiments import NotRunnable
from testbed.experiments.common import WORKLOADS, iperf3, mode_labels, probe_pod, run_workload
from testbed.net.links import missing_support, parse_shape
from testbed.results import sample
from testbed.topology import load_topology, parse_topology

NAME = "links"
DESCRIPTION = "TCLink-style shaped links (bw, delay, loss) measured through a Service"
GRID = {"mode": mode_labels(), "bw": [10.0, 100.0], "delay": ["0ms", "5ms"], "loss": [0.0]}
QUICK = {"bw": [50.0], "delay": ["0ms"]}
REPEATS = 1


def shaped_topology(point):
    base = load_topology("default")
    params = {"bw": point["bw"]}
    if point["delay"] != "0ms":
        params["delay"] = point["delay"]
    if point["loss"]:
        params["loss"] = point["loss"]
    links = [[a, b, params] if "node2" in (a, b) else [a, b] for a, b in base.links]
    return parse_topology({"name": "default-shaped", "nodes": list(base.nodes), "switches": list(base.switches),
                           "links": links, "external": base.external}), parse_shape(params)


def setup(point, ctx):
    topology, shape = shaped_topology(point)
    reason = missing_support(shape)
    if reason:
        raise NotRunnable(reason)
    cluster = ctx.cluster_for(point["mode"], topo=topology, cluster_dns=False)
    cluster.start()
    cluster.apply([
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "iperf", "labels": {"app": "iperf"}},
         "spec": {"nodeSelector": {"kubernetes.io/hostname": "node2"},
                  "containers": [{"name": "iperf", "image": "networkstatic/iperf3", "ports": [{"containerPort": 5201}]}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
         "spec": {"nodeSelector": {"kubernetes.io/hostname": "node2"},
                  "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}},
        probe_pod("load", node="node1"),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "iperf"},
         "spec": {"selector": {"app": "iperf"}, "ports": [{"port": 5201}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}])
    cluster.wait_ready(60)
    return cluster


def measure(cluster, point, ctx):
    client = cluster.pod("load")
    result = iperf3(client, cluster.get("svc", "iperf")["spec"]["clusterIP"], ctx.pick(3, 2))
    yield sample("bulk_gbps", result["gbps"], "Gbit/s", target="vip", configured_mbit=point["bw"])
    vip = cluster.get("svc", "web")["spec"]["clusterIP"]
    connects = run_workload(client, WORKLOADS / "timed_targets.py", "connect", ctx.pick(200, 50), 5, f"vip={vip}:80")
    for seq, value in enumerate(connects["samples_us"]["vip"]):
        yield sample("connect_us", value, "us", target="vip", seq=seq)
    yield sample("connect_errors", connects["errors"]["vip"], "connections", target="vip")


def teardown(cluster):
    cluster.stop()


if __name__ == "__main__":
    from testbed.experiments import script_main
    sys.exit(script_main(NAME, sys.argv[1:]))
