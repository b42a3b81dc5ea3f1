"""SDN mode on real Open vSwitch (userspace datapath) with Mininet hosts and the controller process.

One small instance of the wiring for the module (2 nodes x 2 pods, tb-sdnfab, an external host; see
tests/support/sdn_wiring.py), one controller process; each test pushes the Services it needs.
Marked `slow`: the two tests that restart the controller (a few seconds each). The whole module
takes about 10 s here.
"""
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest

from testbed.net import addressing
from testbed.net.ovs import vsctl
from testbed.proxy.model import Endpoint, ServicePort
from testbed.sdn.client import SdnControllerProcess
from testbed.sdn.pipeline import render_openflow


OFP_PORT = 16653
VIP = "10.96.0.10"
LB_IP = "172.18.255.200"


def free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]


@pytest.fixture(scope="module")
def wiring(require_root, tmp_path_factory):
    from tests.support.sdn_wiring import SdnWiring     # Mininet: only for root
    port = free_port(OFP_PORT)
    wiring = SdnWiring(nodes=2, pods_per_node=2, ofp_port=port)
    socket_path = tmp_path_factory.mktemp("sdn") / "sdn.sock"
    controller = SdnControllerProcess(ofp_port=port, socket_path=socket_path)
    try:
        wiring.build()
        wiring.start_servers()
        controller.start()
        wiring.controller = controller
        wiring.client = controller.client()
        wiring.client.set_state(wiring.topology, [])
        wiring.client.wait_programmed(timeout=20)
        yield wiring
    finally:
        controller.stop()
        wiring.close()


def endpoints(wiring, *names, port=8080):
    return tuple(sorted((Endpoint(p.ip, port, p.node, pod_name=p.name) for p in wiring.topology.pods if p.name in names),
                        key=lambda e: e.address))


def web(wiring, *names, port=80, target=8080, **kwargs):
    return ServicePort("default", kwargs.pop("name", "web"), "", "TCP", port, kwargs.pop("vip", VIP),
                       endpoints=endpoints(wiring, *names, port=target), **kwargs)


def push(wiring, *ports, announcements=None):
    ack = wiring.client.upsert_service("default", ports[0].name, list(ports), announcements)
    assert not ack.pending and all(not s["errors"] for s in ack.programmed.values()), ack
    return ack


def served_by(body: str) -> str:
    return body.split()[0] if body else ""


def test_clusterip_from_pods_and_the_node_nodeport_from_outside(wiring):
    push(wiring, web(wiring, "pod01", "pod11", service_type="NodePort", node_port=30080))
    seen = {served_by(wiring.curl("pod00", f"http://{VIP}/")) for _ in range(12)}
    assert seen == {"pod01", "pod11"}                              # both nodes' endpoints, cross-node included
    pod_client = wiring.curl("pod10", f"http://{VIP}/")
    assert pod_client.split()[1].startswith(wiring.pod("pod10").ip + ":")   # pods are not masqueraded
    node_client = wiring.curl("sdn0", f"http://{VIP}/")
    assert node_client.split()[1].startswith(addressing.node_ip(0) + ":")   # host network: masqueraded
    for node in range(2):
        body = wiring.curl("external", f"http://{addressing.node_ip(node)}:30080/")
        assert served_by(body) in {"pod01", "pod11"}
        assert body.split()[1].startswith(addressing.node_ip(node) + ":")   # Cluster policy: SNAT to the node


def test_external_traffic_policy_local_keeps_the_client_address(wiring):
    push(wiring, web(wiring, "pod01", "pod11", name="local", vip="10.96.0.11", service_type="NodePort",
                     node_port=30081, external_policy_local=True))
    for _ in range(4):
        body = wiring.curl("external", f"http://{addressing.node_ip(1)}:30081/")
        assert served_by(body) == "pod11" and body.split()[1].startswith(addressing.EXTERNAL_IP + ":")


