"""userspace mode in a running cluster, beyond the shared live suite: the bytes go through the
proxy process, the process is marked as the cluster's, a listener per Service port, the portal
rules point at the listeners, and cleanup leaves a node as a fresh one."""
import json
import os
import socket
from pathlib import Path

import pytest

from testbed import Cluster
from testbed.backends.userspace import CHAINS
from tests.integration.conftest import skip_unless_runnable
from tests.support.live import curl


@pytest.fixture(scope="module")
def cluster():
    skip_unless_runnable("userspace")
    with Cluster(topo="default", proxy_mode="userspace", seed=5) as c:
        c.apply("examples/myapp.yaml")
        yield c


def proxier(cluster, node="node1"):
    return cluster.emulation.dataplane.proxiers[node]


def stats(cluster, node="node1") -> dict:
    control = proxier(cluster, node).process.control
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(control))
        sock.sendall(b'{"op": "stats"}\n')
        return json.loads(sock.makefile().readline())


def test_a_proxy_process_per_node_marked_as_the_clusters(cluster):
    for node in cluster.topology.nodes:
        proc = proxier(cluster, node).process.proc
        assert proc.poll() is None
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        assert f"TESTBED_CLUSTER={cluster.emulation.cluster_id}".encode() in environ
        node_pid = cluster.emulation.nodes.pids[node]
        assert os.stat(f"/proc/{proc.pid}/ns/net").st_ino == os.stat(f"/proc/{node_pid}/ns/net").st_ino


def test_connections_go_through_the_proxy(cluster):
    client = cluster.client()
    node = cluster.get("pod", "client")["spec"]["nodeName"]
    before = stats(cluster, node)["accepted"]
    answers = {curl(client, "http://myapp-svc/hostname.html") for _ in range(6)}
    assert answers and all(a.startswith("myapp-") for a in answers)
    assert stats(cluster, node)["accepted"] >= before + 6


def test_every_service_port_has_a_listener_and_portals_point_at_it(cluster):
    p = proxier(cluster)
    ports = {m["id"]: m["port"] for s in p._installed.values() for m in s.listeners}
    assert "default/myapp-svc/TCP" in ports and "kube-system/kube-dns:dns/UDP" in ports
    listening = cluster.node("node1").cmd("ss -Hltnu")
    for port in ports.values():
        assert f":{port} " in listening
    saved = cluster.node("node1").cmd("iptables-save -t nat").splitlines()
    vip = cluster.get("svc", "myapp-svc")["spec"]["clusterIP"]
    redirect = [line for line in saved if line.startswith("-A KUBE-PORTALS-CONTAINER") and f"-d {vip}/32" in line]
    assert len(redirect) == 1 and redirect[0].endswith(f"--to-ports {ports['default/myapp-svc/TCP']}")


def test_cleanup_leaves_the_node_like_a_fresh_one(cluster):
    """kube-proxy --cleanup: no rule, no chain of the mode, no proxy, no policy routing left."""
    node = cluster.node("node3")
    p = proxier(cluster, "node3")
    p.cleanup()
    try:
        state = node.cmd("iptables-save")
        assert [line for line in state.splitlines() if line.startswith("-A")] == []
        assert not any(chain in state for _, chain in CHAINS)
        assert "lookup 166" not in node.cmd("ip rule") and node.cmd("ip route show table 166").strip() == ""
        assert node.cmd("sysctl -n net.ipv4.ip_local_reserved_ports").strip() == ""
        assert not p.process.running()
    finally:
        p.sync(cluster.service_ports(), None)   # put it back for any later test
