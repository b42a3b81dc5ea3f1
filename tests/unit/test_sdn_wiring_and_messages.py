"""Wiring values and the control socket's message codec."""
import json

import pytest

from testbed.net import addressing
from testbed.proxy.model import Endpoint, ServicePort
from testbed.sdn import messages
from testbed.sdn.wiring import Wiring, node_bridge
from tests.support.sdn_pods import pod_at


def test_topology_for_nodes_follows_addressing():
    topo = Wiring.for_nodes(3)
    b = topo.bridge("node2")
    assert (b.name, b.dpid, b.node_ip, b.node_mac, b.pod_cidr, b.gateway_ip) == \
        ("tb-node2", 3, "172.18.0.12", "02:42:ac:12:00:0c", "10.244.2.0/24", "10.244.2.1")
    assert (b.uplink_port, b.node_port) == (addressing.UPLINK_PORT, addressing.NODE_PORT)
    assert [h.ip for h in topo.hosts] == ["172.18.0.10", "172.18.0.11", "172.18.0.12", addressing.EXTERNAL_IP]
    assert b.dnat_zone != b.snat_zone and len({x.dnat_zone for x in topo.bridges}) == 3


def test_pods_get_addresses_ports_and_macs_from_their_slot():
    pod = pod_at(node_bridge(1, "worker"), 3, "ns", "p")
    assert (pod.ip, pod.mac, pod.ofport, pod.node) == ("10.244.1.5", "0a:58:0a:f4:01:05", 13, "worker")


def test_topology_round_trips_through_json_and_changes_are_new_values():
    topo = Wiring.for_nodes(["a", "b"], announcements={"172.18.255.200": "b"})
    topo = topo.with_pod(pod_at(topo.bridge("a"), 0, "default", "x"))
    again = Wiring.from_json(json.loads(json.dumps(topo.to_json())))
    assert again == topo
    assert again.without_pod("default", "x").pods == () and topo.pods


def test_long_node_names_are_refused():
    with pytest.raises(ValueError):
        Wiring.for_nodes(["a-very-long-node-name"])


def test_service_ports_round_trip_through_json():
    port = ServicePort("ns", "web", "http", "TCP", 80, "10.96.0.10", service_type="LoadBalancer", node_port=30080,
                       load_balancer_ips=("172.18.255.200",), affinity_timeout=60, lb_algorithm="wrr",
                       lb_weights={"10.244.0.2": 3},
                       endpoints=(Endpoint("10.244.0.2", 8080, "node0", pod_name="a"),))
    text = messages.encode({"ports": [messages.port_to_json(port)]})
    again = messages.port_from_json(messages.decode(text)["ports"][0])
    assert again == port and again.lb_weights == {"10.244.0.2": 3}


def test_requests_are_checked():
    assert messages.request("ping", 1) == {"op": "ping", "id": 1}
    with pytest.raises(messages.ProtocolError):
        messages.request("explode", 1)
    with pytest.raises(messages.ProtocolError):
        messages.decode(b"[1, 2]")
    with pytest.raises(messages.ProtocolError):
        messages.decode(b"{not json")
