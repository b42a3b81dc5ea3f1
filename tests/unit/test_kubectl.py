"""kubectl commands against a real control-plane-only cluster with the shared example manifests."""
import io
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from testbed import Cluster
from testbed.errors import ManifestError, TestbedError
from testbed.kinds import KINDS
from testbed.kubectl import Kubectl, deployment_rollout_status
from testbed.kubectl.describe import DESCRIBERS
from testbed.kubectl.format import parse_time

EXAMPLES = Path("/work/shared/examples")


@pytest.fixture
def cluster():
    c = Cluster(network=False, seed=1)
    for name in ("myapp.yaml", "ingress.yaml", "external.yaml", "ingress-nginx-config.yaml"):
        c.apply(EXAMPLES / name)
    return c


@pytest.fixture
def kubectl(cluster):
    created = parse_time(cluster.get("Service", "kubernetes")["metadata"]["creationTimestamp"])
    return Kubectl(cluster, clock=lambda: created + timedelta(days=3, hours=5, seconds=30))


def run(kubectl, line: str) -> str:
    return kubectl.run(line.split())


def table(text: str) -> list[list[str]]:
    """Rows of a `get` table; cells are separated by at least three spaces."""
    return [re.split(r"\s{3,}", line.rstrip()) for line in text.splitlines() if line.strip()]


def row_of(text: str, name: str) -> dict:
    rows = table(text)
    return next(dict(zip(rows[0], r)) for r in rows[1:] if name in r)


# -- get ------------------------------------------------------------------------------------------

