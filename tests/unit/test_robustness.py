"""Manifests and the API under bad input (issue 8): every class of failure found by fuzzing, each with
the API server's verdict. Nothing crashes, hangs or half-applies; messages name file, object and field."""
import json
import subprocess
import sys
import time
import warnings

import pytest

from testbed import Cluster
from testbed.cli import main
from testbed.controlplane import ClusterConfig, ControlPlane
from testbed.controlplane.core import ManifestWarning
from testbed.errors import ArgumentError, ManifestError, TestbedError
from testbed.manifests import MAX_DEPTH, read_text

from tests.support.robustness import bounded, snapshot


def problems(text: str, cluster=None) -> list[str]:
    cluster = cluster or Cluster(network=False, seed=1)
    return [str(p) for p in cluster.validate(text)]


def service(spec: str, name: str = "svc", metadata: str = "") -> str:
    return f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}{metadata}}}\nspec: {spec}\n"


def deployment(replicas="2", extra: str = "", name: str = "web") -> str:
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n"
            f"  selector: {{matchLabels: {{app: {name}}}}}\n{extra}  template:\n    metadata: {{labels: {{app: {name}}}}}\n"
            f"    spec: {{containers: [{{name: web, image: nginx}}]}}\n")


# ---------------------------------------------------------------------------------------------
# Crashes, hangs and memory blow-ups
# ---------------------------------------------------------------------------------------------

BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


def test_alias_bomb_is_refused_quickly_and_in_little_memory():
    with bounded(seconds=5, memory=512 * 2**20):
        _, found = read_text(BILLION_LAUGHS, "bomb.yaml")
    assert len(found) == 1 and "excessive aliasing" in str(found[0]) and str(found[0]).startswith("bomb.yaml:1 ")


def test_alias_bomb_through_validate_render_and_apply(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS)
    with bounded(seconds=10, memory=512 * 2**20):
        assert main(["validate", "-f", str(path)]) == 1
        assert main(["render", "iptables", "-f", str(path)]) == 1
        with pytest.raises(ManifestError, match="excessive aliasing"):
            Cluster(network=False).apply(str(path))
    assert capsys.readouterr().err.count("excessive aliasing") == 2


def test_ordinary_aliases_still_work():
    text = "base: &labels {app: web}\nother: *labels\nmore: [*labels, *labels]\n"
    documents, found = read_text(text, "a.yaml")
    assert not found and documents[0].obj["more"] == [{"app": "web"}, {"app": "web"}]
    documents[0].obj["other"]["app"] = "changed"
    assert documents[0].obj["base"] == {"app": "web"}   # aliases are copies


def test_an_anchor_that_contains_itself_is_an_error():
    _, found = read_text("a: &x [1, *x]\n", "r.yaml")
    assert "contains itself" in str(found[0])


@pytest.mark.parametrize("text", [
    "a: " + "[" * 500 + "]" * 500,                       # YAML flow, 500 levels
    "a:\n" + "".join("  " * i + "- \n" for i in range(1, 500)),   # block sequences
    "a: " + "[" * 100_000 + "]" * 100_000,               # crashed libyaml's composer (segfault)
    "- " * 5000 + "x",                                    # compact block sequences on one line
])
def test_deep_yaml_is_refused_past_the_limit(text):
    with bounded(seconds=5, memory=512 * 2**20):
        _, found = read_text(text, "deep.yaml")
    assert found and f"nested deeper than {MAX_DEPTH} levels" in str(found[0])


@pytest.mark.parametrize("depth", [150, 500, 50_000])
def test_deep_json_is_refused_past_the_limit(depth):
    body = '{"a": ' * depth + "1" + "}" * depth
    text = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})[:-1] + \
        f', "extra": {body}}}'
    with bounded(seconds=5, memory=512 * 2**20):
        lines = problems(text)
    assert lines and all("nested deeper" in line or "unknown field" in line for line in lines), lines


def test_nesting_within_the_limit_is_fine():
    body = "{a: " * 50 + "1" + "}" * 50
    documents, found = read_text(f"x: {body}\n", "ok.yaml")
    assert not found and documents


