"""The OS-Ken messages say exactly what the ovs-ofctl text says (checked by ovs-ofctl itself),
the fast encoder gives OS-Ken's bytes, and the reject packets are well-formed."""
import re
import shutil
import subprocess

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from testbed.proxy.model import Endpoint, ServicePort
from testbed.sdn import openflow
from testbed.sdn.flows import flow_to_ofctl, group_to_ofctl
from testbed.sdn.packets import rejection
from testbed.sdn.pipeline import bridge_flows
from testbed.sdn.state import tracking_flow, ClusterState
from testbed.sdn.wiring import Wiring
from tests.support.sdn_pods import pod_at

LB_IP = "172.18.255.200"


@pytest.fixture(scope="module")
def rich():
    """A bridge with every kind of flow: affinity, every policy, source ranges, hash and reactive
    algorithms, a Service without endpoints, and a per-connection flow."""
    base = Wiring.for_nodes(2)
    pods = [pod_at(b, s, "default", f"p{b.index}{s}") for b in base.bridges for s in range(2)]
    topo = Wiring.for_nodes(2, pods=pods, announcements={LB_IP: "node0"})
    eps = (Endpoint("10.244.0.2", 8080, "node0"), Endpoint("10.244.1.2", 8080, "node1"))
    ports = [
        ServicePort("default", "lb", "", "TCP", 80, "10.96.0.10", service_type="LoadBalancer", node_port=30080,
                    load_balancer_ips=(LB_IP,), external_policy_local=True, affinity_timeout=100, endpoints=eps),
        ServicePort("default", "mg", "", "UDP", 53, "10.96.0.11", lb_algorithm="maglev", endpoints=eps),
        ServicePort("default", "rr", "", "TCP", 80, "10.96.0.12", lb_algorithm="rr", service_type="LoadBalancer",
                    load_balancer_ips=("172.18.255.201",), load_balancer_source_ranges=("1.2.3.0/24",), endpoints=eps),
        ServicePort("default", "sh", "", "TCP", 81, "10.96.0.13", lb_algorithm="sh", external_ips=("172.18.100.1",),
                    internal_policy_local=True, endpoints=eps),
        ServicePort("default", "none", "", "TCP", 80, "10.96.0.14"),
    ]
    state = bridge_flows(topo, "node0", ports)
    instance = next(i for i in ClusterState(topo, ports).instances_for("node0").values() if i.reactive)
    state.flows.append(tracking_flow(instance, ("10.244.0.3", 40000, "10.244.1.2", 8080, 6)))
    return state


def serialized(msg) -> bytes:
    msg.set_xid(1)
    msg.serialize()
    return bytes(msg.buf)


def test_fast_encoding_is_byte_for_byte_os_kens(rich):
    for flow in rich.flows:
        assert openflow.encode_flow_mod(flow, 1) == serialized(openflow.flow_mod(flow)), flow
        match = openflow.ofp_match(flow.match)
        expected = serialized(openflow.delete_flow_strict(openflow.PROTOCOL, flow.table, flow.priority, match, flow.cookie))
        assert openflow.encode_delete_strict(flow, 1) == expected


@pytest.mark.skipif(not shutil.which("ovs-ofctl"), reason="needs ovs-ofctl (Open vSwitch) to decode OpenFlow")
def test_os_ken_messages_and_ofctl_text_are_the_same_to_open_vswitch(rich, tmp_path):
    binary, text = tmp_path / "msgs.bin", tmp_path / "flows.txt"
    binary.write_bytes(b"".join(serialized(openflow.flow_mod(f)) for f in rich.flows))
    text.write_text("".join(flow_to_ofctl(f) + "\n" for f in rich.flows))
    decoded = subprocess.run(["ovs-ofctl", "ofp-parse", str(binary)], capture_output=True, text=True, check=True)
    parsed = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "parse-flows", str(text)],
                            capture_output=True, text=True, check=True)

    def messages(out):
        return [re.sub(r"\(xid=0x[0-9a-f]+\)", "", line) for line in out.splitlines() if line.startswith("OFPT_")]

    assert "decode error" not in decoded.stdout and decoded.stderr == ""
    assert messages(decoded.stdout) == messages(parsed.stdout)
    assert len(messages(parsed.stdout)) == len(rich.flows)
    for group in rich.groups:
        ours = subprocess.run(["ovs-ofctl", "ofp-parse", "/dev/stdin"], input=serialized(openflow.group_mod(group)),
                              capture_output=True, check=True).stdout.decode()
        theirs = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "parse-group", group_to_ofctl(group)],
                                capture_output=True, text=True, check=True).stdout
        assert ours.splitlines()[1].replace("bucket=weight:1,", "bucket=") == theirs.splitlines()[-1].replace(
            "bucket=weight:1,", "bucket="), group


def frame(layer4) -> bytes:
    return bytes(Ether(src="0a:58:0a:f4:00:02", dst="02:42:ac:12:00:0a") / IP(src="10.244.0.2", dst="10.96.0.10") / layer4)


def test_a_syn_is_answered_with_rst_ack():
    answer = Ether(rejection(frame(TCP(sport=40000, dport=80, flags="S", seq=1000))))
    assert (answer.src, answer.dst) == ("02:42:ac:12:00:0a", "0a:58:0a:f4:00:02")
    assert (answer[IP].src, answer[IP].dst) == ("10.96.0.10", "10.244.0.2")
    assert (answer[TCP].sport, answer[TCP].dport, str(answer[TCP].flags), answer[TCP].ack) == (80, 40000, "RA", 1001)
    assert answer[IP].chksum == IP(bytes(answer[IP])).chksum


def test_a_segment_with_ack_gets_a_bare_rst_with_its_sequence():
    answer = Ether(rejection(frame(TCP(sport=40000, dport=80, flags="A", seq=5, ack=777))))
    assert (str(answer[TCP].flags), answer[TCP].seq) == ("R", 777)


def test_udp_is_answered_with_icmp_port_unreachable_quoting_the_datagram():
    original = frame(UDP(sport=5353, dport=53) / b"query")
    answer = Ether(rejection(original))
    assert (answer[ICMP].type, answer[ICMP].code) == (3, 3)
    assert bytes(answer[ICMP].payload)[:28] == original[14:14 + 28]


def test_rsts_and_non_ip_are_not_answered():
    assert rejection(frame(TCP(sport=1, dport=80, flags="R"))) is None
    assert rejection(bytes(Ether(type=0x86DD) / (b"\0" * 40))) is None