def test_loadbalancer_ip_is_announced_by_its_node(wiring):
    push(wiring, web(wiring, "pod00", name="lb", vip="10.96.0.12", service_type="LoadBalancer", node_port=30082,
                     load_balancer_ips=(LB_IP,)), announcements={LB_IP: "sdn1"})
    body = wiring.curl("external", f"http://{LB_IP}/")
    assert served_by(body) == "pod00" and body.split()[1].startswith(addressing.node_ip(1) + ":")
    neighbours = wiring.host("external").cmd(f"ip neigh show {LB_IP}")
    assert wiring.topology.bridge("sdn1").node_mac in neighbours


def test_hairpin_and_no_endpoints(wiring):
    push(wiring, web(wiring, "pod00", name="self", vip="10.96.0.13"))
    body = wiring.curl("pod00", "http://10.96.0.13/")
    assert served_by(body) == "pod00" and body.split()[1].startswith(wiring.topology.bridge("sdn0").gateway_ip + ":")
    push(wiring, web(wiring, name="empty", vip="10.96.0.14"))
    started = time.monotonic()
    result = wiring.host("pod00").cmd("curl -s --max-time 5 http://10.96.0.14/; echo exit=$?")
    assert "exit=7" in result and time.monotonic() - started < 2        # refused (RST), not a timeout


def active_connections(wiring, node="sdn0") -> int:
    return sum(sum(per_endpoint.values()) for per_endpoint in wiring.client.connections(node).values())


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_rr_rotates_strictly_and_counts_connections_from_installs_and_removals(wiring):
    push(wiring, web(wiring, "pod01", "pod10", "pod11", name="rr", vip="10.96.0.15", lb_algorithm="rr"))
    order = [served_by(wiring.curl("pod00", "http://10.96.0.15/")) for _ in range(6)]
    assert order[:3] == order[3:] and sorted(order[:3]) == ["pod01", "pod10", "pod11"]
    assert wait_for(lambda: active_connections(wiring) == 0)     # closed: flows gone 1 s after FIN
    holder = wiring.host("pod00").popen(
        [sys.executable, "-c", "import socket,sys; s=socket.create_connection(('10.96.0.15',80)); sys.stdin.read()"],
        stdin=subprocess.PIPE)
    try:
        assert wait_for(lambda: active_connections(wiring) == 1)
    finally:
        holder.stdin.close()
        holder.wait(5)
    assert wait_for(lambda: active_connections(wiring) == 0)


def test_client_ip_affinity_sticks(wiring):
    push(wiring, web(wiring, "pod01", "pod10", "pod11", name="sticky", vip="10.96.0.16", affinity_timeout=60))
    assert len({served_by(wiring.curl("pod00", "http://10.96.0.16/")) for _ in range(8)}) == 1
    assert len({served_by(wiring.curl("pod10", "http://10.96.0.16/")) for _ in range(8)}) == 1


def test_rendered_text_is_what_the_controller_programs(wiring, tmp_path):
    """`testbed render openflow` output loaded with ovs-ofctl equals the controller's flows."""
    ports = [web(wiring, "pod01", "pod11", name="cmp", vip="10.96.0.17", service_type="NodePort", node_port=30083,
                 affinity_timeout=30),
             web(wiring, "pod10", name="cmp2", vip="10.96.0.18", lb_algorithm="maglev")]
    wiring.client.set_state(wiring.topology, ports)
    rendered = tmp_path / "sdn0.txt"
    rendered.write_text(render_openflow(ports, wiring.topology, "sdn0"))
    scratch = "tb-sdnchk"
    try:
        vsctl("add-br", scratch, "--", "set", "bridge", scratch, "datapath_type=netdev", "fail_mode=secure",
              "protocols=OpenFlow13")
        for command in re.findall(r"^#   (grep .*)$", rendered.read_text(), re.MULTILINE):   # as the header says
            command = command.replace("FILE", str(rendered)).replace("tb-sdn0", scratch)
            subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True)

        def flows(bridge):
            out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", bridge],
                                 capture_output=True, text=True, check=True).stdout
            return sorted(line.strip() for line in out.splitlines() if "cookie=" in line and "table=11" not in line)

        def groups(bridge):
            out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", bridge],
                                 capture_output=True, text=True, check=True).stdout
            return sorted(line.strip() for line in out.splitlines() if "group_id=" in line)

        assert len(flows(scratch)) > 100 and len(groups(scratch)) == 1
        assert flows(scratch) == flows("tb-sdn0") and groups(scratch) == groups("tb-sdn0")
    finally:
        vsctl("--if-exists", "del-br", scratch, check=False)
        wiring.client.set_state(wiring.topology, [])