@pytest.mark.parametrize("text, field, words", [
    ('{"apiVersion": "v1", "kind": "List", "items": [1]}', "items[0]", "must be an object"),
    (service("{ports: [{port: 80}], sessionAffinity: ClientIP, sessionAffinityConfig: [1]}"),
     "spec.sessionAffinityConfig", "cannot unmarshal array into Go struct field ServiceSpec.spec.sessionAffinityConfig"),
    ("apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  rules:\n  - http:\n"
     "      paths: [{path: /, backend: {serviceName: web, servicePort: [80]}}]\n",
     "spec.rules[0].http.paths[0].backend.servicePort", "cannot unmarshal array into Go value of type int32"),
    (deployment(extra="").replace("matchLabels: {app: web}", "matchLabels: [app, web]"),
     "spec.selector.matchLabels", "of type map[string]string"),
    (deployment().replace("{matchLabels: {app: web}}", "{matchLabels: {app: web}, matchExpressions: {key: app}}"),
     "spec.selector.matchExpressions", "of type []v1.LabelSelectorRequirement"),
    (service("{clusterIP: 10, ports: [{port: 80}]}"), "spec.clusterIP",
     "cannot unmarshal number into Go struct field ServiceSpec.spec.clusterIP of type string"),
    (service("{type: LoadBalancer, externalTrafficPolicy: Local, healthCheckNodePort: abc, ports: [{port: 80}]}"),
     "spec.healthCheckNodePort", "cannot unmarshal string into Go struct field ServiceSpec.spec.healthCheckNodePort"),
    (service("{ports: [{port: 80}], externalIPs: [167772161]}"), "spec.externalIPs[0]", "of type string"),
    (deployment(replicas="2147483648"), "spec.replicas", "cannot unmarshal number 2147483648"),
    (deployment().replace("[{name: web", "[{name: web, resources: {limits: {cpu: 1x}}"),
     "spec.template.spec.containers[0].resources.limits[cpu]", "quantities must match"),
])
def test_wrong_types_are_field_errors_with_the_json_path(text, field, words):
    lines = problems(text)
    assert any(f": {field}: " in line and words in line for line in lines), lines


@pytest.mark.parametrize("text", [
    service("{ports: [{port: 80}], sessionAffinityConfig: null}"),
    service("{ports: [{port: 80}]}", metadata=", namespace: null"),
    service("{ports: [{port: 80}]}", metadata=", namespace: ''"),
    service("{type: null, ports: [{port: 80, protocol: null}]}"),
    deployment(replicas="null"),
    deployment(extra="  strategy: null\n"),
])
def test_null_means_not_set_and_is_defaulted(text):
    cluster = Cluster(network=False, seed=1)
    lines = cluster.apply(text)
    assert lines and lines[0].endswith("created")
    kind = "service" if "kind: Service" in text else "deployment"
    obj = cluster.get(kind, "svc" if kind == "service" else "web")
    assert obj["metadata"]["namespace"] == "default"
    if kind == "service":
        assert obj["spec"]["type"] == "ClusterIP" and obj["spec"]["ports"][0]["protocol"] == "TCP"
    else:
        assert obj["spec"]["replicas"] in (1, 2) and obj["spec"]["strategy"]["type"] == "RollingUpdate"
        assert len(cluster.get("pods")) == obj["spec"]["replicas"]


def test_huge_replicas_end_in_a_failed_create_event_not_a_hang():
    cluster = Cluster(network=False, seed=1)
    started = time.monotonic()
    with bounded(seconds=10, memory=1024 * 2**20):
        cluster.apply(deployment(replicas="2147483647"))
    assert time.monotonic() - started < 5
    cp = cluster.control_plane
    assert cp.store.count("Pod") == cp.max_pods
    rs = cluster.get("replicasets")[0]
    assert rs["status"]["conditions"][0]["reason"] == "FailedCreate"
    events = cp.events[("ReplicaSet", "default", rs["metadata"]["name"])]
    assert events[-1]["reason"] == "FailedCreate" and "max_pods" in events[-1]["message"]


