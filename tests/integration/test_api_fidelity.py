"""The Python API behaves as the design contract says (bugs found when the project was tried as a
new user would): Mininet nodes with IP(), shells whose output is not cut short, and containers
with a container's environment - nothing of the host's."""
import os

import pytest

from testbed import Cluster
from testbed.net import addressing

MANIFEST = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {LOG_LEVEL: debug, MODE: fast}
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: web
    image: nginx
    env: [{name: GREETING, value: hello}, {name: MY_NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
    envFrom: [{configMapRef: {name: settings}, prefix: CFG_}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
"""


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces, Open vSwitch)")
    with Cluster(topo="default", seed=5, cluster_dns=False) as c:
        c.apply(MANIFEST)
        yield c


def test_nodes_pods_and_the_external_host_report_their_ip(cluster):
    assert [n.IP() for n in cluster.nodes()] == [addressing.node_ip(i) for i in range(3)]
    assert cluster.node("node2").IP() == addressing.node_ip(1)
    assert cluster.pod("web").IP() == cluster.get("pod", "web")["status"]["podIP"]
    assert cluster.external().IP() == addressing.EXTERNAL_IP


def test_env_output_is_whole_and_the_next_command_gets_its_own(cluster):
    """Mininet stops reading at its prompt sentinel (0x7f); an exported PS1 put it into `env`'s
    output, and the rest came back as the answer to the next command."""
    pod = cluster.pod("web")
    env = pod.cmd("env")
    count = pod.cmd("env | wc -l").strip()
    assert len(env.strip().splitlines()) == int(count)
    assert "\x7f" not in env
    assert pod.cmd("echo next-answer").strip() == "next-answer"


@pytest.mark.parametrize("how", ["exec", "kubectl"])
def test_exec_shows_the_containers_environment_and_nothing_of_the_hosts(cluster, how):
    if how == "exec":
        text = cluster.exec("web", "env")
    else:
        from testbed.kubectl import Kubectl
        text = Kubectl(cluster).run(["exec", "web", "--", "env"])
    env = dict(line.split("=", 1) for line in text.strip().splitlines() if "=" in line)
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["HOSTNAME"] == "web" and env["HOME"] == "/root"
    assert env["GREETING"] == "hello" and env["MY_NODE"] == cluster.get("pod", "web")["spec"]["nodeName"]
    assert env["CFG_LOG_LEVEL"] == "debug" and env["CFG_MODE"] == "fast"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["WEB_SERVICE_HOST"] == cluster.get("svc", "web")["spec"]["clusterIP"]
    host_only = {k for k in os.environ if k not in ("PATH", "HOME", "HOSTNAME", "PWD", "SHLVL", "_", "TERM")}
    assert not host_only & set(env), host_only & set(env)
    assert [k for k in env if k.startswith("TESTBED_")] == ["TESTBED_CLUSTER"]   # the clean-up marker only


def test_a_container_whose_environment_cannot_be_execd_fails_as_in_kubernetes(cluster):
    """Too large an environment (here one 200 KiB variable, over the kernel's 128 KiB limit for
    one string; at 10,000 Services the Service variables alone exceed ARG_MAX) fails the
    container's exec: StartError with runc's message, then CrashLoopBackOff; the pod is not Ready
    and `get pods` says why. The pod's shell still works."""
    from testbed.kubectl import Kubectl
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge-env"},
                   "spec": {"containers": [{"name": "app", "image": "nginx",
                                            "env": [{"name": "BIG", "value": "x" * 200_000}]}]}})
    pod = cluster.get("pod", "huge-env")
    status = pod["status"]["containerStatuses"][0]
    terminated = status.get("lastState", {}).get("terminated") or status["state"].get("terminated") or {}
    assert terminated.get("reason") == "StartError" and terminated.get("exitCode") == 128
    assert "argument list too long" in terminated.get("message", "")
    assert not status["ready"]
    assert any(c["type"] == "Ready" and c["status"] == "False" for c in pod["status"]["conditions"])
    row = Kubectl(cluster).run(["get", "pod", "huge-env"]).splitlines()[1].split()
    assert row[1] == "0/1" and row[2] in ("StartError", "CrashLoopBackOff")
    assert cluster.pod("huge-env").cmd("echo alive").strip() == "alive"
