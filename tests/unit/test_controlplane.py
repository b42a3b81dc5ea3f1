"""The control plane derives what a cluster would: allocations, pods, EndpointSlices, rollouts."""
import ipaddress
import re

import pytest

from testbed.cluster import Cluster
from testbed.proxy.tracker import ports_of
from testbed.controlplane import ClusterConfig, ControlPlane
from testbed.errors import TestbedError
from testbed.manifests import load, parse_text
from testbed.store import MODIFIED


@pytest.fixture
def cluster():
    c = Cluster(network=False, seed=7)
    c.apply("examples/")
    return c


def test_builtin_services_take_first_and_tenth_address():
    c = Cluster(network=False, seed=1)
    assert c.get("svc", "kubernetes")["spec"]["clusterIP"] == "10.96.0.1"
    assert c.get("svc", "kube-dns", namespace="kube-system")["spec"]["clusterIP"] == "10.96.0.10"


def test_examples_get_cluster_ips_node_ports_and_lb_ips(cluster):
    services = {s["metadata"]["name"]: s for s in cluster.get("services")}
    for name in ("myapp-svc", "myapp-svc-nodeport", "myapp-svc-lb", "myapp-sticky", "api", "wap", "my-service"):
        ip = services[name]["spec"]["clusterIP"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")
    assert services["myapp-headless-svc"]["spec"]["clusterIP"] == "None"
    assert services["myapp-svc-nodeport"]["spec"]["ports"][0]["nodePort"] == 32223
    lb = services["myapp-svc-lb"]
    assert 30000 <= lb["spec"]["ports"][0]["nodePort"] <= 32767
    assert lb["status"]["loadBalancer"]["ingress"][0]["ip"] == "172.18.255.200"
    assert "clusterIP" not in services["external-redis-svc"]["spec"]
    ips = [s["spec"]["clusterIP"] for s in services.values() if s["spec"].get("clusterIP") not in (None, "None")]
    assert len(ips) == len(set(ips))


def test_pods_are_named_like_kubectl_and_spread(cluster):
    pods = [p for p in cluster.get("pods") if p["metadata"]["name"].startswith("myapp-")]
    assert len(pods) == 3
    for pod in pods:
        assert re.fullmatch(r"myapp-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}",
                            pod["metadata"]["name"])
        assert pod["status"]["phase"] == "Running"
        node = pod["spec"]["nodeName"]
        index = int(node[-1]) - 1
        assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(f"10.244.{index}.0/24")
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["node1", "node2", "node3"]
    rs = cluster.get("rs")
    myapp_rs = [r for r in rs if r["metadata"]["name"].startswith("myapp-")][0]
    hash_ = myapp_rs["metadata"]["labels"]["pod-template-hash"]
    assert myapp_rs["metadata"]["name"] == f"myapp-{hash_}"
    assert all(p["metadata"]["name"].startswith(f"myapp-{hash_}-") for p in pods)


def test_endpoint_slices_resolve_named_target_ports_and_set_node_names(cluster):
    slices = [s for s in cluster.get("endpointslices")
              if s["metadata"]["labels"]["kubernetes.io/service-name"] == "myapp-sticky"]
    assert len(slices) == 1
    assert slices[0]["ports"] == [{"name": "", "port": 80, "protocol": "TCP"}]  # targetPort: http -> 80
    assert len(slices[0]["endpoints"]) == 3
    assert all(e["nodeName"] and e["conditions"]["ready"] for e in slices[0]["endpoints"])
    endpoints = cluster.get("endpoints", "myapp-sticky")
    assert len(endpoints["subsets"][0]["addresses"]) == 3


def test_selectorless_service_uses_given_endpoints_through_mirroring(cluster):
    slices = [s for s in cluster.get("endpointslices")
              if s["metadata"]["labels"]["kubernetes.io/service-name"] == "my-service"]
    assert len(slices) == 1
    assert slices[0]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslicemirroring-controller.k8s.io"
    assert slices[0]["endpoints"][0]["addresses"] == ["192.168.200.10"]
    assert slices[0]["ports"][0]["port"] == 9376
    ports = {p.service_port_name: p for p in cluster.service_ports()}
    assert [e.address for e in ports["default/my-service"].endpoints] == ["192.168.200.10:9376"]


def test_external_name_has_no_slices_and_is_not_proxied(cluster):
    assert not [s for s in cluster.get("endpointslices", namespace=None)
                if s["metadata"]["labels"]["kubernetes.io/service-name"] == "external-redis-svc"]
    assert "default/external-redis-svc" not in {p.service_port_name for p in cluster.service_ports()}


def test_at_most_100_endpoints_per_slice():
    c = Cluster(network=False, seed=1, topo="default")
    c.apply("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: big}
spec:
  replicas: 250
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: v1
kind: Service
metadata: {name: big}
spec: {selector: {app: big}, ports: [{port: 80}]}
""")
    slices = [s for s in c.get("endpointslices") if s["metadata"]["labels"]["kubernetes.io/service-name"] == "big"]
    assert sorted(len(s["endpoints"]) for s in slices) == [50, 100, 100]


def test_reapply_is_unchanged_and_node_port_is_kept_on_update(cluster):
    lines = cluster.apply("examples/myapp.yaml")
    assert all(line.endswith("unchanged") for line in lines), lines
    before = cluster.get("svc", "myapp-svc-lb")["spec"]["ports"][0]["nodePort"]
    cluster.apply("""
kind: Service
apiVersion: v1
metadata: {name: myapp-svc-lb, labels: {changed: "yes"}}
spec:
  type: LoadBalancer
  selector: {app: myapp}
  ports: [{protocol: TCP, port: 80, targetPort: 80}]
""")
    after = cluster.get("svc", "myapp-svc-lb")
    assert after["spec"]["ports"][0]["nodePort"] == before
    assert after["metadata"]["labels"] == {"changed": "yes"}


def test_deleted_pod_is_replaced(cluster):
    pod = [p for p in cluster.get("pods") if p["metadata"]["name"].startswith("myapp-")][0]["metadata"]["name"]
    cluster.delete("pod", pod)
    names = [p["metadata"]["name"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("myapp-")]
    assert len(names) == 3 and pod not in names


def test_scale_and_delete_cascade(cluster):
    cluster.scale("deployment", "myapp", 5)
    assert len([p for p in cluster.get("pods") if p["metadata"]["name"].startswith("myapp-")]) == 5
    ready = cluster.get("deploy", "myapp")["status"]["readyReplicas"]
    assert ready == 5
    cluster.delete("deployment", "myapp")
    assert not [p for p in cluster.get("pods") if p["metadata"]["name"].startswith("myapp-")]
    assert not [r for r in cluster.get("rs") if r["metadata"]["name"].startswith("myapp-")]
    slice_ = [s for s in cluster.get("endpointslices")
              if s["metadata"]["labels"]["kubernetes.io/service-name"] == "myapp-svc"][0]
    assert slice_["endpoints"] == []


def test_rolling_update_respects_max_surge_and_max_unavailable():
    c = Cluster(network=False, seed=3)
    c.apply("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.0"}]}
""")
    cp = c.control_plane
    seen = []

    def observe(event):
        if event.kind == "Pod" or event.kind == "ReplicaSet":
            pods = [p for p in cp.store.list("Pod", "default") if not p["metadata"].get("deletionTimestamp")]
            ready = sum(1 for p in pods if any(x["type"] == "Ready" and x["status"] == "True"
                                               for x in p["status"].get("conditions") or []))
            seen.append((len(pods), ready))
    cp.store.watch(observe)
    c.set_image("deployment", "web", {"web": "nginx:2.0"}, change_cause="bump to 2.0")
    assert max(total for total, _ in seen) <= 4 + 1          # maxSurge
    assert min(ready for _, ready in seen) >= 4 - 1          # maxUnavailable
    pods = c.get("pods")
    assert len(pods) == 4 and {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:2.0"}
    history = c.rollout_history("deployment", "web")
    assert [rev for rev, _ in history] == [1, 2] and history[1][1] == "bump to 2.0"


def test_rollback_reuses_the_old_replica_set():
    c = Cluster(network=False, seed=3)
    c.apply(load(["examples/myapp.yaml"]))
    first_rs = {r["metadata"]["name"] for r in c.get("rs")}
    c.set_image("deployment", "myapp", {"myapp": "ikubernetes/myapp:v2"})
    c.rollout_undo("deployment", "myapp")
    deployment = c.get("deploy", "myapp")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "ikubernetes/myapp:v1"
    active = [r for r in c.get("rs") if r["spec"]["replicas"]]
    assert len(active) == 1 and active[0]["metadata"]["name"] in first_rs
    assert [rev for rev, _ in c.rollout_history("deployment", "myapp")] == [2, 3]
    with pytest.raises(TestbedError, match="unable to find specified revision 9"):
        c.rollout_undo("deployment", "myapp", to_revision=9)


def test_recreate_strategy_scales_old_to_zero_first():
    c = Cluster(network=False, seed=3)
    c.apply("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  replicas: 2
  strategy: {type: Recreate}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: "db:1"}]}
