"""The seed articles' kubectl commands (issue 7, bug 8) on a control-plane-only cluster: run, edit,
label, annotate, patch, create deployment|namespace, version, cluster-info, unknown verbs."""
import json
import os
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from testbed import Cluster
from testbed.errors import TestbedError
from testbed.kubectl import Kubectl, execute_line

EXAMPLES = Path("/work/shared/examples")
CHANGE_CAUSE = "kubernetes.io/change-cause"


@pytest.fixture
def cluster():
    c = Cluster(network=False, seed=1)
    c.apply(EXAMPLES / "myapp.yaml")
    return c


@pytest.fixture
def kubectl(cluster):
    return Kubectl(cluster)


def run(kubectl, line: str) -> str:
    return kubectl.run(shlex.split(line))


def fails(kubectl, line: str) -> str:
    with pytest.raises(TestbedError) as raised:
        run(kubectl, line)
    return str(raised.value)


def deployment(cluster, name="myapp"):
    return cluster.get("Deployment", name)


# -- run ------------------------------------------------------------------------------------------

def test_run_with_replicas_makes_a_deployment_as_kubectl_before_1_18(kubectl, cluster):
    out = run(kubectl, "run nginx --image=nginx:latest --replicas=2 --image-pull-policy=IfNotPresent")
    assert out.splitlines() == [
        "kubectl run --generator=deployment/apps.v1 is DEPRECATED and will be removed in a future version. "
        "Use kubectl run --generator=run-pod/v1 or kubectl create instead.",
        "deployment.apps/nginx created"]
    made = deployment(cluster, "nginx")
    assert made["metadata"]["labels"] == {"run": "nginx"}
    assert made["spec"]["selector"] == {"matchLabels": {"run": "nginx"}}
    assert made["spec"]["replicas"] == 2
    container = made["spec"]["template"]["spec"]["containers"][0]
    assert (container["name"], container["image"], container["imagePullPolicy"]) == ("nginx", "nginx:latest", "IfNotPresent")
    pods = [p for p in cluster.get("Pod") if p["metadata"]["labels"].get("run") == "nginx"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)


def test_run_without_replicas_makes_a_pod_as_todays_kubectl(kubectl, cluster):
    out = run(kubectl, "run web --image=nginx --port=80 -l tier=web,app=web --env=MODE=test --restart=Never "
                       "--command -- /bin/sh -c 'sleep 1'")
    assert out == "pod/web created\n"
    pod = cluster.get("Pod", "web")
    assert pod["metadata"]["labels"] == {"tier": "web", "app": "web"}
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["/bin/sh", "-c", "sleep 1"] and "args" not in container
    assert container["env"] == [{"name": "MODE", "value": "test"}]
    assert container["ports"][0]["containerPort"] == 80
    assert pod["spec"]["restartPolicy"] == "Never"
    assert [d["metadata"]["name"] for d in cluster.get("Deployment")] == ["myapp"]


def test_run_expose_creates_the_service_too(kubectl, cluster):
    assert run(kubectl, "run web --image=nginx --port=8080 --expose") == "pod/web created\nservice/web created\n"
    service = cluster.get("Service", "web")
    assert service["spec"]["selector"] == {"run": "web"}
    assert service["spec"]["ports"][0]["port"] == 8080 and service["spec"]["ports"][0]["targetPort"] == 8080
    endpoints = cluster.get("Endpoints", "web")
    assert endpoints["subsets"][0]["addresses"][0]["ip"] == cluster.get("Pod", "web")["status"]["podIP"]
    # kubectl 1.17 printed the Service first.
    assert run(kubectl, "run api --image=nginx --replicas=1 --port=80 --expose").splitlines()[1:] == [
        "service/api created", "deployment.apps/api created"]