def test_more_pods_than_pod_ips_leaves_the_surplus_pending_with_an_event():
    cluster = Cluster(network=False, seed=1)
    cluster.apply(deployment(replicas="800"))
    pods = cluster.get("pods")
    pending = [p for p in pods if p["status"]["phase"] == "Pending"]
    system = [p for p in cluster.get("pods", namespace=None) if p["metadata"]["namespace"] != "default"]
    assert len(system) == 3   # two coredns pods and the ingress controller hold pod IPs too
    assert len(pods) == 800 and len(pending) == 800 - 3 * 253 + len(system)
    name = pending[0]["metadata"]["name"]
    assert cluster.control_plane.events[("Pod", "default", name)][-1]["reason"] == "FailedCreatePodSandBox"
    # an IP freed on a node goes to a pod waiting there
    running = next(p for p in pods if p["status"]["phase"] == "Running"
                   and p["spec"]["nodeName"] == pending[0]["spec"]["nodeName"])
    cluster.scale("deployment", "web", 799)   # the controller deletes a pending pod first: no IP freed
    cluster.delete("pod", running["metadata"]["name"])
    after = cluster.get("pods")
    assert sum(1 for p in after if p["status"]["phase"] == "Running") == 3 * 253 - len(system)


def test_pod_on_an_unknown_node_stays_pending():
    cluster = Cluster(network=False, seed=1)
    cluster.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
                  "spec: {nodeName: nowhere, containers: [{name: c, image: nginx}]}\n")
    pod = cluster.get("pod", "p")
    assert pod["status"]["phase"] == "Pending" and not pod["status"].get("podIP")


def test_invalid_utf8_on_stdin_is_one_line_not_a_traceback():
    result = subprocess.run([sys.executable, "-m", "testbed.cli", "validate", "-f", "-"], input=b"a: \xe9\n",
                            capture_output=True, timeout=60, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    err = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith("<stdin> ") and "not valid UTF-8" in err


def test_invalid_utf8_in_a_file_is_reported_the_same_way(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"a: \xe9\n")
    assert "not valid UTF-8" in problems_of_paths([path])[0]


def problems_of_paths(paths) -> list[str]:
    return [str(p) for p in Cluster(network=False).validate([str(p) for p in paths])]


# ---------------------------------------------------------------------------------------------
# All or nothing
# ---------------------------------------------------------------------------------------------

def test_a_controller_failure_after_the_writes_rolls_the_whole_apply_back(monkeypatch):
    cluster = Cluster(network=False, seed=1)
    before = snapshot(cluster)
    from testbed.controlplane import workloads
    original = workloads.sync_replica_set

    def failing(cp, rs):
        original(cp, rs)          # pods created, IPs taken, events recorded ...
        raise RuntimeError("controller bug")
    monkeypatch.setattr(workloads, "sync_replica_set", failing)
    batch = service("{type: NodePort, selector: {app: web}, ports: [{port: 80}]}", "web") + "---\n" + deployment()
    with pytest.raises(TestbedError, match="internal error, nothing was changed: RuntimeError: controller bug"):
        cluster.apply(batch)
    assert snapshot(cluster) == before
    monkeypatch.setattr(workloads, "sync_replica_set", original)
    assert cluster.apply(batch) == ["service/web created", "deployment.apps/web created"]
    assert len(cluster.get("pods")) == 2


def test_refused_batches_change_nothing():
    cluster = Cluster(network=False, seed=1)
    before = snapshot(cluster)
    with pytest.raises(ManifestError):
        cluster.apply(service("{type: NodePort, ports: [{port: 80}]}", "ok") + "---\n" + deployment(replicas="x"))
    assert snapshot(cluster) == before


# ---------------------------------------------------------------------------------------------
# The API itself
# ---------------------------------------------------------------------------------------------

def test_empty_string_is_refused_not_read_as_the_current_directory():
    with pytest.raises(ArgumentError, match="empty string"):
        Cluster(network=False).apply("")
    with pytest.raises(TypeError):   # an ArgumentError is a TypeError to Python code
        Cluster(network=False).apply("   ")


def test_a_missing_path_is_reported_as_missing():
    with pytest.raises(ManifestError, match='the path "manifests/nope" does not exist'):
        Cluster(network=False).apply("manifests/nope")


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_immortal_namespaces_cannot_be_deleted(name):
    cluster = Cluster(network=False, seed=1)
    with pytest.raises(TestbedError, match=f'namespaces "{name}" is forbidden: this namespace may not be deleted'):
        cluster.delete("namespace", name)
    assert cluster.get("service", "kubernetes")["spec"]["clusterIP"] == "10.96.0.1"
    assert cluster.get("service", "kube-dns", namespace="kube-system")


def test_a_namespace_with_metadata_namespace_is_stored_by_its_name():
    cluster = Cluster(network=False, seed=1)
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team, namespace: default}\n"
    assert cluster.apply(text) == ["namespace/team created"]
    assert "namespace" not in cluster.get("namespace", "team")["metadata"]
    assert cluster.apply(text) == ["namespace/team unchanged"]


