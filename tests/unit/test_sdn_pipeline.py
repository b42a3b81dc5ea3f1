"""Service semantics of the SDN pipeline, end to end on fake switches (two nodes, a fabric, an
external host): where packets arrive, how they are rewritten, and that replies come back un-NATed."""
import dataclasses

import pytest

from testbed.net import addressing
from testbed.sdn.pipeline import render_openflow
from testbed.sdn.wiring import PIPELINE_MAC

from tests.support.fake_openflow import arp_request
from tests.support.sdn_fake_cluster import FakeSdnCluster, only, service, two_node_topology

VIP = "10.96.0.10"
NODE0_IP, NODE1_IP = addressing.node_ip(0), addressing.node_ip(1)
EXTERNAL = addressing.EXTERNAL_IP
LB_IP = "172.18.255.200"


@pytest.fixture
def topo():
    return two_node_topology(pods_per_node=2, announcements={LB_IP: "node0"})


def cluster(topo, *ports):
    return FakeSdnCluster(topo, tuple(ports))


def pods(topo, *names):
    return [next(p for p in topo.pods if p.name == n) for n in names]


# --- ClusterIP -------------------------------------------------------------------------------------
def test_clusterip_to_remote_pod_is_dnated_routed_and_reply_unnated(topo):
    c = cluster(topo, service("web", VIP, *pods(topo, "pod-1-0")))
    arrived = only(c.from_pod("pod-0-0", VIP, 80))
    assert c.receiver(arrived) == "pod-1-0"
    packet = arrived.packet
    assert (packet["ipv4_src"], packet["ipv4_dst"], packet["tcp_dst"]) == (c.pod("pod-0-0").ip, c.pod("pod-1-0").ip, 8080)
    assert packet["eth_dst"] == c.pod("pod-1-0").mac          # routed by the pipeline itself
    back = only(c.answer(arrived))
    assert c.receiver(back) == "pod-0-0"
    assert (back.packet["ipv4_src"], back.packet["tcp_src"]) == (VIP, 80)   # un-NATed where NATed (node0)
    assert back.packet["eth_src"] == topo.bridge("node0").node_mac


def test_clusterip_to_local_pod_and_established_packets_follow_conntrack(topo):
    c = cluster(topo, service("web", VIP, *pods(topo, "pod-0-1")))
    first = only(c.from_pod("pod-0-0", VIP, 80, sport=40001))
    assert c.receiver(first) == "pod-0-1"
    only(c.answer(first))
    again = only(c.from_pod("pod-0-0", VIP, 80, sport=40001, flags="A"))
    assert c.receiver(again) == "pod-0-1" and again.packet["ipv4_dst"] == c.pod("pod-0-1").ip


def test_clusterip_from_host_network_is_masqueraded_like_kube_proxy(topo):
    """kube-proxy masquerades ClusterIP traffic from outside the cluster CIDR (the node itself)."""
    c = cluster(topo, service("web", VIP, *pods(topo, "pod-1-0")))
    arrived = only(c.from_node("node0", VIP, 80))
    assert c.receiver(arrived) == "pod-1-0"
    assert arrived.packet["ipv4_src"] == NODE0_IP
    back = only(c.answer(arrived))
    assert c.receiver(back) == "node:node0"
    assert (back.packet["ipv4_src"], back.packet["tcp_src"], back.packet["ipv4_dst"]) == (VIP, 80, NODE0_IP)
    assert back.packet["eth_src"] == PIPELINE_MAC


def test_pod_to_pod_traffic_without_service_crosses_nodes_both_ways(topo):
    c = cluster(topo)
    arrived = only(c.from_pod("pod-0-0", c.pod("pod-1-1").ip, 8080))
    assert c.receiver(arrived) == "pod-1-1" and arrived.packet["ipv4_src"] == c.pod("pod-0-0").ip
    assert c.receiver(only(c.answer(arrived))) == "pod-0-0"


def test_unknown_service_port_and_address_are_dropped(topo):
    c = cluster(topo, service("web", VIP, *pods(topo, "pod-1-0")))
    assert c.from_pod("pod-0-0", VIP, 81) == []
    assert c.from_pod("pod-0-0", "10.96.0.99", 80) == []


def test_udp_service(topo):
    c = cluster(topo, service("dns", "10.96.0.53", *pods(topo, "pod-1-0"), protocol="UDP", port=53))
    arrived = only(c.from_pod("pod-0-0", "10.96.0.53", 53, proto="UDP"))
    assert c.receiver(arrived) == "pod-1-0" and arrived.packet["udp_dst"] == 8080
    back = only(c.answer(arrived))
    assert (back.packet["ipv4_src"], back.packet["udp_src"]) == ("10.96.0.53", 53)