def test_run_dry_run_prints_what_kubectl_prints_and_stores_nothing(kubectl, cluster):
    printed = yaml.safe_load(run(kubectl, "run x --image=nginx --dry-run=client -o yaml"))
    assert printed == {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"creationTimestamp": None, "labels": {"run": "x"}, "name": "x"},
                       "spec": {"containers": [{"image": "nginx", "name": "x", "resources": {}}],
                                "dnsPolicy": "ClusterFirst", "restartPolicy": "Always"},
                       "status": {}}
    assert run(kubectl, "run x --image=nginx --dry-run") == "pod/x created (dry run)\n"
    with pytest.raises(TestbedError):
        cluster.get("Pod", "x")
    old = yaml.safe_load(run(kubectl, "run y --image=nginx --replicas=3 --dry-run -o yaml").split("\n", 1)[1])
    assert old["kind"] == "Deployment" and old["spec"]["strategy"] == {} and old["spec"]["replicas"] == 3


@pytest.mark.parametrize("line, message", [
    ("run", "error: NAME is required for run"),
    ("run x", "error: --image is required"),
    ("run x --image=Bad:Image:", 'error: invalid image name "Bad:Image:": invalid reference format'),
    ("run x --image=nginx --expose", "error: --port must be set when exposing a service"),
    ("run x --image=nginx --port=http", "error: --port must be a number"),
    ("run x --image=nginx --restart=Sometimes",
     "error: invalid restart policy: Sometimes, valid values are: Always, OnFailure, Never"),
    ("run x --image=nginx --image-pull-policy=Maybe",
     "error: invalid image pull policy: Maybe, valid values are: Always, IfNotPresent, Never"),
    ("run x --image=nginx --env=1BAD=x", "error: invalid env: 1BAD=x"),
    ("run x --image=nginx -l a=b=c", "error: unexpected label spec: a=b=c"),
    ("run x --image=nginx --replicas=2 --restart=Never", "error: --restart=Never requires that --replicas=1, found 2"),
    ("run x --image=nginx --generator=job/v1", 'error: generator "job/v1" not found'),
    ("run myapp-svc --image=nginx --port=80 --expose",
     'Error from server (AlreadyExists): services "myapp-svc" already exists'),
    ("run Bad_Name --image=nginx", 'The Pod "Bad_Name" is invalid: \n* metadata.name: Invalid value: "Bad_Name": '),
])
def test_run_refuses_bad_input_in_kubectls_words(kubectl, cluster, line, message):
    pods_before = len(cluster.get("Pod"))
    assert fails(kubectl, line).startswith(message)
    assert len(cluster.get("Pod")) == pods_before   # nothing half made (not even the pod of --expose)


def test_run_record_and_generator_run_pod(kubectl, cluster):
    assert run(kubectl, "run p --image=busybox --generator=run-pod/v1 --record") == "pod/p created\n"
    assert cluster.get("Pod", "p")["metadata"]["annotations"][CHANGE_CAUSE] == \
        "kubectl run p --image=busybox --generator=run-pod/v1 --record=true"
    assert run(kubectl, "run rc --image=nginx --generator=run/v1 --replicas=2").endswith(
        "replicationcontroller/rc created\n")
    assert cluster.get("ReplicationController", "rc")["spec"]["selector"] == {"run": "rc"}


# -- create deployment / namespace ------------------------------------------------------------------

def test_create_deployment_labels_app_name(kubectl, cluster):
    assert run(kubectl, "create deployment hello --image=ikubernetes/myapp:v1 --replicas 3 --port 80") == \
        "deployment.apps/hello created\n"
    made = deployment(cluster, "hello")
    assert made["metadata"]["labels"] == {"app": "hello"}
    assert made["spec"]["selector"]["matchLabels"] == {"app": "hello"} and made["spec"]["replicas"] == 3
    container = made["spec"]["template"]["spec"]["containers"][0]
    assert (container["name"], container["ports"][0]["containerPort"]) == ("myapp", 80)
    assert fails(kubectl, "create deploy hello --image=nginx") == \
        'error: failed to create deployment: deployments.apps "hello" already exists'
    assert fails(kubectl, "create deployment --image=nginx") == "error: exactly one NAME is required, got 0"
    assert fails(kubectl, "create deployment x") == 'error: required flag(s) "image" not set'
    two = run(kubectl, "create deployment two --image=nginx,busybox -o yaml")
    assert [c["name"] for c in yaml.safe_load(two)["spec"]["template"]["spec"]["containers"]] == ["nginx", "busybox"]