def test_health_check_node_port_cannot_take_another_services_node_port():
    cluster = Cluster(network=False, seed=1)
    cluster.apply(service("{type: NodePort, ports: [{port: 80, nodePort: 30080}]}", "a"))
    lines = problems(service("{type: LoadBalancer, externalTrafficPolicy: Local, healthCheckNodePort: 30080, "
                             "ports: [{port: 80}]}", "b"), cluster)
    assert lines == ['<text>:1 Service/b: spec.healthCheckNodePort: Invalid value: 30080: provided port is already '
                     'allocated']


def test_scale_and_apply_refuse_wrong_python_types():
    cluster = Cluster(network=False, seed=1)
    cluster.apply(deployment())
    with pytest.raises(ArgumentError, match='--replicas: Invalid value: "3": must be an integer'):
        cluster.scale("deployment", "web", "3")
    with pytest.raises(TestbedError, match="int32"):
        cluster.scale("deployment", "web", 2**31)
    with pytest.raises(TestbedError, match="cannot be scaled"):
        cluster.scale("service", "kubernetes", 2)
    with pytest.raises(ArgumentError, match="list holding a int"):
        cluster.apply([1, 2])
    with pytest.raises(ArgumentError):
        cluster.apply(3.5)
    with pytest.raises(ArgumentError):
        cluster.scale("deployment", "web", 3.0)
    assert cluster.apply(b"apiVersion: v1\nkind: Namespace\nmetadata: {name: raw}\n") == ["namespace/raw created"]
    with pytest.raises(ManifestError, match="not valid UTF-8"):
        cluster.apply(b"a: \xe9\n")
    assert cluster.scale("deployment", "web", 3) == "deployment.apps/web scaled"


# ---------------------------------------------------------------------------------------------
# Verdicts, matched to the API server (pkg/apis/core/validation/validation.go and apimachinery)
# ---------------------------------------------------------------------------------------------

SECRET = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
ENDPOINTS = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\n"
SLICE = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: es}\n"
INGRESS = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\n"
BIG = "x" * (1024 * 1024 + 1)

