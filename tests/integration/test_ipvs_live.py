"""ipvs mode against a real kernel's IPVS (under `testbed vm` on a host without it), beyond the
shared live suite: the render loads with ipvsadm-restore, the node holds what kube-proxy's ipvs
proxier leaves (kube-ipvs0 with the VIPs, virtual servers, ipsets, sysctls), a per-Service
scheduler takes effect, and cleanup leaves nothing of the mode."""
import subprocess
import uuid

import pytest

from testbed import Cluster
from testbed.backends.ipvs import IPSETS, SYSCTLS, render_ipvs
from testbed.proxy.render import node_infos
from tests.integration.conftest import skip_unless_runnable
from tests.support.live import curl


def run(*args, input=None):
    return subprocess.run(args, input=input, capture_output=True, text=True)


@pytest.fixture(scope="module")
def cluster():
    skip_unless_runnable("ipvs")
    with Cluster(topo="default", proxy_mode="ipvs", seed=3) as c:
        c.apply("examples/myapp.yaml")
        yield c


def test_the_render_loads_with_ipvsadm_restore_in_a_scratch_namespace():
    skip_unless_runnable("ipvs")
    c = Cluster(network=False, seed=1)
    c.apply("examples/")
    node = node_infos(c)[0]
    text = render_ipvs(c.service_ports(), node)
    name = f"tbtest-ipvs-{uuid.uuid4().hex[:6]}"
    run("ip", "netns", "add", name)
    try:
        run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        loaded = run("ip", "netns", "exec", name, "ipvsadm-restore", input=text)
        assert loaded.returncode == 0 and loaded.stderr == ""
        saved = run("ip", "netns", "exec", name, "ipvsadm", "-S", "-n").stdout
        assert sorted(saved.splitlines()) == sorted(line for line in text.splitlines() if not line.startswith("#"))
    finally:
        run("ip", "netns", "del", name)


def test_the_node_holds_kube_proxys_ipvs_state(cluster):
    node = cluster.node("node1")
    vip = cluster.get("svc", "myapp-svc")["spec"]["clusterIP"]
    assert f"inet {vip}/32" in node.cmd("ip -o addr show dev kube-ipvs0")
    assert "state DOWN" in node.cmd("ip link show kube-ipvs0")       # as kube-proxy leaves it
    saved = node.cmd("ipvsadm -S -n")
    assert f"-A -t {vip}:80 -s rr" in saved and saved.count(f"-a -t {vip}:80 -r ") == 3
    sets = node.cmd("ipset list -n").split()
    assert set(sets) >= {s.name for s in IPSETS}
    assert f"{vip},tcp:80" in node.cmd("ipset list KUBE-CLUSTER-IP")
    for key, value in SYSCTLS:
        assert node.cmd(f"sysctl -n {key}").strip() == value


def test_a_per_service_scheduler_and_persistence(cluster):
    cluster.apply("""
apiVersion: v1
kind: Service
metadata: {name: hashed, annotations: {testbed.io/lb-algorithm: sh}}
spec: {selector: {app: myapp}, ports: [{port: 80}]}
""")
    vip = cluster.get("svc", "hashed")["spec"]["clusterIP"]
    client = cluster.client()
    node = cluster.get("pod", "client")["spec"]["nodeName"]
    assert f"-A -t {vip}:80 -s sh" in cluster.node(node).cmd("ipvsadm -S -n")
    assert len({curl(client, f"http://{vip}/hostname.html") for _ in range(10)}) == 1   # source hashing
    sticky = cluster.get("svc", "myapp-sticky")["spec"]["clusterIP"]
    assert f"-A -t {sticky}:80 -s rr -p 10800" in cluster.node(node).cmd("ipvsadm -S -n")
    cluster.delete("svc", "hashed")
    assert f"{vip}:80" not in cluster.node(node).cmd("ipvsadm -S -n")
    assert f"inet {vip}/32" not in cluster.node(node).cmd("ip -o addr show dev kube-ipvs0")


def test_cleanup_leaves_nothing_of_the_mode(cluster):
    node = cluster.node("node3")
    proxier = cluster.emulation.dataplane.proxiers["node3"]
    proxier.cleanup()
    try:
        assert node.cmd("ipvsadm -S -n").strip() == ""
        assert "kube-ipvs0" not in node.cmd("ip link")
        assert [line for line in node.cmd("iptables-save").splitlines() if line.startswith("-A")] == []
        assert not set(node.cmd("ipset list -n").split()) & {s.name for s in IPSETS}
    finally:
        proxier.sync(cluster.service_ports(), None)