def test_create_namespace_and_create_from_file_still_applies(kubectl, cluster, tmp_path):
    assert run(kubectl, "create namespace staging") == "namespace/staging created\n"
    assert fails(kubectl, "create ns staging") == 'Error from server (AlreadyExists): namespaces "staging" already exists'
    assert "deployment.apps/myapp unchanged" in run(kubectl, f"create -f {EXAMPLES / 'myapp.yaml'}")
    assert fails(kubectl, "create secret generic x").startswith('error: unknown command "secret generic" for "kubectl create"')


# -- label / annotate -----------------------------------------------------------------------------

def test_label_adds_refuses_overwrite_removes(kubectl, cluster):
    assert run(kubectl, "label deploy myapp tier=front") == "deployment.apps/myapp labeled\n"
    assert fails(kubectl, "label deploy myapp tier=back") == \
        "error: 'tier' already has a value (front), and --overwrite is false"
    assert deployment(cluster)["metadata"]["labels"]["tier"] == "front"
    assert run(kubectl, "label deploy/myapp tier=back --overwrite") == "deployment.apps/myapp labeled\n"
    assert run(kubectl, "label deploy myapp tier=back") == "deployment.apps/myapp not labeled\n"
    assert run(kubectl, "label deploy myapp tier- ghost-") == 'label "ghost" not found.\ndeployment.apps/myapp unlabeled\n'
    assert "tier" not in (deployment(cluster)["metadata"].get("labels") or {})


def test_label_by_selector_and_all_changes_every_match(kubectl, cluster):
    out = run(kubectl, "label pods -l app=myapp env=test")
    assert out.count("labeled\n") == 3
    myapp_pods = [p for p in cluster.get("Pod") if p["metadata"]["labels"].get("app") == "myapp"]
    assert len(myapp_pods) == 3 and all(p["metadata"]["labels"]["env"] == "test" for p in myapp_pods)
    assert run(kubectl, "label svc --all audited=yes").count("labeled") == len(cluster.get("Service"))
    # A pod label change reaches the endpoints: a relabelled pod leaves the Service that selected it.
    run(kubectl, "run web --image=nginx --port=80 --expose")
    assert cluster.get("Endpoints", "web").get("subsets")
    run(kubectl, "label pod web run=other --overwrite")
    assert not cluster.get("Endpoints", "web").get("subsets")


def test_label_is_all_or_nothing_and_worded_as_the_api_server(kubectl, cluster):
    message = fails(kubectl, "label pods --all 'bad key=x'")
    assert message.startswith('The Pod "myapp-')
    assert 'metadata.labels: Invalid value: "bad key": name part must consist of alphanumeric characters' in message
    assert not any("bad key" in (p["metadata"].get("labels") or {}) for p in cluster.get("Pod"))


@pytest.mark.parametrize("line, message", [
    ("label deploy myapp", "error: at least one label update is required"),
    ("label a=b", "error: one or more resources must be specified as <resource> <name> or <resource>/<name>"),
    ("label deploy myapp a=b other", "error: all resources must be specified before label changes: other"),
    ("label deploy myapp a=b=c", "error: invalid label spec: a=b=c"),
    ("label deploy myapp 'a=has space'", 'error: invalid label value: "a=has space": a valid label must be an empty'),
    ("label deploy myapp a=b a-", "error: can not both modify and remove a label in the same command"),
    ("label pods --all -l app=myapp a=b", "error: cannot set --all and --selector at the same time"),
    ("label deploy a=b", "error: resource(s) were provided, but no name was specified"),
    ("label deploy nosuch a=b", 'Error from server (NotFound): deployments.apps "nosuch" not found'),
    ("label deploy myapp a=b -o wide", 'error: unable to match a printer suitable for the output format "wide"'),
])
def test_label_refusals(kubectl, cluster, line, message):
    assert fails(kubectl, line).startswith(message)
    assert "a" not in (deployment(cluster)["metadata"].get("labels") or {})