def test_sctp_services_get_no_flows(topo):
    """OVS' userspace conntrack cannot NAT SCTP: such Services are left out (documented)."""
    c = cluster(topo, service("s", VIP, *pods(topo, "pod-1-0"), protocol="SCTP"))
    assert not [f for f in c.switch("node0").flows(10) if dict(f.match).get("ipv4_dst") == VIP]


# --- ARP -------------------------------------------------------------------------------------------
def test_node_asking_for_a_vip_gets_the_pipeline_mac(topo):
    c = cluster(topo, service("web", VIP, *pods(topo, "pod-1-0")))
    bridge = topo.bridge("node0")
    result = c.switch("node0").process(arp_request(bridge.node_port, bridge.node_mac, NODE0_IP, VIP))
    port, reply = result.only()
    assert port == bridge.node_port
    assert (reply["arp_op"], reply["arp_spa"], reply["arp_sha"], reply["arp_tpa"], reply["eth_dst"]) == \
        (2, VIP, PIPELINE_MAC, NODE0_IP, bridge.node_mac)


def test_vips_are_not_answered_on_the_node_network(topo):
    c = cluster(topo, service("web", VIP, *pods(topo, "pod-1-0")))
    bridge = topo.bridge("node0")
    result = c.switch("node0").process(arp_request(bridge.uplink_port, addressing.host_mac(EXTERNAL), EXTERNAL, VIP))
    assert all(p["arp_op"] == 1 for _, p in result.outputs)       # flooded to the node and pods, not answered


def test_loadbalancer_ip_is_answered_on_the_uplink_only_by_the_announcing_node(topo):
    lb = service("web", VIP, *pods(topo, "pod-1-0"), service_type="LoadBalancer", node_port=30080,
                 load_balancer_ips=(LB_IP,))
    c = cluster(topo, lb)
    ext_mac = addressing.host_mac(EXTERNAL)
    for node, answered in (("node0", True), ("node1", False)):
        bridge = topo.bridge(node)
        result = c.switch(node).process(arp_request(bridge.uplink_port, ext_mac, EXTERNAL, LB_IP))
        replies = [p for _, p in result.outputs if p["arp_op"] == 2]
        assert bool(replies) == answered
        if answered:
            assert replies[0]["arp_sha"] == bridge.node_mac and replies[0]["arp_spa"] == LB_IP


def test_pod_asking_for_its_gateway_reaches_the_node_only(topo):
    c = cluster(topo)
    pod, bridge = c.pod("pod-0-0"), topo.bridge("node0")
    result = c.switch("node0").process(arp_request(pod.ofport, pod.mac, pod.ip, bridge.gateway_ip))
    assert result.ports() == [bridge.node_port]


# --- NodePort / LoadBalancer / externalIPs -----------------------------------------------------------
def nodeport(topo, *endpoint_pods, **kwargs):
    return service("np", VIP, *pods(topo, *endpoint_pods), service_type="NodePort", node_port=30080, **kwargs)


def test_nodeport_cluster_policy_snats_to_the_node_and_crosses_to_the_remote_endpoint(topo):
    c = cluster(topo, nodeport(topo, "pod-1-0"))
    arrived = only(c.from_external("node0", NODE0_IP, 30080))
    assert c.receiver(arrived) == "pod-1-0"
    assert (arrived.packet["ipv4_src"], arrived.packet["ipv4_dst"]) == (NODE0_IP, c.pod("pod-1-0").ip)
    back = only(c.answer(arrived))
    assert back.switch is None and back.packet["host"] == "external"
    assert (back.packet["ipv4_src"], back.packet["tcp_src"], back.packet["ipv4_dst"]) == (NODE0_IP, 30080, EXTERNAL)


def test_nodeport_cluster_policy_masquerades_local_endpoints_too_as_kube_proxy(topo):
    c = cluster(topo, nodeport(topo, "pod-0-0"))
    arrived = only(c.from_external("node0", NODE0_IP, 30080))
    assert c.receiver(arrived) == "pod-0-0" and arrived.packet["ipv4_src"] == NODE0_IP
    back = only(c.answer(arrived))
    assert back.packet["host"] == "external" and back.packet["ipv4_src"] == NODE0_IP