def test_get_services_columns_for_every_type(kubectl):
    text = run(kubectl, "get svc")
    assert table(text)[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert row_of(text, "myapp-svc-nodeport")["PORT(S)"] == "80:32223/TCP"
    assert row_of(text, "myapp-svc-nodeport")["EXTERNAL-IP"] == "<none>"
    lb = row_of(text, "myapp-svc-lb")
    assert lb["EXTERNAL-IP"] == "172.18.255.200" and lb["TYPE"] == "LoadBalancer"
    assert re.fullmatch(r"80:\d+/TCP", lb["PORT(S)"])
    assert row_of(text, "myapp-headless-svc")["CLUSTER-IP"] == "None"
    assert row_of(text, "myapp-svc")["AGE"] == "3d5h"
    redis = row_of(text, "external-redis-svc")
    assert (redis["TYPE"], redis["CLUSTER-IP"], redis["EXTERNAL-IP"]) == ("ExternalName", "<none>", "redis.ilinux.io")
    assert run(kubectl, "-n prod get svc") == run(kubectl, "get svc --namespace=prod")
    prod = row_of(run(kubectl, "get svc -n prod"), "my-service")
    assert (prod["EXTERNAL-IP"], prod["PORT(S)"]) == ("my.database.example.com", "<none>")


def test_get_services_wide_adds_selector_and_all_namespaces_adds_namespace(kubectl):
    assert row_of(run(kubectl, "get svc -o wide"), "myapp-svc")["SELECTOR"] == "app=myapp"
    text = run(kubectl, "get services --all-namespaces")
    assert table(text)[0][:2] == ["NAMESPACE", "NAME"]
    assert row_of(text, "kube-dns")["NAMESPACE"] == "kube-system"
    assert row_of(text, "kube-dns")["PORT(S)"] == "53/UDP,53/TCP,9153/TCP"


def test_get_pods_and_wide_columns(kubectl, cluster):
    text = run(kubectl, "get pods -o wide -l app=myapp")
    assert table(text)[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                              "READINESS GATES"]
    pods = {p["metadata"]["name"]: p for p in cluster.get("Pod")}
    rows = table(text)[1:]
    assert len(rows) == 3
    for name, ready, status, restarts, _age, ip, node, nominated, gates in rows:
        assert (ready, status, restarts, nominated, gates) == ("1/1", "Running", "0", "<none>", "<none>")
        assert (ip, node) == (pods[name]["status"]["podIP"], pods[name]["spec"]["nodeName"])


def test_get_deployments_replicasets_endpoints_and_slices(kubectl):
    deploy = run(kubectl, "get deploy -o wide")
    assert table(deploy)[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert row_of(deploy, "myapp") == {"NAME": "myapp", "READY": "3/3", "UP-TO-DATE": "3", "AVAILABLE": "3",
                                       "AGE": "3d5h", "CONTAINERS": "myapp", "IMAGES": "ikubernetes/myapp:v1",
                                       "SELECTOR": "app=myapp"}
    rs = run(kubectl, "get rs")
    assert table(rs)[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert [r[1:4] for r in table(rs)[1:] if r[0].startswith("myapp-")] == [["3", "3", "3"]]
    endpoints = run(kubectl, "get ep")
    assert table(endpoints)[0] == ["NAME", "ENDPOINTS", "AGE"]
    assert row_of(endpoints, "my-service")["ENDPOINTS"] == "192.168.200.10:9376"
    assert len(row_of(endpoints, "myapp-svc")["ENDPOINTS"].split(",")) == 3
    run(kubectl, "scale deployment myapp --replicas=5")
    assert row_of(run(kubectl, "get endpoints"), "myapp-svc")["ENDPOINTS"].endswith(" + 2 more...")
    slices = run(kubectl, "get endpointslices")
    assert table(slices)[0] == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    mirrored = row_of(slices, "192.168.200.10")
    assert (mirrored["ADDRESSTYPE"], mirrored["PORTS"]) == ("IPv4", "9376")
    assert mirrored["NAME"].startswith("my-service-")


def test_get_ingress_nodes_namespaces_configmaps(kubectl):
    ingress = run(kubectl, "get ing")
    assert table(ingress)[0] == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert "api.ik8s.io,wap.ik8s.io" in ingress
    assert re.search(r"wzlinux-ingress\s+<none>\s+www\.wzlinux\.com\s+80, 443\s+3d5h", ingress)
    nodes = run(kubectl, "get nodes -o wide")
    assert table(nodes)[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP",
                               "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert row_of(nodes, "node1")["STATUS"] == "Ready" and row_of(nodes, "node1")["INTERNAL-IP"] == "172.18.0.10"
    assert row_of(run(kubectl, "get ns"), "kube-system")["STATUS"] == "Active"
    assert row_of(run(kubectl, "get cm -n ingress-nginx"), "nginx-configuration")["DATA"] == "12"
    assert row_of(run(kubectl, "get ingressclasses"), "nginx")["CONTROLLER"] == "k8s.io/ingress-nginx"
    assert run(kubectl, "get secrets") == "No resources found in default namespace.\n"
    assert run(kubectl, "get rc -A") == "No resources found\n"


def test_get_all_and_several_kinds_prefix_names_with_the_resource(kubectl):
    text = run(kubectl, "get all")
    blocks = text.split("\n\n")
    assert [table(b)[1][0].split("/")[0] for b in blocks] == ["pod", "service", "deployment.apps", "replicaset.apps"]
    assert "deployment.apps/myapp" in text and "service/myapp-svc-lb" in text
    assert "pod/" not in run(kubectl, "get deploy,svc")


def test_get_output_yaml_json_and_name(kubectl, cluster):
    one = yaml.safe_load(run(kubectl, "get svc myapp-svc-nodeport -o yaml"))
    assert one == cluster.get("Service", "myapp-svc-nodeport")
    text = run(kubectl, "get svc myapp-svc -o yaml")
    assert text.startswith("apiVersion: v1\nkind: Service\nmetadata:\n")
    assert re.search(r'^  resourceVersion: "\d+"$', text, re.M)   # strings that look like numbers are quoted
    listed = json.loads(run(kubectl, "get deploy -o json"))
    assert listed["kind"] == "List" and listed["apiVersion"] == "v1"
    assert [d["metadata"]["name"] for d in listed["items"]] == ["api", "myapp", "wap"]
    two = yaml.safe_load(run(kubectl, "get svc/api svc/wap -o yaml"))
    assert [s["metadata"]["name"] for s in two["items"]] == ["api", "wap"]
    assert run(kubectl, "get deploy -o name") == "deployment.apps/api\ndeployment.apps/myapp\ndeployment.apps/wap\n"
    assert run(kubectl, "get ingress -o name").splitlines()[0] == "ingress.networking.k8s.io/my-ingress"


def test_get_labels_selector_and_no_headers(kubectl):
    text = run(kubectl, "get pods -l app=api --show-labels")
    assert table(text)[0][-1] == "LABELS"
    assert all(r[-1].startswith("app=api,pod-template-hash=") for r in table(text)[1:])
    assert len(table(run(kubectl, "get pods -l app!=api --no-headers"))) == 5
    assert run(kubectl, "get pods -l app=nothing") == "No resources found in default namespace.\n"


# -- describe -----------------------------------------------------------------------------------

def describe_fields(text: str) -> dict:
    return {m.group(1): m.group(2) for m in re.finditer(r"^([A-Za-z][\w -]*):\s+(.*?)\s*$", text, re.M)}


def test_describe_service_layout(kubectl, cluster):
    text = run(kubectl, "describe svc myapp-svc-nodeport")
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "Name", "Namespace", "Labels", "Annotations", "Selector", "Type", "IP Family Policy", "IP Families", "IP",
        "IPs", "Port", "TargetPort", "NodePort", "Endpoints", "Session Affinity", "External Traffic Policy",
        "Internal Traffic Policy", "Events"]
    assert len({len(line) - len(line.split(":", 1)[1].lstrip()) for line in lines}) == 1   # values aligned
    fields = describe_fields(text)
    ips = sorted(p["status"]["podIP"] for p in cluster.get("Pod") if p["metadata"]["labels"].get("app") == "myapp")
    assert fields["Type"] == "NodePort" and fields["Selector"] == "app=myapp"
    assert fields["IP"] == cluster.get("Service", "myapp-svc-nodeport")["spec"]["clusterIP"]
    assert fields["Port"] == "<unset>  80/TCP" and fields["TargetPort"] == "80/TCP"
    assert fields["NodePort"] == "<unset>  32223/TCP"
    assert sorted(fields["Endpoints"].split(",")) == sorted(f"{ip}:80" for ip in ips)
    assert fields["Session Affinity"] == "None" and fields["Events"] == "<none>"


def test_describe_load_balancer_shows_ingress_and_its_event(kubectl):
    text = run(kubectl, "describe service myapp-svc-lb")
    assert describe_fields(text)["LoadBalancer Ingress"] == "172.18.255.200 (VIP)"
    assert re.search(r"^  Normal\s+IPAllocated\s+3d5h\s+metallb-controller\s+Assigned IP \[\"172\.18\.255\.200\"\]$",
                     text, re.M)
    sticky = describe_fields(run(kubectl, "describe svc myapp-sticky"))
    assert sticky["Session Affinity"] == "ClientIP" and sticky["TargetPort"] == "http/TCP"
    external = describe_fields(run(kubectl, "describe svc my-service -n prod"))
    assert external["External Name"] == "my.database.example.com" and external["Type"] == "ExternalName"


def test_describe_deployment_pod_node_ingress_endpoints(kubectl, cluster):
    deployment = run(kubectl, "describe deployment myapp")
    fields = describe_fields(deployment)
    assert fields["Replicas"] == "3 desired | 3 updated | 3 total | 3 available | 0 unavailable"
    assert fields["RollingUpdateStrategy"] == "25% max unavailable, 25% max surge"
    assert re.search(r"^NewReplicaSet:\s+myapp-\w+ \(3/3 replicas created\)$", deployment, re.M)
    assert re.search(r"^    Image:\s+ikubernetes/myapp:v1$", deployment, re.M)
    assert "ScalingReplicaSet" in deployment
    pod_name = sorted(p["metadata"]["name"] for p in cluster.get("Pod") if p["metadata"]["name"].startswith("myapp"))[0]
    pod = run(kubectl, f"describe pod {pod_name}")
    pod_obj = cluster.get("Pod", pod_name)
    assert describe_fields(pod)["Node"] == f"{pod_obj['spec']['nodeName']}/{pod_obj['status']['hostIP']}"
    assert describe_fields(pod)["Controlled By"].startswith("ReplicaSet/myapp-")
    assert re.search(r"^  Normal\s+Scheduled\s+3d5h\s+default-scheduler\s+Successfully assigned", pod, re.M)
    assert run(kubectl, "describe pods myapp").count("Name:  ") == 3      # a name prefix describes them all
    node = run(kubectl, "describe node node1")
    assert describe_fields(node)["PodCIDR"] == "10.244.0.0/24"
    assert f"({sum(p['spec']['nodeName'] == 'node1' for p in cluster.get('Pod', namespace=None))} in total)" in node
    ingress = run(kubectl, "describe ingress wzlinux-ingress")
    assert "wzlinux-secret terminates www.wzlinux.com" in ingress
    assert re.search(r"^\s+/\s+wap:80 \(10\.244\.\d+\.\d+:80,10\.244\.\d+\.\d+:80\)$", ingress, re.M)
    endpoints = run(kubectl, "describe endpoints my-service")
    assert re.search(r"^  Addresses:\s+192\.168\.200\.10$", endpoints, re.M)
    assert run(kubectl, "describe pod myapp --show-events=false").count("Events:") == 0


def test_every_kind_has_a_describer_and_describes(kubectl, cluster):
    assert set(DESCRIBERS) == set(KINDS)
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"},
                   "data": {"tls.crt": "aGVsbG8="}, "stringData": {"note": "abc"}})
    cluster.apply({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc"},
                   "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "rc"}},
                                                        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    for info in KINDS.values():
        for obj in cluster.get(info.kind, namespace=None):
            flags = ["-n", obj["metadata"]["namespace"]] if info.namespaced else []
            text = kubectl.run(["describe", info.plural, obj["metadata"]["name"], *flags])
            assert text.startswith("Name:") and obj["metadata"]["name"] in text.splitlines()[0]
    secret = run(kubectl, "describe secret tls")
    assert re.search(r"^tls\.crt:\s+5 bytes$", secret, re.M) and re.search(r"^note:\s+3 bytes$", secret, re.M)
    assert row_of(run(kubectl, "get secrets"), "tls") == {"NAME": "tls", "TYPE": "Opaque", "DATA": "2", "AGE": "3d5h"}
    assert row_of(run(kubectl, "get rc -o wide"), "rc")["SELECTOR"] == "app=rc"
    assert describe_fields(run(kubectl, "describe rc rc"))["Pods Status"] == "1 Running / 0 Waiting / 0 Succeeded / 0 Failed"


# -- changes ------------------------------------------------------------------------------------

def test_scale_both_spellings(kubectl, cluster):
    assert run(kubectl, "scale deployment/myapp --replicas=5") == "deployment.apps/myapp scaled\n"
    assert cluster.get("Deployment", "myapp")["spec"]["replicas"] == 5
    assert len([p for p in cluster.get("Pod") if p["metadata"]["labels"].get("app") == "myapp"]) == 5
    assert run(kubectl, "scale deploy myapp --replicas 1") == "deployment.apps/myapp scaled\n"
    assert row_of(run(kubectl, "get deploy"), "myapp")["READY"] == "1/1"
    with pytest.raises(TestbedError, match="Expected replicas to be 4, was 1"):
        run(kubectl, "scale deploy myapp --current-replicas=4 --replicas=2")


def test_expose_builds_a_service_from_the_deployment(kubectl, cluster):
    out = run(kubectl, "expose deployment myapp --port=8080 --target-port=80 --type=NodePort --name=myapp-np")
    assert out == "service/myapp-np exposed\n"
    service = cluster.get("Service", "myapp-np")
    assert service["spec"]["selector"] == {"app": "myapp"} and service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["port"] == 8080 and service["spec"]["ports"][0]["targetPort"] == 80
    assert 30000 <= service["spec"]["ports"][0]["nodePort"] <= 32767
    assert len(describe_fields(run(kubectl, "describe svc myapp-np"))["Endpoints"].split(",")) == 3
    with pytest.raises(TestbedError, match=r'\(AlreadyExists\): services "myapp-np" already exists'):
        run(kubectl, "expose deployment myapp --port=8080 --name=myapp-np")
    # without --port the container ports are used; --dry-run prints the Service without creating it
    dry = yaml.safe_load(run(kubectl, "expose deploy api --dry-run=client -o yaml"))
    assert dry["spec"] == {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "selector": {"app": "api"}}
    assert "api" in [s["metadata"]["name"] for s in cluster.get("Service")]   # the manifest's own, untouched


def test_set_image_rollout_history_and_undo_round_trip(kubectl, cluster):
    assert run(kubectl, "set image deployment/myapp myapp=ikubernetes/myapp:v2 --record") == \
        "deployment.apps/myapp image updated\n"
    assert cluster.get("Deployment", "myapp")["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "ikubernetes/myapp:v2"
    assert run(kubectl, "rollout status deployment/myapp") == 'deployment "myapp" successfully rolled out\n'
    history = run(kubectl, "rollout history deployment/myapp")
    assert history.splitlines() == [
        "deployment.apps/myapp",
        "REVISION  CHANGE-CAUSE",
        "1         <none>",
        "2         kubectl set image deployment/myapp myapp=ikubernetes/myapp:v2 --record=true"]
    assert "ikubernetes/myapp:v2" in run(kubectl, "rollout history deployment/myapp --revision=2")
    assert run(kubectl, "rollout undo deployment/myapp") == "deployment.apps/myapp rolled back\n"
    assert cluster.get("Deployment", "myapp")["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "ikubernetes/myapp:v1"
    assert [line.split()[0] for line in run(kubectl, "rollout history deploy/myapp").splitlines()[2:]] == ["2", "3"]
    assert row_of(run(kubectl, "get deploy -o wide"), "myapp")["IMAGES"] == "ikubernetes/myapp:v1"
    run(kubectl, "rollout undo deployment/myapp --to-revision=2")
    assert row_of(run(kubectl, "get deploy -o wide"), "myapp")["IMAGES"] == "ikubernetes/myapp:v2"


def test_rollout_status_messages_follow_kubectl():
    def status_of(generation=1, **status):
        deployment = {"metadata": {"name": "d", "generation": generation}, "spec": {"replicas": 3},
                      "status": {"observedGeneration": 1, **status}}
        return deployment_rollout_status(deployment)
    assert status_of(generation=2) == ("Waiting for deployment spec update to be observed...", False)
    assert status_of(updatedReplicas=1, replicas=3) == (
        'Waiting for deployment "d" rollout to finish: 1 out of 3 new replicas have been updated...', False)
    assert status_of(updatedReplicas=3, replicas=4) == (
        'Waiting for deployment "d" rollout to finish: 1 old replicas are pending termination...', False)
    assert status_of(updatedReplicas=3, replicas=3, availableReplicas=2) == (
        'Waiting for deployment "d" rollout to finish: 2 of 3 updated replicas are available...', False)
    assert status_of(updatedReplicas=3, replicas=3, availableReplicas=3) == (
        'deployment "d" successfully rolled out', True)


def test_rollout_status_polls_until_the_timeout(cluster):
    cluster.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stuck"},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "stuck"}},
                            "template": {"metadata": {"labels": {"app": "stuck"}}, "spec": {
                                "nodeSelector": {"disk": "none-has-it"},
                                "containers": [{"name": "c", "image": "nginx"}]}}}})
    now = [parse_time("2024-01-01T00:00:00Z")]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += timedelta(seconds=seconds)
    kubectl = Kubectl(cluster, clock=lambda: now[0], sleep=sleep)
    assert run(kubectl, "rollout status deploy/stuck") == \
        'Waiting for deployment "stuck" rollout to finish: 0 of 2 updated replicas are available...\n'
    with pytest.raises(TestbedError) as caught:
        run(kubectl, "rollout status deploy/stuck --timeout=2s")
    assert str(caught.value).splitlines() == [
        'Waiting for deployment "stuck" rollout to finish: 0 of 2 updated replicas are available...',
        "error: timed out waiting for the condition"]
    assert sum(sleeps) == pytest.approx(2.0)


def test_apply_create_and_delete_with_files_and_stdin(cluster, tmp_path):
    manifest = ("apiVersion: v1\nkind: Service\nmetadata: {name: extra}\n"
                "spec: {selector: {app: api}, ports: [{port: 81, targetPort: 80}]}\n")
    kubectl = Kubectl(cluster, stdin=io.StringIO(manifest))
    assert run(kubectl, "apply -f -") == "service/extra created\n"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\ndata: {a: b}\n")
    assert run(kubectl, f"create -f {tmp_path}") == "configmap/c1 created\n"
    assert run(kubectl, f"apply -f {tmp_path}") == "configmap/c1 unchanged\n"
    assert run(kubectl, f"apply -f {tmp_path / 'sub' / 'cm.yaml'} -n prod") == "configmap/c1 created\n"
    assert cluster.get("ConfigMap", "c1", namespace="prod")["data"] == {"a": "b"}
    assert run(kubectl, f"delete -f {tmp_path}") == 'configmap "c1" deleted\n'
    assert run(kubectl, "delete svc extra myapp-sticky") == 'service "extra" deleted\nservice "myapp-sticky" deleted\n'
    assert "extra" not in [s["metadata"]["name"] for s in cluster.get("Service")]
    assert run(kubectl, "delete cm c1 -n prod") == 'configmap "c1" deleted\n'
    with pytest.raises(TestbedError, match='the path "/nonexistent.yaml" does not exist'):
        run(kubectl, "apply -f /nonexistent.yaml")
    with pytest.raises(ManifestError, match=r"Service/bad: .*spec\.ports\[0\]\.port"):
        Kubectl(cluster, stdin=io.StringIO("apiVersion: v1\nkind: Service\nmetadata: {name: bad}\n"
                                           "spec: {ports: [{port: 0}]}\n")).run(["apply", "-f", "-"])


def test_api_resources_lists_every_served_kind(kubectl):
    text = run(kubectl, "api-resources")
    assert table(text)[0] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert row_of(text, "Deployment") == {"NAME": "deployments", "SHORTNAMES": "deploy", "APIVERSION": "apps/v1",
                                          "NAMESPACED": "true", "KIND": "Deployment"}
    assert len(table(text)) == len(KINDS) + 1
    assert "ingresses.networking.k8s.io" in run(kubectl, "api-resources -o name")


# -- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, message", [
    ("get foo", 'error: the server doesn\'t have a resource type "foo"'),
    ("describe bar x", 'error: the server doesn\'t have a resource type "bar"'),
    ("get pods nosuch", 'Error from server (NotFound): pods "nosuch" not found'),
    ("get deploy nosuch", 'Error from server (NotFound): deployments.apps "nosuch" not found'),
    ("describe svc nosuch", 'Error from server (NotFound): services "nosuch" not found'),
    ("delete svc nosuch", 'Error from server (NotFound): services "nosuch" not found'),
    ("scale deploy nosuch --replicas=1", 'Error from server (NotFound): deployments.apps "nosuch" not found'),
    ("get pods --watch", "error: unknown flag: --watch"),
    ("get pods -w", "error: unknown shorthand flag: 'w' in -w"),
    ("get pods -o custom", 'error: unable to match a printer suitable for the output format "custom"'),
    ("scale deploy myapp", "error: The --replicas=COUNT flag is required"),
    ("scale deploy myapp --replicas=x", 'error: invalid argument "x" for "--replicas" flag'),
    ("set image deploy/myapp nosuch=x", 'error: unable to find container named "nosuch"'),
    ("rollout undo deploy/myapp", "error: no rollout history found"),
    ("rollout history svc/myapp-svc", 'error: no history viewer has been implemented for "Service"'),
    ("exec somepod ls", "error: exec [POD] [COMMAND] is not supported anymore"),
    ("exec -it somepod -- sh", 'Error from server (NotFound): pods "somepod" not found'),   # -it accepted
    ("--context=x get pods", "error: unknown flag: --context=x"),
    ("frobnicate", 'error: unknown command "frobnicate" for "kubectl"'),
    ("get", "error: you must specify the type of resource to get"),
    ("get pods x -A", "error: a resource cannot be retrieved by name across all namespaces"),
])
def test_user_mistakes_raise_kubectl_worded_errors(kubectl, line, message):
    with pytest.raises(TestbedError) as caught:
        run(kubectl, line)
    assert str(caught.value).startswith(message)


def test_partial_results_print_what_was_found_then_the_error(kubectl):
    with pytest.raises(TestbedError) as caught:
        run(kubectl, "get svc myapp-svc nosuch")
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("NAME") and lines[1].startswith("myapp-svc")
    assert lines[2] == 'Error from server (NotFound): services "nosuch" not found'


def test_exec_and_logs_need_the_network(kubectl, cluster):
    pod = next(p["metadata"]["name"] for p in cluster.get("Pod"))
    with pytest.raises(TestbedError, match="error: this cluster has no network"):
        run(kubectl, f"exec {pod} -- hostname")
    with pytest.raises(TestbedError, match="error: this cluster has no network"):
        run(kubectl, "logs deploy/myapp")
    with pytest.raises(TestbedError, match='Error from server \\(NotFound\\): pods "nosuch" not found'):
        run(kubectl, "logs nosuch")


def test_help_lists_commands(kubectl):
    assert "rollout" in kubectl.run([]) and "api-resources" in kubectl.run(["help"])
    assert kubectl.run(["get", "--help"]).startswith("Display one or many resources.")