def test_label_node_reaches_the_scheduler(kubectl, cluster):
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ssd-only"},
                   "spec": {"nodeSelector": {"disktype": "ssd"}, "containers": [{"name": "c", "image": "busybox"}]}})
    assert not cluster.get("Pod", "ssd-only")["spec"].get("nodeName")
    assert run(kubectl, "label nodes node2 disktype=ssd") == "node/node2 labeled\n"
    assert cluster.get("Node", "node2")["metadata"]["labels"]["disktype"] == "ssd"
    assert cluster.get("Pod", "ssd-only")["spec"]["nodeName"] == "node2"
    assert run(kubectl, "label node node2 disktype-") == "node/node2 unlabeled\n"
    assert "The Node \"node2\" is invalid: metadata.labels" in fails(kubectl, "label node node2 'x y=1'")


def test_label_list_dry_run_and_output(kubectl, cluster):
    run(kubectl, "label deploy myapp b=2 a=1")
    assert run(kubectl, "label deploy myapp --list") == "a=1\nb=2\n"
    assert run(kubectl, "label deploy myapp c=3 --dry-run=client") == "deployment.apps/myapp labeled (dry run)\n"
    assert "c" not in deployment(cluster)["metadata"]["labels"]
    shown = yaml.safe_load(run(kubectl, "label deploy myapp c=3 -o yaml"))
    assert shown["metadata"]["labels"] == {"a": "1", "b": "2", "c": "3"}


def test_annotate_needs_overwrite_and_removes(kubectl, cluster):
    assert run(kubectl, "annotate deploy myapp description='my frontend'") == "deployment.apps/myapp annotated\n"
    assert deployment(cluster)["metadata"]["annotations"]["description"] == "my frontend"
    assert fails(kubectl, "annotate deploy myapp description=x") == (
        "error: --overwrite is false but found the following declared annotation(s): "
        "'description' already has a value (my frontend)")
    assert run(kubectl, "annotate --overwrite deploy myapp description=x=y") == "deployment.apps/myapp annotated\n"
    assert deployment(cluster)["metadata"]["annotations"]["description"] == "x=y"
    assert run(kubectl, "annotate deploy myapp description-") == "deployment.apps/myapp annotated\n"
    assert "description" not in (deployment(cluster)["metadata"].get("annotations") or {})
    assert fails(kubectl, "annotate deploy myapp a=1 a-") == \
        "error: can not both modify and remove the following annotation(s) in the same command: a"


# -- patch ----------------------------------------------------------------------------------------

def test_patch_strategic_merges_containers_by_name(kubectl, cluster):
    patch = json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "myapp", "image": "ikubernetes/myapp:v2"}]}}}})
    assert run(kubectl, f"patch deployment myapp -p '{patch}'") == "deployment.apps/myapp patched\n"
    containers = deployment(cluster)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1 and containers[0]["image"] == "ikubernetes/myapp:v2"
    assert containers[0]["ports"]    # the rest of the container is kept
    assert run(kubectl, f"patch deployment myapp -p '{patch}'") == "deployment.apps/myapp patched (no change)\n"
    assert [rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in cluster.get("ReplicaSet")
            if rs["spec"]["replicas"]] == ["ikubernetes/myapp:v2"]


def test_patch_yaml_merge_and_json_types(kubectl, cluster):
    assert run(kubectl, "patch deploy myapp -p 'spec:\n  replicas: 5'") == "deployment.apps/myapp patched\n"
    assert deployment(cluster)["spec"]["replicas"] == 5
    run(kubectl, """patch deploy myapp --type merge -p '{"metadata":{"labels":{"a":"b"}}}'""")
    assert deployment(cluster)["metadata"]["labels"] == {"a": "b"}
    run(kubectl, """patch deploy myapp --type=json -p='[{"op": "replace", "path": "/spec/replicas", "value": 2}]'""")
    assert deployment(cluster)["spec"]["replicas"] == 2
    # merge replaces the container list whole: the container loses its ports.
    containers = json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "myapp", "image": "x"}]}}}})
    run(kubectl, f"patch deploy myapp --type merge -p '{containers}'")
    assert "ports" not in deployment(cluster)["spec"]["template"]["spec"]["containers"][0]