REFUSED = [
    (service("{ports: [{port: 80, port: 81}]}"), "spec.ports[0].port", "key already set in map"),
    (f"{CONFIGMAP}data: {{big: {BIG}}}\n", "", "Too long: must have at most 1048576 bytes"),
    (f"{SECRET}stringData: {{big: {BIG}}}\n", "data", "Too long: must have at most 1048576 bytes"),
    (service("{ports: [{port: 80}]}", metadata=", annotations: {a: " + "x" * 262_144 + "}"),
     "metadata.annotations", "Too long: must have at most 262144 bytes"),
    (service("{ports: [{port: 80, targetPort: '8080'}]}"), "spec.ports[0].targetPort", "at least one letter"),
    (service("{clusterIP: 10.96.0.0, ports: [{port: 80}]}"), "spec.clusterIP", "not in the valid range"),
    (service("{clusterIP: 10.111.255.255, ports: [{port: 80}]}"), "spec.clusterIP", "not in the valid range"),
    (service("{clusterIP: 10.96.0.5, clusterIPs: [10.96.0.6], ports: [{port: 80}]}"), "spec.clusterIPs",
     "first value must match `clusterIP`"),
    (service("{externalIPs: [0.0.0.0], ports: [{port: 80}]}"), "spec.externalIPs[0]", "may not be unspecified"),
    (service("{externalIPs: [127.0.0.1], ports: [{port: 80}]}"), "spec.externalIPs[0]", "loopback range"),
    (service("{externalIPs: [169.254.1.1], ports: [{port: 80}]}"), "spec.externalIPs[0]", "link-local range"),
    (service("{loadBalancerSourceRanges: [10.0.0.0/8], ports: [{port: 80}]}"), "spec.LoadBalancerSourceRanges",
     "may only be used when `type` is 'LoadBalancer'"),
    (service("{healthCheckNodePort: 30100, ports: [{port: 80}]}"), "spec.healthCheckNodePort",
     "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"),
    (service("{allocateLoadBalancerNodePorts: true, ports: [{port: 80}]}"), "spec.allocateLoadBalancerNodePorts",
     "may only be used when `type` is 'LoadBalancer'"),
    (service("{loadBalancerClass: example.com/lb, ports: [{port: 80}]}"), "spec.loadBalancerClass",
     "may only be used when `type` is 'LoadBalancer'"),
    (service("{ipFamilyPolicy: Sometimes, ports: [{port: 80}]}"), "spec.ipFamilyPolicy", "Unsupported value"),
    (service("{ipFamilies: [IPv6], ports: [{port: 80}]}"), "spec.ipFamilies[0]", "not configured on this cluster"),
    (service("{ipFamilyPolicy: RequireDualStack, ports: [{port: 80}]}"), "spec.ipFamilyPolicy", "dual-stack"),
    (deployment(replicas="4294967296"), "spec.replicas", "of type int32"),
    (deployment().replace("{matchLabels: {app: web}}",
                          "{matchLabels: {app: web}, matchExpressions: [{key: a, operator: In, values: x}]}"),
     "spec.selector.matchExpressions[0].values", "of type []string"),
    (deployment(extra="  progressDeadlineSeconds: 0\n"), "spec.progressDeadlineSeconds", "greater than minReadySeconds"),
    (deployment(extra="  minReadySeconds: -1\n"), "spec.minReadySeconds", "greater than or equal to 0"),
    (deployment().replace("image: nginx", "image: nginx, resources: {requests: {memory: 12Qi}}"),
     "spec.template.spec.containers[0].resources.requests[memory]", "quantit"),
    (deployment().replace("image: nginx", "image: nginx, resources: {requests: {cpu: '2'}, limits: {cpu: '1'}}"),
     "spec.template.spec.containers[0].resources.requests[cpu]", "less than or equal to cpu limit"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: 'nginx '}]}\n",
     "spec.containers[0].image", "leading or trailing whitespace"),
    (f"{ENDPOINTS}subsets: [{{addresses: [{{ip: 127.0.0.1}}], ports: [{{port: 80}}]}}]\n",
     "subsets[0].addresses[0].ip", "loopback range"),
    (f"{ENDPOINTS}subsets: [{{addresses: [{{ip: 0.0.0.0}}], ports: [{{port: 80}}]}}]\n",
     "subsets[0].addresses[0].ip", "unspecified"),
    (f"{ENDPOINTS}subsets: [{{ports: [{{port: 80}}]}}]\n", "subsets[0]", "must specify `addresses` or `notReadyAddresses`"),
    (f"{ENDPOINTS}subsets: [{{addresses: [{{ip: 10.1.1.1}}], ports: [{{port: 80, name: Bad_Name}}]}}]\n",
     "subsets[0].ports[0].name", "RFC 1123 label"),
    (f"{SLICE}addressType: IPv4\nendpoints: [{{addresses: [127.0.0.1]}}]\n", "endpoints[0].addresses[0]", "loopback"),
    (f"{SLICE}addressType: IPv4\nendpoints: [{{addresses: [0.0.0.0]}}]\n", "endpoints[0].addresses[0]", "unspecified"),
    (f"{SLICE}addressType: IPv6\nendpoints: [{{addresses: ['fe80::1::2']}}]\n", "endpoints[0].addresses[0]",
     "valid IPv6"),
    (f"{SLICE}addressType: IPv4\nendpoints: [{{addresses: [db.example.com]}}]\n", "endpoints[0].addresses[0]",
     "valid IPv4"),
    (f"{SLICE}addressType: IPv4\nendpoints: [{{addresses: [10.1.1.1], conditions: {{ready: 'yes'}}}}]\n",
     "endpoints[0].conditions.ready", "of type bool"),
    ("apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: i}\n"
     "spec: {backend: {serviceName: web, servicePort: 80.5}}\n", "spec.backend.servicePort", "number 80.5"),
    (f"{INGRESS}spec: {{defaultBackend: {{resource: {{name: bucket}}}}}}\n", "spec.defaultBackend.resource.kind",
     "kind is required"),
    (f"{SECRET}type: kubernetes.io/dockerconfigjson\ndata: {{}}\n", "data[.dockerconfigjson]", "Required value"),
    (f"{CONFIGMAP}data: {{k: v}}\nbinaryData: {{k: dg==}}\n", "binaryData[k]", "duplicate of key present in data[k]"),
]


