"""throughput: iperf3 bulk throughput through a Service VIP against the same path by pod IP, per mode.

An iperf3 server pod on node2 with its Service, a client pod on node1: the VIP path crosses the
same nodes as the pod-IP path, plus the Service translation. Conntrack keeps each connection's NAT
decision after the first packet, so the ratio shows the per-packet cost of the translated path.
Samples: `bulk_gbps` and `retransmits`, target vip / pod-ip.

    python experiments/throughput.py --modes iptables,sdn --repeat 3
"""
from __future__ import annotations

import sys

from testbed.experiments.common import iperf3, mode_labels, probe_pod
from testbed.results import sample

NAME = "throughput"
DESCRIPTION = "iperf3 through the ClusterIP vs. straight to the pod IP (modes)"
GRID = {"mode": mode_labels(), "seconds": [5]}
QUICK = {"seconds": [2]}
REPEATS = 3


def setup(point, ctx):
    cluster = ctx.cluster_for(point["mode"], seed=ctx.repeat + 1, cluster_dns=False)
    cluster.start()
    cluster.apply([
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "iperf", "labels": {"app": "iperf"}},
         "spec": {"nodeSelector": {"kubernetes.io/hostname": "node2"},
                  "containers": [{"name": "iperf", "image": "networkstatic/iperf3", "ports": [{"containerPort": 5201}]}]}},
        probe_pod("load", node="node1"),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "iperf"},
         "spec": {"selector": {"app": "iperf"}, "ports": [{"port": 5201}]}}])
    cluster.wait_ready(60)
    return cluster


def measure(cluster, point, ctx):
    targets = {"pod-ip": cluster.get("pod", "iperf")["status"]["podIP"],
               "vip": cluster.get("svc", "iperf")["spec"]["clusterIP"]}
    for target, address in targets.items():
        ctx.note(f"iperf3 to {target}")
        result = iperf3(cluster.pod("load"), address, point["seconds"])
        yield sample("bulk_gbps", result["gbps"], "Gbit/s", target=target)
        yield sample("retransmits", result["retransmits"], "segments", target=target)


def teardown(cluster):
    cluster.stop()


if __name__ == "__main__":
    from testbed.experiments import script_main
    sys.exit(script_main(NAME, sys.argv[1:]))