def test_patch_refusals_change_nothing(kubectl, cluster, tmp_path):
    before = deployment(cluster)
    cases = {
        """patch deploy myapp --type json -p '[{"op":"replace","path":"/spec/replicas","value":-1}]'""":
            'The Deployment "myapp" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0',
        "patch deploy myapp --type foo -p '{}'": 'error: --type must be one of [json merge strategic], not "foo"',
        "patch deploy myapp": "error: must specify --patch or --patch-file containing the contents of the patch",
        "patch deploy myapp -p '{bad'": 'error: unable to parse "{bad": yaml: line 1:',
        """patch deploy myapp -p '{"metadata":{"name":"x"}}'""":
            "Error from server (BadRequest): the name of the object (x) does not match the name on the URL (myapp)",
        """patch deploy myapp -p '{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}'""":
            "Error from server (BadRequest): map: map[image:x] does not contain declared merge key: name",
        "patch -p '{}'": "error: You must provide one or more resources by argument or filename.",
        """patch node node1 -p '{"spec":{"unschedulable":true}}'""":
            'The Node "node1" is invalid: spec: Forbidden: nodes come from the topology',
    }
    for line, message in cases.items():
        assert fails(kubectl, line).startswith(message), line
    after = deployment(cluster)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    patch_file = tmp_path / "patch.yaml"
    patch_file.write_text("metadata:\n  labels:\n    zone: a\n")
    assert run(kubectl, f"patch node node1 --patch-file {patch_file}") == "node/node1 patched\n"
    assert cluster.get("Node", "node1")["metadata"]["labels"]["zone"] == "a"