@pytest.mark.parametrize("text, field, words", REFUSED, ids=[f"{i}-{r[1]}" for i, r in enumerate(REFUSED)])
def test_refused_as_the_api_server_refuses(text, field, words):
    lines = problems(text)
    prefix = f": {field}: " if field else ": "
    assert any(prefix in line and words in line for line in lines), lines


ACCEPTED = [
    service("{ports: [{port: 80, targetPort: 0}]}"),
    service("{ports: [{port: 80, targetPort: ''}]}"),
    service("{type: NodePort, ports: [{name: dns, port: 53, protocol: TCP, nodePort: 30053}, "
            "{name: dns-udp, port: 53, protocol: UDP, nodePort: 30053}]}"),
    service("{type: NodePort, ports: [{name: dns, port: 53, protocol: TCP}, {name: dns-udp, port: 53, protocol: UDP}]}"),
    service("{externalIPs: [192.0.2.10], externalTrafficPolicy: Local, ports: [{port: 80}]}"),
    deployment(extra="  strategy: {rollingUpdate: {maxSurge: 150%}}\n"),
    f"{SECRET}data: {{key: \"aGVsbG8g\\nd29ybGQ=\"}}\n",
    service("{ports: [{port: 80}]}", metadata=", namespace: ''"),
    service("{type: null, ports: [{port: 80, protocol: null}]}"),
    service("{ports: [{port: 80}], sessionAffinityConfig: null}"),
    service("{ipFamilyPolicy: PreferDualStack, ports: [{port: 80}]}"),
    deployment().replace("image: nginx", "image: ' nginx'"),   # only a Pod's images are checked for whitespace
    "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: 'my image'}]}\n",
    deployment().replace("image: nginx", "image: nginx, resources: {requests: {cpu: 100m, memory: 64Mi}, "
                                         "limits: {cpu: 0.5, memory: 1Gi}}"),
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted_as_the_api_server_accepts(text):
    cluster = Cluster(network=False, seed=1)
    assert problems(text, cluster) == []
    assert cluster.apply(text)[0].endswith("created")


def test_the_same_node_port_for_tcp_and_udp_is_one_allocation_and_auto_assigned_ones_are_shared():
    cluster = Cluster(network=False, seed=1)
    cluster.apply(ACCEPTED[3])
    ports = cluster.get("service", "svc")["spec"]["ports"]
    assert ports[0]["nodePort"] == ports[1]["nodePort"]
    cluster.delete("service", "svc")
    cluster.apply(ACCEPTED[2])
    assert problems(service("{type: NodePort, ports: [{port: 80, nodePort: 30053}]}", "other"), cluster)[0] \
        .endswith("provided port is already allocated")


def test_external_traffic_policy_is_defaulted_for_cluster_ip_services_with_external_ips():
    cluster = Cluster(network=False, seed=1)
    cluster.apply(service("{externalIPs: [192.0.2.10], ports: [{port: 80}]}"))
    assert cluster.get("service", "svc")["spec"]["externalTrafficPolicy"] == "Cluster"


def test_unknown_fields_warn_by_default_and_are_errors_under_strict():
    text = service("{ports: [{port: 80, bogus: 1}]}")
    cluster = Cluster(network=False, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cluster.apply(text) == ["service/svc created"]
    assert [str(w.message) for w in caught if w.category is ManifestWarning] == \
        ['<text>:1 Service/svc: spec.ports[0].bogus: unknown field "spec.ports[0].bogus"']
    assert "bogus" not in cluster.get("service", "svc")["spec"]["ports"][0]   # dropped, as the API server does
    with pytest.raises(ManifestError, match="unknown field"):
        Cluster(network=False).apply(text, field_validation="Strict")
    assert Cluster(network=False).validate(text, field_validation="Ignore") == []


def test_yaml_scalars_resolve_as_kubectls_go_yaml_resolves_them():
    documents, _ = read_text("a: yes\nb: 0x1F\nc: 017\nd: 1e3\ne: 2024-01-01\nf: 80.0\ng: ~\nh: '80'\n80: k\n", "s.yaml")
    assert documents[0].obj == {"a": True, "b": 31, "c": 15, "d": 1000.0, "e": "2024-01-01", "f": 80.0,
                                "g": None, "h": "80", "80": "k"}
    # a float with an integral value is an integer to the decoder (YAML -> JSON writes 80.0 as 80)
    assert problems(service("{ports: [{port: 80.0}]}")) == []


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------

def test_a_one_megabyte_name_is_not_echoed(tmp_path, capsys):
    path = tmp_path / "long.yaml"
    path.write_text(service("{ports: [{port: 80}]}", name="a" * 1_000_000))
    assert main(["validate", "-f", str(path)]) == 1
    err = capsys.readouterr().err
    assert "metadata.name" in err and len(err) < 2000 and "(1000000 characters)" in err


def test_generate_name_is_supported():
    cluster = Cluster(network=False, seed=1)
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: settings-}\ndata: {a: b}\n"
    assert problems(text, cluster) == []
    first, second = cluster.apply(text), cluster.apply(text)
    assert first != second and first[0].startswith("configmap/settings-") and len(first[0].split()[0]) == 24
    assert "generateName" in problems("apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: Bad_}\n")[0]


def test_null_is_printed_as_null():
    lines = problems(service("{ports: [{port: 80}], sessionAffinity: ~, type: ClusterIP, clusterIP: '1.1.1.1'}"))
    assert lines and "None" not in " ".join(lines)
    lines = problems("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [null]}\n")
    assert "None" not in " ".join(lines) and "spec.containers[0].name: Required value" in " ".join(lines)


def test_every_file_of_a_directory_is_reported(tmp_path):
    (tmp_path / "a-broken.yaml").write_text("kind: Service\n  bad: [\n")
    (tmp_path / "b-invalid.yaml").write_text(service("{ports: [{port: 0}]}", "b"))
    (tmp_path / "c-json.json").write_text('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "c"}, '
                                          '"spec": {"ports": [{"port": 99999}]}}')
    lines = problems_of_paths([tmp_path])
    assert any("a-broken.yaml:1" in line and "invalid YAML" in line for line in lines)
    assert any("b-invalid.yaml:1 Service/b: spec.ports[0].port" in line for line in lines)
    assert any("c-json.json:1 Service/c: spec.ports[0].port" in line for line in lines)


def test_a_syntax_error_hides_no_other_document_of_its_file():
    text = service("{ports: [{port: 0}]}", "first") + "---\nkind: [\n---\n" + service("{ports: [{port: 0}]}", "third")
    lines = problems(text)
    sources = [line.split(" ")[0] for line in lines]
    assert sorted(set(sources), key=sources.index) == ["<text>:1", "<text>:2", "<text>:3"]   # in document order


def test_control_plane_alone_refuses_non_documents():
    cp = ControlPlane(ClusterConfig.for_nodes(["n1"], cluster_dns=False))
    with pytest.raises(ArgumentError):
        cp.apply([{"kind": "Service"}])
