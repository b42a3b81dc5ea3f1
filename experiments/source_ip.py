"""source-ip: NodePort and LoadBalancer traffic under externalTrafficPolicy Cluster and Local.

One echo-server pod on node2 behind a LoadBalancer Service (which has a NodePort too). From the
external host: an HTTP request to the NodePort of every node and to the LoadBalancer IP; the echo
server answers with the source address it saw. Kubernetes' documented behaviour ("Using Source IP",
kubernetes.io): with Cluster, any node forwards, masquerading the client to a node address (the
source is lost, and entering at a node without the endpoint costs an extra hop); with Local, only
nodes with a local endpoint answer and the client's address is kept. Samples per entry (nodeport
nodeN, loadbalancer): `answered`, `source_is_client`, `extra_hop` (entered at a node other than the
endpoint's), `connect_us` (connect times from the external host, which show the hop).

    python experiments/source_ip.py --modes iptables,sdn --policies Cluster,Local
"""
from __future__ import annotations

import json
import sys

from testbed.experiments.common import WORKLOADS, mode_labels, run_workload
from testbed.net import addressing
from testbed.results import percentile, sample

NAME = "source-ip"
DESCRIPTION = "NodePort and LoadBalancer with externalTrafficPolicy Cluster vs Local: the source each backend sees, the extra hop"
GRID = {"mode": mode_labels(), "policy": ["Cluster", "Local"]}
QUICK: dict = {}
REPEATS = 1
ENDPOINT_NODE = "node2"


def objects(policy: str) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
             "spec": {"nodeSelector": {"kubernetes.io/hostname": ENDPOINT_NODE},
                      "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy, "selector": {"app": "web"},
                      "ports": [{"port": 80, "targetPort": 80}]}}]


def setup(point, ctx):
    cluster = ctx.cluster_for(point["mode"], seed=ctx.repeat + 1, cluster_dns=False)
    cluster.start()
    cluster.apply(objects(point["policy"]))
    cluster.wait_ready(60)
    return cluster


def entries(cluster) -> dict[str, tuple[str, int, str | None]]:
    """entry name -> (address, port, the node traffic enters at; None: whichever announces it)."""
    svc = cluster.get("svc", "web")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    found = {f"nodeport {n.name}": (n.IP(), node_port, n.name) for n in cluster.nodes()}
    for ingress in svc.get("status", {}).get("loadBalancer", {}).get("ingress", []):
        found["loadbalancer"] = (ingress["ip"], 80, None)
    return found


def measure(cluster, point, ctx):
    external = cluster.external()
    targets = entries(cluster)
    answering = []
    for entry, (address, port, node) in targets.items():
        output = external.cmd(f"curl -s -m 2 http://{address}:{port}/").strip()
        try:
            seen = json.loads(output)["client"].rsplit(":", 1)[0]
        except (ValueError, KeyError):
            seen = ""
        answered = bool(seen)
        yield sample("answered", int(answered), "bool", target=entry, seen_source=seen)
        if answered:
            answering.append(f"{entry.replace(' ', '_')}={address}:{port}")
            yield sample("source_is_client", int(seen == addressing.EXTERNAL_IP), "bool", target=entry, seen_source=seen)
            yield sample("extra_hop", int(node is not None and node != ENDPOINT_NODE), "bool", target=entry)
    # Connect times only where requests are answered: a Local policy's node without the endpoint
    # drops, and every connect there would wait for its timeout.
    ctx.note("connect times")
    result = (run_workload(external, WORKLOADS / "timed_targets.py", "connect", ctx.pick(300, 100), 5, *answering)
              if answering else None)
    for entry, values in (result or {"samples_us": {}})["samples_us"].items():
        for seq, value in enumerate(values):
            yield sample("connect_us", value, "us", target=entry.replace("_", " "), seq=seq)


def teardown(cluster):
    cluster.stop()


def summary(samples) -> list[dict]:
    """Per mode, policy and entry: answered, client source kept, extra hop, connect p50 (pure)."""
    rows = []
    for keys, group in samples.groupby(["mode", "backend", "datapath", "policy", "target"], sort=False):
        def value(metric, group=group):
            values = group[group["metric"] == metric]["value"]
            return values.iloc[0] if not values.empty else None
        connects = group[group["metric"] == "connect_us"]["value"].tolist()
        rows.append(dict(zip(["mode", "backend", "datapath", "policy", "entry"], keys), answered=value("answered"),
                         source_is_client=value("source_is_client"), extra_hop=value("extra_hop"),
                         connect_p50_us=percentile(connects, 0.5) if connects else None,
                         seen_source=next((s for s in group.get("seen_source", []) if isinstance(s, str) and s), "")))
    return rows


def report_sections(results) -> list:
    from testbed.reports import Heading, Table, Text, fmt
    rows = summary(results.samples)
    if not rows:
        return []

    def yes(value):
        return "-" if value is None else ("yes" if value else "no")
    return [Heading("Source address and extra hop"),
            Table(("mode", "backend", "datapath", "policy", "entry", "answered", "source seen", "client's address kept",
                   "extra hop", "connect p50 µs"),
                  tuple((r["mode"], r["backend"], r["datapath"], r["policy"], r["entry"], yes(r["answered"]),
                         r["seen_source"] or "-", yes(r["source_is_client"]), yes(r["extra_hop"]),
                         fmt(r["connect_p50_us"]) if r["connect_p50_us"] is not None else "-") for r in rows)),
            Text(f"The endpoint runs on {ENDPOINT_NODE}; the client is the external host {addressing.EXTERNAL_IP}.")]


if __name__ == "__main__":
    from testbed.experiments import script_main
    sys.exit(script_main(NAME, sys.argv[1:]))