def test_nodeport_local_policy_keeps_the_client_address_and_uses_local_endpoints(topo):
    c = cluster(topo, nodeport(topo, "pod-0-0", "pod-1-0", external_policy_local=True))
    for sport in range(50000, 50020):
        arrived = only(c.from_external("node1", NODE1_IP, 30080, sport=sport))
        assert c.receiver(arrived) == "pod-1-0"
        assert arrived.packet["ipv4_src"] == EXTERNAL
    back = only(c.answer(arrived))
    assert back.packet["host"] == "external" and back.packet["ipv4_src"] == NODE1_IP


def test_nodeport_local_policy_without_local_endpoint_drops(topo):
    c = cluster(topo, nodeport(topo, "pod-1-0", external_policy_local=True))
    assert c.from_external("node0", NODE0_IP, 30080) == []
    assert c.rejections == []


def test_pods_reaching_a_local_policy_nodeport_use_all_endpoints_like_kube_proxy(topo):
    c = cluster(topo, nodeport(topo, "pod-1-0", external_policy_local=True))
    arrived = only(c.from_pod("pod-0-0", NODE0_IP, 30080))
    assert c.receiver(arrived) == "pod-1-0" and arrived.packet["ipv4_src"] == c.pod("pod-0-0").ip


def test_loadbalancer_ip_from_external_via_announcing_node(topo):
    lb = service("web", VIP, *pods(topo, "pod-1-1"), service_type="LoadBalancer", node_port=30080,
                 load_balancer_ips=(LB_IP,))
    c = cluster(topo, lb)
    arrived = only(c.from_external("node0", LB_IP, 80))
    assert c.receiver(arrived) == "pod-1-1" and arrived.packet["ipv4_src"] == NODE0_IP
    back = only(c.answer(arrived))
    assert (back.packet["host"], back.packet["ipv4_src"], back.packet["tcp_src"]) == ("external", LB_IP, 80)


def test_loadbalancer_source_ranges(topo):
    lb = service("web", VIP, *pods(topo, "pod-0-0"), service_type="LoadBalancer", node_port=30080,
                 load_balancer_ips=(LB_IP,), load_balancer_source_ranges=("172.18.0.0/24",))
    c = cluster(topo, lb)
    assert c.receiver(only(c.from_external("node0", LB_IP, 80))) == "pod-0-0"
    closed = dataclasses.replace(lb, load_balancer_source_ranges=("192.0.2.0/24",))
    c2 = cluster(topo, closed)
    assert c2.from_external("node0", LB_IP, 80) == []


def test_external_ips(topo):
    ext = service("web", VIP, *pods(topo, "pod-1-0"), external_ips=("172.18.100.1",))
    c = cluster(topo, ext)
    arrived = only(c.from_external("node0", "172.18.100.1", 80))
    assert c.receiver(arrived) == "pod-1-0" and arrived.packet["ipv4_src"] == NODE0_IP
    back = only(c.answer(arrived))
    assert (back.packet["ipv4_src"], back.packet["tcp_src"]) == ("172.18.100.1", 80)


# --- internalTrafficPolicy, hairpin, no endpoints ---------------------------------------------------------
def test_internal_traffic_policy_local(topo):
    svc = service("web", VIP, *pods(topo, "pod-0-1", "pod-1-0"), internal_policy_local=True)
    c = cluster(topo, svc)
    for sport in range(40000, 40016):
        assert c.receiver(only(c.from_pod("pod-0-0", VIP, 80, sport=sport))) == "pod-0-1"
        assert c.receiver(only(c.from_pod("pod-1-1", VIP, 80, sport=sport))) == "pod-1-0"


def test_internal_traffic_policy_local_without_local_endpoint_drops(topo):
    c = cluster(topo, service("web", VIP, *pods(topo, "pod-1-0"), internal_policy_local=True))
    assert c.from_pod("pod-0-0", VIP, 80) == [] and c.rejections == []


def test_hairpin_is_snated_to_the_gateway_so_the_reply_returns_through_the_pipeline(topo):
    c = cluster(topo, service("web", VIP, *pods(topo, "pod-0-0")))
    arrived = only(c.from_pod("pod-0-0", VIP, 80))
    assert c.receiver(arrived) == "pod-0-0"
    gateway = topo.bridge("node0").gateway_ip
    assert (arrived.packet["ipv4_src"], arrived.packet["ipv4_dst"]) == (gateway, c.pod("pod-0-0").ip)
    back = only(c.answer(arrived))
    assert c.receiver(back) == "pod-0-0"
    assert (back.packet["ipv4_src"], back.packet["tcp_src"], back.packet["ipv4_dst"]) == (VIP, 80, c.pod("pod-0-0").ip)


