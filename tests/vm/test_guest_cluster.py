"""A tiny emulated cluster in the guest: the testbed itself picks the kernel datapath there and a
Service answers through it (one node, two pods, iptables mode; no add-ons, to stay small under TCG)."""
import json

from testbed import Cluster
from testbed.vm import scaled

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: ikubernetes/myapp:v1, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
"""


def test_cluster_runs_on_the_kernel_datapath():
    # No add-ons (no DNS, no ingress controller) to stay small; stall_timeout is scaled under TCG by
    # the emulation itself (testbed/timescale.py).
    with Cluster(topo="single", proxy_mode="iptables", seed=3, addons=[], stall_timeout=60) as cluster:
        assert cluster.emulation.datapath.type == "system", cluster.emulation.datapath.reason
        cluster.apply(MANIFEST)
        vip = cluster.get("service", "web")["spec"]["clusterIP"]
        pods = {p["metadata"]["name"] for p in cluster.get("pods")}
        seen = set()
        for _ in range(6):
            answer = json.loads(cluster.client().cmd(f"curl -sf -m {scaled(3):.0f} http://{vip}/"))
            seen.add(answer["pod"])
        assert seen <= pods and seen, (seen, pods)
