"""The controller's pure state: which flows a change touches, plans, resync after (re)connect."""
import dataclasses

from testbed.sdn.flows import (
    KIND_ADDRESS, KIND_AFFINITY, KIND_CONNECTION, KIND_SERVICE, OWNER_MASK, cookie_kind, owner_cookie,
    service_owner)
from testbed.sdn.pipeline import bridge_flows
from testbed.sdn.state import ClusterState, ReactiveSelector

from tests.support.sdn_fake_cluster import FakeSdnCluster, only, service, two_node_topology

LB_IP = "172.18.255.201"


def services(topo, count=5):
    pods = topo.pods
    return [service(f"svc-{i}", f"10.96.1.{i}", pods[i % 4], pods[(i + 1) % 4]) for i in range(count)]


def switch_content(switch):
    return sorted((f.table, f.priority, f.match, f.actions, f.goto, f.cookie) for f in switch.flows()), \
        sorted((g.group_id, g.buckets) for g in switch.groups.values())


def fresh_content(topo, ports, node):
    state = bridge_flows(topo, node, ports)
    return sorted((f.table, f.priority, f.match, f.actions, f.goto, f.cookie) for f in state.flows), \
        sorted((g.group_id, g.buckets) for g in state.groups)


def test_first_plan_holds_everything_then_nothing():
    topo = two_node_topology()
    state = ClusterState(topo, services(topo))
    assert state.flow_count("node0") is None                  # computed when the bridge needs it
    plan = state.take_plan("node0")
    assert len(plan.add_flows) == state.flow_count("node0") and not plan.delete_flows
    assert len(plan.add_groups) == state.group_count("node0") == 5
    assert len(state.take_plan("node0")) == 0


def test_a_service_change_touches_only_that_services_flows():
    topo = two_node_topology()
    ports = services(topo)
    state = ClusterState(topo, ports)
    state.take_plan("node0")
    changed = dataclasses.replace(ports[2], endpoints=ports[2].endpoints[:1])
    state.upsert_service("default", "svc-2", [changed])
    plan = state.take_plan("node0")
    owner = owner_cookie(KIND_SERVICE, service_owner("default", "svc-2"))
    assert plan.add_flows or plan.delete_flows or plan.modify_groups
    assert {f.cookie & OWNER_MASK for f in plan.add_flows + plan.delete_flows} <= {owner}
    assert [g.group_id for g in plan.modify_groups] and not plan.add_groups


def test_incremental_changes_end_where_a_fresh_render_starts():
    """After adds, changes, deletes and pod moves, every bridge holds what a fresh render gives."""
    topo = two_node_topology(pods_per_node=3, announcements={LB_IP: "node1"})
    ports = services(topo, 6)
    cluster = FakeSdnCluster(topo, tuple(ports[:3]))
    state = cluster.state
    lb = dataclasses.replace(ports[3], service_type="LoadBalancer", node_port=30001, load_balancer_ips=(LB_IP,),
                             affinity_timeout=60)
    state.upsert_service("default", "svc-3", [lb], {LB_IP: "node1"})
    state.upsert_service("default", "svc-4", [dataclasses.replace(ports[4], lb_algorithm="maglev")])
    state.upsert_service("default", "svc-0", [dataclasses.replace(ports[0], lb_algorithm="rr")])
    state.delete_service("default", "svc-1")
    moved = dataclasses.replace(topo.pods[0], name="pod-new", ip="10.244.0.50", mac="0a:58:0a:f4:00:32", ofport=30)
    state.remove_pod("default", topo.pods[0].name)
    state.add_pod(moved)
    cluster.switch("node0").ports.add(30)
    cluster.sync()
    final_ports = [p for ports_of in state.services.values() for p in ports_of]
    for node in ("node0", "node1"):
        assert switch_content(cluster.switch(node)) == fresh_content(state.topology, final_ports, node)


def test_shared_loadbalancer_ip_keeps_its_arp_answer_while_one_service_uses_it():
    topo = two_node_topology(announcements={LB_IP: "node0"})
    pods = topo.pods
    a = service("a", "10.96.2.1", pods[0], service_type="LoadBalancer", node_port=30001, load_balancer_ips=(LB_IP,))
    b = service("b", "10.96.2.2", pods[1], service_type="LoadBalancer", node_port=30002, load_balancer_ips=(LB_IP,),
                port=81)
    state = ClusterState(topo, [a, b])
    address = owner_cookie(KIND_ADDRESS, 0xAC12FFC9)
    assert address in state.desired_for("node0")
    state.delete_service("default", "a")
    assert address in state.desired_for("node0") and state.topology.announcements[LB_IP] == "node0"
    state.delete_service("default", "b")
    assert address not in state.desired_for("node0") and LB_IP not in state.topology.announcements