def test_service_without_endpoints_goes_to_the_controller_for_a_reject(topo):
    c = cluster(topo, service("empty", VIP))
    assert c.from_pod("pod-0-0", VIP, 80) == []
    assert len(c.rejections) == 1 and c.rejections[0].packet["ipv4_dst"] == VIP


def test_not_ready_endpoints_fall_back_to_serving_terminating_ones(topo):
    svc = service("web", VIP, *pods(topo, "pod-0-1", "pod-1-0"))
    endpoints = (dataclasses.replace(svc.endpoints[0], ready=False, serving=True, terminating=True),
                 dataclasses.replace(svc.endpoints[1], ready=False, serving=False, terminating=True))
    c = cluster(topo, dataclasses.replace(svc, endpoints=endpoints))
    assert c.receiver(only(c.from_pod("pod-0-0", VIP, 80))) == "pod-0-1"


# --- affinity ----------------------------------------------------------------------------------------
def test_client_ip_affinity_keeps_a_client_on_one_endpoint_until_the_timeout(topo):
    svc = service("web", VIP, *pods(topo, "pod-0-1", "pod-1-0", "pod-1-1"), affinity_timeout=30)
    c = cluster(topo, svc)
    first = {c.receiver(only(c.from_pod("pod-0-0", VIP, 80, sport=s))) for s in range(40000, 40030)}
    assert len(first) == 1
    learned = c.switch("node0").flows(11)
    assert any(f.idle_timeout == 30 for f in learned)
    c.advance(31)
    assert not [f for f in c.switch("node0").flows(11) if f.idle_timeout]
    others = {c.receiver(only(c.from_pod("pod-1-1", VIP, 80, sport=s))) for s in range(40000, 40030)}
    assert len(others) == 1


def test_affinity_entry_of_a_removed_endpoint_falls_back_to_a_new_choice(topo):
    svc = service("web", VIP, *pods(topo, "pod-0-1", "pod-1-0"), affinity_timeout=300)
    c = cluster(topo, svc)
    chosen = c.receiver(only(c.from_pod("pod-0-0", VIP, 80)))
    remaining = [p for p in pods(topo, "pod-0-1", "pod-1-0") if p.name != chosen]
    c.state.upsert_service("default", "web", [service("web", VIP, *remaining, affinity_timeout=300)])
    c.sync()
    assert c.receiver(only(c.from_pod("pod-0-0", VIP, 80, sport=41000))) == remaining[0].name


# --- rendering -----------------------------------------------------------------------------------------
def test_render_openflow_names_the_commands_and_is_deterministic(topo):
    svc = service("web", VIP, *pods(topo, "pod-0-0", "pod-1-0"))
    text = render_openflow([svc], topo, "node0")
    assert "grep ^group_id= FILE | ovs-ofctl -O OpenFlow13 add-groups tb-node0 -" in text
    assert "grep ^table= FILE | ovs-ofctl -O OpenFlow13 add-flows tb-node0 -" in text
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert all(line.startswith(("group_id=", "table=")) for line in lines)
    assert text == render_openflow([svc], topo, "node0")
    assert "nat(dst=10.244.1.2:8080)" in text


def test_service_whose_endpoints_are_all_unusable_is_rejected(topo):
    svc = service("web", VIP, *pods(topo, "pod-1-0"))
    dead = dataclasses.replace(svc, endpoints=(dataclasses.replace(svc.endpoints[0], ready=False, serving=False),))
    c = cluster(topo, dead)
    assert c.from_pod("pod-0-0", VIP, 80) == [] and len(c.rejections) == 1


def test_internal_local_policy_uses_a_terminating_local_endpoint_while_others_are_ready(topo):
    """kube-proxy's CategorizeEndpoints computes the Local set from this node's endpoints alone:
    with internalTrafficPolicy: Local, a serving-but-terminating endpoint on the client's node is
    used even though a ready endpoint exists on another node (the iptables mode did; the SDN
    pipeline used to drop the traffic, from its own second copy of the categorisation)."""
    svc = service("web", VIP, *pods(topo, "pod-0-1", "pod-1-0"), internal_policy_local=True)
    local, remote = svc.endpoints
    svc = dataclasses.replace(svc, endpoints=(dataclasses.replace(local, ready=False, serving=True, terminating=True),
                                              remote))
    c = cluster(topo, svc)
    assert c.receiver(only(c.from_pod("pod-0-0", VIP, 80))) == "pod-0-1"
    assert c.rejections == []