def test_patch_record_dry_run_and_output(kubectl, cluster):
    line = """patch deploy myapp -p '{"spec":{"replicas":4}}' --record"""
    assert run(kubectl, line) == "deployment.apps/myapp patched\n"
    assert deployment(cluster)["metadata"]["annotations"][CHANGE_CAUSE] == \
        """kubectl patch deploy myapp --patch={"spec":{"replicas":4}} --record=true"""
    assert run(kubectl, """patch deploy myapp -p '{"spec":{"replicas":7}}' --dry-run=client""") == \
        "deployment.apps/myapp patched (dry run)\n"
    assert deployment(cluster)["spec"]["replicas"] == 4
    shown = json.loads(run(kubectl, """patch svc myapp-svc -p '{"spec":{"ports":[{"port":80,"targetPort":8080}]}}' -o json"""))
    assert shown["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 8080}]


# -- edit -----------------------------------------------------------------------------------------

EDITOR_SCRIPT = '''
import os, re, shutil, sys
path = sys.argv[1]
log = os.environ["EDIT_LOG"]
seen = sorted(f for f in os.listdir(log))
shutil.copy(path, os.path.join(log, "pass%d" % len(seen)))
steps = os.environ["EDIT_STEPS"].split("|")
step = steps[min(len(seen), len(steps) - 1)]
if step != "keep":
    old, new = step.split("=>")
    text = open(path).read()
    open(path, "w").write(re.sub(old, new, text, count=1))
'''


@pytest.fixture
def edit(cluster, tmp_path):
    """`edit(line, steps)`: run kubectl edit with an editor that applies one `regex=>text` per pass
    (`keep` saves unchanged); returns (output, ok, files the editor was shown)."""
    script = tmp_path / "editor.py"
    script.write_text(EDITOR_SCRIPT)

    def run_edit(line: str, steps: str):
        log = tmp_path / f"log{len(list(tmp_path.iterdir()))}"
        log.mkdir()
        environ = {"EDITOR": f"{sys.executable} {script}", "EDIT_STEPS": steps, "EDIT_LOG": str(log),
                   "PATH": os.environ.get("PATH", "")}
        result = execute_line(Kubectl(cluster, environ=environ), line)
        return result.output, result.ok, [p.read_text() for p in sorted(log.iterdir())]
    return run_edit


def test_edit_applies_the_saved_object(edit, cluster):
    out, ok, shown = edit("kubectl edit deploy myapp", "replicas: 3=>replicas: 4")
    assert (out, ok) == ("deployment.apps/myapp edited\n", True)
    assert deployment(cluster)["spec"]["replicas"] == 4
    assert shown[0].startswith("# Please edit the object below. Lines beginning with a '#' will be ignored,\n")
    assert yaml.safe_load(shown[0])["metadata"]["name"] == "myapp"


def test_edit_without_change_is_cancelled(edit, cluster):
    version = deployment(cluster)["metadata"]["resourceVersion"]
    assert edit("edit deploy myapp", "keep")[:2] == ("Edit cancelled, no changes made.\n", True)
    assert edit("edit deploy myapp", "(?s).*=>")[:2] == ("Edit cancelled, saved file was empty.\n", True)
    assert deployment(cluster)["metadata"]["resourceVersion"] == version


def test_edit_record_sets_the_change_cause(edit, cluster):
    edit("kubectl edit deploy myapp --record", "image: ikubernetes/myapp:v1=>image: ikubernetes/myapp:v2")
    annotations = deployment(cluster)["metadata"]["annotations"]
    assert annotations[CHANGE_CAUSE] == "kubectl edit deploy myapp --record=true"
    history = Kubectl(cluster).run(["rollout", "history", "deployment/myapp"])
    assert "kubectl edit deploy myapp --record=true" in history


def test_edit_invalid_reopens_with_the_error_and_keeps_nothing(edit, cluster, tmp_path):
    out, ok, shown = edit("edit deploy myapp", "replicas: 3=>replicas: -2|keep")
    assert not ok
    first, copy_line, last = out.splitlines()
    assert first == 'error: deployments.apps "myapp" is invalid'
    assert copy_line.startswith('A copy of your changes has been stored to "') and "kubectl-edit-" in copy_line
    assert last == "error: Edit cancelled, no valid changes were saved."
    assert ('# deployments.apps "myapp" was not valid:\n'
            "# * spec.replicas: Invalid value: -2: must be greater than or equal to 0\n#\n") in shown[1]
    assert "replicas: -2" in shown[1]              # the user's text comes back, not the original
    assert deployment(cluster)["spec"]["replicas"] == 3
    os.remove(copy_line.split('"')[1])


def test_edit_invalid_then_fixed_is_applied(edit, cluster):
    out, ok, shown = edit("edit deploy myapp", "replicas: 3=>replicas: -2|replicas: -2=>replicas: 6")
    assert (out, ok) == ('error: deployments.apps "myapp" is invalid\ndeployment.apps/myapp edited\n', True)
    assert deployment(cluster)["spec"]["replicas"] == 6 and len(shown) == 2


def test_edit_syntax_error_and_identity_change(edit, cluster):
    out, ok, shown = edit("edit deploy/myapp", "replicas: 3=>replicas: [|keep")
    assert not ok and out.endswith("error: Edit cancelled, no valid changes were saved.")
    assert "# The edited file had a syntax error: error converting YAML to JSON: yaml: line" in shown[1]
    os.remove(out.split('"')[1])
    out, ok, _ = edit("edit deploy myapp", "name: myapp=>name: renamed")
    assert not ok and out.endswith("error: At least one of apiVersion, kind and name was changed")
    os.remove(out.split('"')[1])
    assert deployment(cluster)["spec"]["replicas"] == 3


def test_edit_several_objects_as_a_list(edit, cluster):
    out, ok, shown = edit("edit svc myapp-svc myapp-svc-nodeport", "nodePort: 32223=>nodePort: 32224")
    assert ok and out == "service/myapp-svc skipped\nservice/myapp-svc-nodeport edited\n"
    assert yaml.safe_load(shown[0])["kind"] == "List"
    assert cluster.get("Service", "myapp-svc-nodeport")["spec"]["ports"][0]["nodePort"] == 32224


def test_edit_node_labels_and_nothing_else(edit, cluster):
    out, ok, _ = edit("edit node node1", "kubernetes.io/os: linux=>kubernetes.io/os: linux\n    zone: east")
    assert (out, ok) == ("node/node1 edited\n", True)
    assert cluster.get("Node", "node1")["metadata"]["labels"]["zone"] == "east"
    out, ok, shown = edit("edit node node1", "podCIDR: 10.244.0.0/24=>podCIDR: 10.244.9.0/24|keep")
    assert not ok and out.startswith('error: nodes "node1" is invalid\n')
    assert "# * spec: Forbidden: nodes come from the topology: only their labels and annotations can change" in shown[1]
    os.remove(out.split('"')[3])
    assert cluster.get("Node", "node1")["spec"]["podCIDR"] == "10.244.0.0/24"


def test_ctrl_c_in_the_editor_is_the_editors(cluster, tmp_path):
    """The terminal sends Ctrl-C to kubectl too; kubectl must not die of it while the editor runs."""
    script = tmp_path / "interrupting_editor.py"
    script.write_text("import os, signal, sys, time\n"
                      "os.kill(os.getppid(), signal.SIGINT)\n"
                      "time.sleep(0.2)\n"
                      "path = sys.argv[1]\n"
                      "text = open(path).read().replace('replicas: 3', 'replicas: 2')\n"
                      "open(path, 'w').write(text)\n")
    kubectl = Kubectl(cluster, environ={"EDITOR": f"{sys.executable} {script}", "PATH": os.environ["PATH"]})
    assert kubectl.run(["edit", "deploy", "myapp"]) == "deployment.apps/myapp edited\n"
    assert deployment(cluster)["spec"]["replicas"] == 2


def test_edit_editor_problems(cluster, tmp_path):
    missing = Kubectl(cluster, environ={"EDITOR": "no-such-editor-here", "PATH": "/nonexistent"})
    assert execute_line(missing, "edit deploy myapp").output == 'error: unable to launch the editor "no-such-editor-here"'
    failing = Kubectl(cluster, environ={"KUBE_EDITOR": "false", "EDITOR": "vi", "PATH": os.environ["PATH"]})
    assert execute_line(failing, "edit deploy myapp").output == 'error: there was a problem with the editor "false"'


# -- version, cluster-info, unknown verbs -----------------------------------------------------------

def test_version_reports_the_nodes_release(kubectl):
    assert run(kubectl, "version") == "Client Version: v1.31.0-testbed\nServer Version: v1.31.0-testbed\n"
    assert run(kubectl, "version --client") == "Client Version: v1.31.0-testbed\n"
    info = json.loads(run(kubectl, "version -o json"))
    assert info["serverVersion"]["major"] == "1" and info["serverVersion"]["minor"] == "31"
    assert fails(kubectl, "version -o wide") == "error: --output must be 'yaml' or 'json'"


def test_cluster_info_names_the_api_server_and_coredns(kubectl):
    assert run(kubectl, "cluster-info") == (
        "Kubernetes control plane is running at https://10.96.0.1:443\n"
        "CoreDNS is running at https://10.96.0.1:443/api/v1/namespaces/kube-system/services/kube-dns:dns/proxy\n"
        "\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n")


def test_unknown_verbs_still_say_unknown_command(kubectl):
    assert fails(kubectl, "frobnicate pods") == 'error: unknown command "frobnicate" for "kubectl"'
    assert fails(kubectl, "lable pods") == 'error: unknown command "lable" for "kubectl"\n\nDid you mean this?\n\tlabel\n'
    result = execute_line(kubectl, "kubectl pach deploy myapp")
    assert not result.ok and result.output.startswith('error: unknown command "pach" for "kubectl"')
    assert "\tpatch" in result.output
