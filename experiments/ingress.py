"""ingress: throughput and latency via the ingress controller, via the ClusterIP and direct, as the
number of Ingress paths grows.

A Deployment `web` (3 replicas) behind a Service, and one Ingress (class nginx, host web.example)
with PATHS Prefix paths /p0 ... all to that Service. From the client pod, wrk with keep-alive
connections to /p<last> through the ingress (its `status.loadBalancer.ingress[0].ip`, Host
web.example), to the Service's ClusterIP and to one pod's IP directly. Samples: `rps`,
`wrk_latency_us` (quantile 50%/75%/90%/99%) and `errors` per target (ingress, clusterip, pod-ip).
Needs the cluster's ingress add-on (the ingress-nginx-like controller): a build without it records
every point as not run.

    python experiments/ingress.py --modes iptables --paths 1,100
"""
from __future__ import annotations

import sys

from testbed.components import addons
from testbed.experiments import NotRunnable
from testbed.experiments.common import deployment, mode_labels, probe_pod, wrk
from testbed.results import sample

NAME = "ingress"
DESCRIPTION = "wrk via the ingress, via the ClusterIP and direct to a pod, against the number of Ingress paths"
GRID = {"mode": mode_labels(), "paths": [1, 10, 100, 1000]}
QUICK = {"paths": [1, 100]}
REPEATS = 1
HOST = "web.example"


def ingress(paths: int) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": HOST, "http": {"paths": [
                {"path": f"/p{i}", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
                for i in range(paths)]}}]}}


def setup(point, ctx):
    if "ingress" not in addons():
        raise NotRunnable("this build has no ingress add-on (no ingress controller to measure)")
    cluster = ctx.cluster_for(point["mode"], seed=ctx.repeat + 1)
    cluster.start()
    cluster.apply(deployment("web", 3) + [probe_pod()])
    cluster.apply(ingress(point["paths"]))
    cluster.wait_ready(120)
    return cluster


def measure(cluster, point, ctx):
    path = f"/p{point['paths'] - 1}"
    status = cluster.get("ingress", "web")["status"]["loadBalancer"]["ingress"]
    if not status:
        raise NotRunnable("the Ingress got no address from its controller")
    pod_ip = next(p["status"]["podIP"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("web-"))
    vip = cluster.get("svc", "web")["spec"]["clusterIP"]
    targets = {"ingress": f"http://{status[0]['ip']}{path}", "clusterip": f"http://{vip}{path}", "pod-ip": f"http://{pod_ip}{path}"}
    probe = cluster.pod("probe")
    for target, url in targets.items():
        ctx.note(f"wrk to {target}")
        result = wrk(probe, url, ctx.pick(3, 1), connections=8, close=False, header=f"Host: {HOST}")
        yield sample("rps", result["requests_per_second"], "requests/s", target=target)
        yield sample("errors", result["errors"], "requests", target=target)
        for q, value in result["latency_us"].items():
            yield sample("wrk_latency_us", value, "us", target=target, quantile=q)


def teardown(cluster):
    cluster.stop()


if __name__ == "__main__":
    from testbed.experiments import script_main
    sys.exit(script_main(NAME, sys.argv[1:]))
