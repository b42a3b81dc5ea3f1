"""The controller's shell without switches: request routing, reply waiting, handler guard."""
import threading

import pytest
from os_ken.ofproto import ofproto_v1_3_parser as parser
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from testbed.sdn import messages
from testbed.sdn.controller import Replies, SdnController, connection_key, guarded, packet_fields
from testbed.sdn.wiring import Wiring

from tests.support.sdn_fake_cluster import service, two_node_topology


@pytest.fixture
def controller():
    return SdnController()


def test_changes_without_connected_bridges_are_pending_and_counted_later(controller):
    topo = two_node_topology()
    answer = controller.handle({"op": "set_state", "topology": topo.to_json(),
                                "services": [messages.port_to_json(service("web", "10.96.0.10", topo.pods[0]))]})
    assert answer["ok"] and answer["pending"] == ["node0", "node1"] and answer["programmed"] == {}
    status = controller.handle({"op": "status"})["bridges"]
    assert status["node0"]["connected"] is False and status["node0"]["flows"] is None
    waited = controller.handle({"op": "wait_programmed", "seconds": 0.1, "nodes": ["node0"]})
    assert not waited["ok"] and "not programmed" in waited["error"]


def test_unknown_ops_are_refused(controller):
    with pytest.raises(messages.ProtocolError):
        controller.handle({"op": "reboot"})


def test_replies_wake_waiters_and_fail_them_when_the_bridge_goes():
    replies = Replies()
    replies.expect(1, dpid=7)
    replies.deliver(1, ["a"], done=False)
    threading.Timer(0.05, replies.deliver, args=(1, ["b"])).start()
    assert replies.wait(1, timeout=2) == ["a", "b"]
    replies.expect(2, dpid=7)
    threading.Timer(0.05, replies.fail, args=(7,)).start()
    with pytest.raises(ConnectionError):
        replies.wait(2, timeout=2)
    replies.expect(3, dpid=8)
    with pytest.raises(TimeoutError):
        replies.wait(3, timeout=0.05)


def test_a_failing_handler_is_logged_not_raised(caplog):
    class App:
        @guarded
        def handler(self, ev):
            raise RuntimeError("boom")

    App().handler(None)
    assert "handler failed" in caplog.text


def test_packet_fields_and_connection_keys():
    frame = bytes(Ether() / IP(src="10.244.0.2", dst="10.96.0.10") / TCP(sport=40000, dport=80))
    assert packet_fields(frame) == {"ipv4_src": "10.244.0.2", "ipv4_dst": "10.96.0.10", "ip_proto": 6,
                                    "tcp_src": 40000, "tcp_dst": 80}
    assert packet_fields(bytes(Ether() / IP() / b"x")) is None
    udp = bytes(Ether() / IP(src="10.244.0.2", dst="10.96.0.53") / UDP(sport=5353, dport=53))
    assert packet_fields(udp)["udp_dst"] == 53
    match = parser.OFPMatch(eth_type=0x800, ip_proto=17, ipv4_src="10.244.0.2", udp_src=5353,
                            ipv4_dst="10.244.1.2", udp_dst=53)
    assert connection_key(match) == ("10.244.0.2", 5353, "10.244.1.2", 53, 17)
    assert connection_key(parser.OFPMatch(eth_type=0x800)) is None


def test_topology_without_bridges_is_a_valid_start(controller):
    answer = controller.handle({"op": "set_state", "topology": Wiring(bridges=()).to_json(), "services": []})
    assert answer["ok"] and answer["pending"] == []