""")
    images = []
    c.control_plane.store.watch(lambda e: images.append(
        {p["spec"]["containers"][0]["image"] for p in c.control_plane.store.list("Pod", "default")}
        if e.kind == "Pod" else None))
    c.set_image("deployment", "db", {"db": "db:2"})
    assert not any(s and s == {"db:1", "db:2"} for s in images)


def test_graceful_deletion_marks_endpoints_terminating_until_the_kubelet_confirms():
    cp = ControlPlane(ClusterConfig.for_nodes(["node1"], seed=1, cluster_dns=False), hollow_kubelet=False)
    cp.apply(parse_text("""
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {app: a}}
spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {selector: {app: a}, ports: [{port: 80}]}
""", "t.yaml"))
    pod = cp.assign_pod_ip("default", "p")
    from testbed.controlplane.scheduling import running_status
    cp.set_pod_status("default", "p", running_status(pod, ready=True))
    ports = {p.name: p for p in ports_of(cp.store)}
    assert ports["s"].endpoints[0].ready
    cp.delete("Pod", "p")
    endpoint = {p.name: p for p in ports_of(cp.store)}["s"].endpoints[0]
    assert endpoint.terminating and not endpoint.ready
    cp.finalize_pod_deletion("default", "p")
    assert {p.name: p for p in ports_of(cp.store)}["s"].endpoints == ()
    assert cp.pod_ipam.ranges["node1"].is_free(pod["status"]["podIP"])


def test_store_versions_and_watch_events(cluster):
    events = []
    cluster.control_plane.store.watch(events.append)
    before = int(cluster.get("svc", "myapp-svc")["metadata"]["resourceVersion"])
    cluster.apply("""
