"""connection-rate: new connections per second through a ClusterIP, per mode and algorithm.

Four client threads in one pod open short HTTP connections (one request each) for SECONDS to a
Service of 3 replicas; every request is a new flow through the data plane (what a reactive SDN
algorithm pays a controller round trip for). Combinations a mode does not offer (iptables has only
random) are recorded as not run. Samples: `connections_per_second`, `connections`, `errors`.

    python experiments/connection_rate.py --modes sdn --algorithms random,rr
"""
from __future__ import annotations

import sys

from testbed.experiments import NotRunnable
from testbed.experiments.common import algorithm_annotations, algorithms_of, connection_rate, deployment, mode_labels
from testbed.results import sample

NAME = "connection-rate"
DESCRIPTION = "new connections per second through a Service VIP (modes x algorithms)"
GRID = {"mode": mode_labels(), "algorithm": ["random", "rr", "lc", "maglev"], "replicas": [3], "seconds": [5.0],
        "concurrency": [4]}
QUICK = {"seconds": [2.0], "algorithm": ["random", "rr"]}
REPEATS = 1


def setup(point, ctx):
    if point["algorithm"] not in algorithms_of(point["mode"]):
        raise NotRunnable(f"{point['mode']} mode offers {', '.join(algorithms_of(point['mode']))}; "
                          f"not the {point['algorithm']!r} algorithm")
    cluster = ctx.cluster_for(point["mode"], seed=ctx.repeat + 1)
    cluster.start()
    cluster.apply(deployment("rate", point["replicas"], annotations=algorithm_annotations(point["mode"], point["algorithm"])))
    return cluster


def measure(cluster, point, ctx):
    vip = cluster.get("svc", "rate")["spec"]["clusterIP"]
    counts = connection_rate(cluster.client(), vip, 80, point["seconds"], point["concurrency"])
    yield sample("connections_per_second", counts["ok"] / counts["seconds"], "connections/s", target="vip")
    yield sample("connections", counts["ok"], "connections", target="vip")
    yield sample("errors", counts["errors"], "connections", target="vip")


def teardown(cluster):
    cluster.stop()


if __name__ == "__main__":
    from testbed.experiments import script_main
    sys.exit(script_main(NAME, sys.argv[1:]))