def test_resync_of_an_identical_switch_changes_nothing_and_keeps_reactive_flows():
    topo = two_node_topology()
    ports = services(topo)
    state = ClusterState(topo, ports)
    cookies = [f.cookie for o in state.desired_for("node0").values() for f in o.flows.values()]
    live = owner_cookie(KIND_CONNECTION, service_owner("default", "svc-1"))
    learned = owner_cookie(KIND_AFFINITY, service_owner("default", "svc-2"))
    gone = owner_cookie(KIND_CONNECTION, service_owner("default", "deleted"))
    groups = [g for o in state.desired_for("node0").values() for g in o.groups]
    plan, stale = state.resync_plan("node0", cookies + [live, learned, gone], groups)
    assert not plan.add_flows and not plan.add_groups and not plan.delete_groups
    assert len(plan.modify_groups) == len(groups)
    assert stale == [len(cookies) + 2]


def test_resync_adds_missing_and_deletes_foreign_flows():
    topo = two_node_topology()
    state = ClusterState(topo, services(topo))
    cookies = [f.cookie for o in state.desired_for("node0").values() for f in o.flows.values()]
    plan, stale = state.resync_plan("node0", cookies[5:] + [0x1234, cookies[6]], [99])
    assert {f.cookie for f in plan.add_flows} == set(cookies[:5])
    assert stale == [len(cookies) - 5, len(cookies) - 4]     # the foreign cookie and the duplicate
    assert plan.delete_groups == [99]
    assert len(state.take_plan("node0")) == 0                 # the resync counts as given


def test_reactive_selector_reuses_a_choice_for_retransmissions_and_adopts_after_restart():
    topo = two_node_topology(pods_per_node=3)
    svc = service("web", "10.96.0.20", *topo.pods[1:3], lb_algorithm="lc")
    state = ClusterState(topo, [svc])
    instance = next(iter(state.instances_for("node0").values()))
    selector = ReactiveSelector(clock=lambda: 0.0)
    syn = {"ipv4_src": "10.244.0.2", "ipv4_dst": "10.96.0.20", "ip_proto": 6, "tcp_src": 40000, "tcp_dst": 80}
    first = selector.on_packet_in("node0", instance, 0x5, syn)
    again = selector.on_packet_in("node0", instance, 0x5, syn)
    assert first.endpoint == again.endpoint and again.tracking_flow is None
    assert sum(selector.active("node0", instance.id).values()) == 1
    restarted = ReactiveSelector()
    key = ("10.244.0.2", 40000, *first.endpoint.split(":"), 6)
    restarted.adopt("node0", instance, (key[0], key[1], key[2], int(key[3]), 6))
    assert restarted.active("node0", instance.id)[first.endpoint] == 1
    assert restarted.on_packet_in("node0", instance, 0x5, dict(syn, tcp_src=40001)).endpoint != first.endpoint


def test_reject_and_reactive_packet_ins_are_told_apart_by_the_flags_register():
    topo = two_node_topology()
    cluster = FakeSdnCluster(topo, (service("empty", "10.96.0.30"),
                                    service("rr", "10.96.0.31", topo.pods[2], lb_algorithm="rr")))
    assert cluster.from_pod("pod-0-0", "10.96.0.30", 80) == [] and len(cluster.rejections) == 1
    assert cluster.receiver(only(cluster.from_pod("pod-0-0", "10.96.0.31", 80))) == topo.pods[2].name
    assert len(cluster.rejections) == 1


def test_cookie_kinds_are_what_the_docs_say():
    topo = two_node_topology()
    state = ClusterState(topo, services(topo, 1))
    kinds = {cookie_kind(f.cookie) for o in state.desired_for("node0").values() for f in o.flows.values()}
    assert kinds == {0x01, 0x02, 0x03, 0x10}


def test_deleting_a_service_clears_its_learned_and_connection_flows_by_cookie():
    topo = two_node_topology()
    ports = services(topo, 2)
    state = ClusterState(topo, ports)
    state.take_plan("node0")
    state.delete_service("default", "svc-1")
    owner = service_owner("default", "svc-1")
    assert set(state.take_plan("node0").delete_cookies) == {(owner_cookie(KIND_AFFINITY, owner), OWNER_MASK),
                                                            (owner_cookie(KIND_CONNECTION, owner), OWNER_MASK)}
    state.set_state(topo, [])
    assert len(state.take_plan("node0").delete_cookies) == 2       # svc-0, by a full state without it