def ofctl(*args):
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args], capture_output=True, text=True, check=True).stdout


@contextmanager
def controller_down(wiring, ports):
    """Stop the controller for the body of the with block, then start it, give it the same state
    back and wait until every bridge has reconnected and been resynced."""
    wiring.controller.stop()
    yield
    wiring.controller.start()
    wiring.client = wiring.controller.client()
    wiring.client.set_state(wiring.topology, ports)
    wiring.client.wait_programmed(timeout=20)


@pytest.mark.slow
def test_restarted_controller_repairs_flows_changed_while_it_was_down(wiring):
    svc = web(wiring, "pod01", name="resync", vip="10.96.0.20")
    wiring.client.set_state(wiring.topology, [svc])
    bridge = wiring.topology.bridge("sdn0")
    with controller_down(wiring, [svc]):
        ofctl("del-flows", bridge.name, "--strict", f"table=30,priority=100,ip,nw_dst={wiring.pod('pod01').ip}")
        ofctl("add-flow", bridge.name, "table=40,priority=5,cookie=0x99,in_port=7,actions=drop")
        assert wiring.curl("pod00", "http://10.96.0.20/", timeout=1) == ""      # the route to pod01 is gone
    resync = wiring.client.status()["sdn0"]["last_resync"]
    assert (resync["flows_added"], resync["flows_deleted"]) == (1, 1)
    assert "cookie=0x99" not in ofctl("dump-flows", bridge.name, "table=40")
    assert served_by(wiring.curl("pod00", "http://10.96.0.20/")) == "pod01"


def frontend_packets(bridge: str, vip: str) -> int:
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge, "table=10"],
                         capture_output=True, text=True, check=True).stdout
    line = next(entry for entry in out.splitlines() if f"nw_dst={vip}," in entry)
    return int(re.search(r"n_packets=(\d+)", line).group(1))


@pytest.mark.slow
def test_controller_restart_keeps_established_connections(wiring):
    svc = web(wiring, "pod11", name="echo", vip="10.96.0.19", port=9000, target=9000)
    wiring.client.set_state(wiring.topology, [svc])
    script = ("import socket,sys\n"
              "s=socket.create_connection(('10.96.0.19',9000),timeout=5)\n"
              "f=s.makefile('rw')\n"
              "for line in sys.stdin:\n"
              "    f.write(line); f.flush(); print(f.readline().strip(), flush=True)\n")
    client = wiring.host("pod00").popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
    try:
        def echo(word):
            client.stdin.write(word + "\n")
            client.stdin.flush()
            return client.stdout.readline().strip()

        assert echo("before") == "pod11 before"
        packets = frontend_packets("tb-sdn0", "10.96.0.19")
        with controller_down(wiring, [svc]):
            assert echo("while-down") == "pod11 while-down"       # fail_mode secure: flows stay
        status = wiring.client.status()
        for node in status.values():                               # the resync found every flow in place
            resync = node["last_resync"]
            assert node["synced"] and resync["flows_on_switch"] >= node["flows"] > 50
            assert resync["flows_added"] == resync["flows_deleted"] == resync["groups_added"] == 0
        assert frontend_packets("tb-sdn0", "10.96.0.19") >= packets   # counters kept: flows not replaced
        assert echo("after") == "pod11 after"
    finally:
        client.kill()
        client.wait()