kind: Service
apiVersion: v1
metadata: {name: myapp-svc, annotations: {note: x}}
spec: {selector: {app: myapp}, ports: [{protocol: TCP, port: 80, targetPort: 80}]}
""")
    after = int(cluster.get("svc", "myapp-svc")["metadata"]["resourceVersion"])
    assert after > before
    assert any(e.type == MODIFIED and e.kind == "Service" and e.name == "myapp-svc" for e in events)


def test_namespace_delete_removes_its_objects(cluster):
    cluster.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: prod}\n")
    cluster.delete("namespace", "prod", namespace=None)
    assert cluster.get("svc", namespace="prod") == [] and cluster.get("cm", namespace="prod") == []


def test_get_returns_copies(cluster):
    svc = cluster.get("svc", "myapp-svc")
    svc["spec"]["clusterIP"] = "1.2.3.4"
    assert cluster.get("svc", "myapp-svc")["spec"]["clusterIP"] != "1.2.3.4"


def test_lb_pool_exhaustion_leaves_service_pending():
    cp = ControlPlane(ClusterConfig.for_nodes(["n1"], seed=1, cluster_dns=False, lb_pool=("172.18.255.200", "172.18.255.200")),
                      addons=())   # no add-on Service takes the only address
    cp.apply(parse_text("\n---\n".join(
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: lb{i}}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]}}"
        for i in range(2)), "t.yaml"))
    statuses = [cp.get("Service", f"lb{i}")["status"].get("loadBalancer") for i in range(2)]
    assert statuses[0] == {"ingress": [{"ip": "172.18.255.200", "ipMode": "VIP"}]}
    assert not statuses[1]
    cp.delete("Service", "lb0")
    assert cp.get("Service", "lb1")["status"]["loadBalancer"]["ingress"][0]["ip"] == "172.18.255.200"


def test_incremental_proxy_view_equals_a_full_rebuild():
    """The change tracker (proxy/tracker.py) must give what service_ports() computes from scratch,
    and report exactly the Services whose ports or endpoints differ since its previous update."""
    import random
    from testbed.proxy.model import service_ports
    from testbed.proxy.tracker import ServiceChangeTracker
    c = Cluster(network=False, seed=4, addons=["dns"])
    cp = c.control_plane
    rng = random.Random(4)
    tracker = ServiceChangeTracker(cp.store, cp.lock)
    first, changed = tracker.update()
    assert first == ports_of(cp.store)
    assert changed == {("default", "kubernetes"), ("kube-system", "kube-dns")}
    previous = {key: ports for key, ports in tracker.by_service().items()}
    for step in range(60):
        i = rng.randrange(8)
        action = rng.choice(["svc", "deploy", "scale", "delete-svc", "delete-deploy", "endpoints"])
        try:
            if action == "svc":
                c.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}"},
                         "spec": {"selector": {"app": f"a{i % 4}"}, "ports": [{"port": 80 + step % 3}]}})
            elif action == "deploy":
                c.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"a{i % 4}"},
                         "spec": {"replicas": 1 + i % 3, "selector": {"matchLabels": {"app": f"a{i % 4}"}},
                                  "template": {"metadata": {"labels": {"app": f"a{i % 4}"}},
                                               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
            elif action == "scale":
                c.scale("deployment", f"a{i % 4}", rng.randrange(4))
            elif action == "delete-svc":
                c.delete("svc", f"s{i}")
            elif action == "delete-deploy":
                c.delete("deployment", f"a{i % 4}")
            else:
                c.apply([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"x{i}"},
                          "spec": {"ports": [{"port": 90}]}},
                         {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": f"x{i}"},
                          "subsets": [{"addresses": [{"ip": f"10.1.0.{step + 1}"}], "ports": [{"port": 9}]}]}])
        except TestbedError:
            pass  # deleting what does not exist
        ports, changed = tracker.update()
        assert ports == service_ports(cp.store.list("Service"), cp.store.list("EndpointSlice"))
        now = {key: value for key, value in tracker.by_service().items()}
        assert changed == {key for key in previous.keys() | now.keys() if previous.get(key) != now.get(key)}
        previous = now
    assert ports != first
    tracker.close()


RS_MANIFEST = """
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
"""


def test_a_pod_relabeled_out_of_its_replica_set_is_released_and_replaced():
    """ClaimPods (controller_ref_manager.go): the pod lives on as an orphan, and the ReplicaSet
    makes a new one to keep its count (it kept counting the relabeled pod before)."""
    c = Cluster(network=False, seed=3)
    c.apply(RS_MANIFEST)
    pod = c.get("pods")[0]
    name = pod["metadata"]["name"]
    relabeled = {"apiVersion": "v1", "kind": "Pod", "metadata": {**pod["metadata"], "labels": {"app": "debug"}},
                 "spec": pod["spec"]}
    c.apply(relabeled)
    pods = {p["metadata"]["name"]: p for p in c.get("pods")}
    assert len(pods) == 3 and "ownerReferences" not in pods[name]["metadata"]
    owned = [p for p in pods.values() if p["metadata"].get("ownerReferences")]
    assert len(owned) == 2 and all(p["metadata"]["labels"] == {"app": "web"} for p in owned)
    assert c.get("rs", "web")["status"]["replicas"] == 2


def test_a_matching_orphan_pod_is_adopted():
    c = Cluster(network=False, seed=3)
    c.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "labels": {"app": "web"}},
             "spec": {"containers": [{"name": "web", "image": "nginx"}]}})
    c.apply(RS_MANIFEST)
    pods = {p["metadata"]["name"]: p for p in c.get("pods")}
    assert len(pods) == 2      # the stray pod counts as one of the two replicas
    assert pods["stray"]["metadata"]["ownerReferences"][0]["name"] == "web"
    c.delete("rs", "web")
    assert c.get("pods") == []  # adopted pods are the ReplicaSet's: they go with it
