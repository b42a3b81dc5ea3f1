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
