"""kube-proxy's IPVS mode (testbed.backends.ipvs): golden render, and packets traced through the
fake node (tests/support/fake_ipvs.py) after the proxier has programmed it.

The golden file is the rendering for node1 of the same Services as the iptables golden test;
regenerate it with `UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_ipvs.py` and review
the diff.
"""
import collections
import os
from pathlib import Path

import pytest

from testbed.backends.ipvs import (IPSETS, IpvsProxier, build_state, parse_ipvsadm_save, port_state, render_ipvs,
                                   unavailable)
from testbed.errors import TestbedError
from testbed.proxy.backend import get_backend
from testbed.proxy.model import Endpoint
from tests.support.fake_ipvs import FakeIpvs, FakeIpvsNode, FakeIpvsRunner
from tests.unit.test_iptables import EXTERNAL, MYAPP, NODE1, POD_ON_NODE1, myapp_ports, svc

GOLDEN = Path(__file__).parents[1] / "golden" / "ipvs" / "myapp-node1.txt"


def programmed(ports, scheduler="rr"):
    node = FakeIpvsNode(NODE1.ip, {"10.244.1.1"})
    IpvsProxier(FakeIpvsRunner(node), NODE1, scheduler=scheduler).sync(ports)
    return node


# -- render -------------------------------------------------------------------------------------

def test_golden_render_for_myapp_services():
    text = render_ipvs(myapp_ports(), NODE1)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_render_is_ipvsadm_save_text_then_commented_parts():
    text = render_ipvs(myapp_ports(), NODE1)
    commands = [line for line in text.splitlines() if not line.startswith("#")]
    assert commands and all(line.startswith(("-A ", "-a ")) for line in commands)
    assert "-A -t 10.96.0.100:80 -s rr" in commands
    assert "-a -t 10.96.0.100:80 -r 10.244.0.10:80 -m -w 1" in commands
    assert "-A -t 10.96.0.104:80 -s rr -p 10800" in commands          # ClientIP affinity = persistence
    assert "-A -u 10.96.0.10:53 -s rr" in commands
    assert "-A -t 172.18.0.11:32223 -s rr" in commands                # NodePort on the node IP only
    assert "-A -t 172.18.255.200:80 -s rr" in commands                # LoadBalancer IP
    assert "-A -t 172.18.0.200:80 -s rr" in commands                  # external IP
    assert "# address add 10.96.0.100/32 dev kube-ipvs0" in text
    assert "# add KUBE-CLUSTER-IP 10.96.0.100,tcp:80 -exist" in text
    assert "# add KUBE-NODE-PORT-TCP 32223 -exist" in text
    assert "# add KUBE-LOOP-BACK 10.244.1.10,tcp:80,10.244.1.10 -exist" in text
    # what the ipvsadm part describes is exactly what the state holds (a round trip)
    state = build_state(myapp_ports(), NODE1)
    assert parse_ipvsadm_save("\n".join(commands)) == state.virtual_servers


def test_the_render_loads_into_the_fake_table():
    table = FakeIpvs()
    assert table.restore(render_ipvs(myapp_ports(), NODE1)) == []
    assert len(table.services) == len(build_state(myapp_ports(), NODE1).virtual_servers)


def test_the_render_of_a_cluster_comes_through_the_registry():
    backend = get_backend("ipvs")
    assert backend.render_format == "ipvs" and backend.algorithms[0] == "rr"
    text = backend.render(myapp_ports(), NODE1, None)
    assert text.startswith("# kube-proxy ipvs mode, node node1")


def test_scheduler_option_and_annotation():
    ports = [svc("a", "10.96.0.1"), svc("b", "10.96.0.2", lb_algorithm="mh"), svc("c", "10.96.0.3", lb_algorithm="sh")]
    vs = build_state(ports, NODE1, scheduler="wlc").virtual_servers
    assert vs[("tcp", "10.96.0.1", 80)].scheduler == "wlc"
    assert vs[("tcp", "10.96.0.2", 80)].spec() == "-t 10.96.0.2:80 -s mh -b mh-port"   # FlagSourceHash
    assert vs[("tcp", "10.96.0.3", 80)].scheduler == "sh"
    with pytest.raises(TestbedError, match="'maglev' is not an IPVS scheduler"):
        build_state([svc("d", "10.96.0.4", lb_algorithm="maglev")], NODE1)


def test_lb_weights_set_real_server_weights():
    vs = port_state(svc("w", "10.96.0.9", lb_weights={"myapp-0": 3, "10.244.2.10": 2}), NODE1).virtual_servers[0]
    assert {r.address: r.weight for r in vs.real_servers} == {"10.244.0.10:80": 3, "10.244.1.10:80": 1,
                                                              "10.244.2.10:80": 2}


def test_every_kube_proxy_ipset_is_created():
    text = render_ipvs([], NODE1)
    for s in IPSETS:
        assert f"# create {s.name} {s.set_type}" in text


def test_unavailable_names_testbed_vm_and_nftables(monkeypatch):
    import testbed.backends.ipvs as ipvs
    monkeypatch.setattr(ipvs, "kernel_has_ipvs", lambda: False)
    reason = unavailable()
    assert "testbed vm" in reason and "nftables" in reason and "no IPVS" in reason
    monkeypatch.setattr(ipvs, "kernel_has_ipvs", lambda: True)
    assert unavailable() is None


# -- traces through the programmed node ---------------------------------------------------------

def test_pod_to_cluster_ip_reaches_every_endpoint_in_turn_without_masquerade():
    node = programmed(myapp_ports())
    seen = [node.trace(POD_ON_NODE1, "10.96.0.100", 80) for _ in range(6)]
    assert {t.verdict for t in seen} == {"ipvs"} and not any(t.masquerade for t in seen)
    assert collections.Counter(t.real_server for t in seen) == {e.address: 2 for e in MYAPP}


def test_traffic_from_outside_the_cluster_cidr_to_a_cluster_ip_is_masqueraded():
    node = programmed(myapp_ports())
    assert node.trace("172.18.0.12", "10.96.0.100", 80).masquerade   # e.g. another node's own traffic


def test_nodeport_from_outside_is_masqueraded_and_local_policy_keeps_the_source():
    node = programmed(myapp_ports())
    cluster = node.trace(EXTERNAL, NODE1.ip, 32223)
    assert cluster.verdict == "ipvs" and cluster.masquerade
    local = node.trace(EXTERNAL, NODE1.ip, 30106)        # externalTrafficPolicy: Local, endpoint here
    assert local.verdict == "ipvs" and local.real_server == "10.244.1.10:80" and not local.masquerade


def test_local_policy_without_local_endpoints_falls_back_to_cluster_endpoints_unmasqueraded():
    """kubernetes PR 97081: the virtual server keeps the cluster endpoints, without SNAT."""
    node = programmed(myapp_ports())
    trace = node.trace(EXTERNAL, NODE1.ip, 30107)
    assert trace.verdict == "ipvs" and trace.real_server != "10.244.1.10:80" and not trace.masquerade


def test_loadbalancer_ip_is_marked_and_source_ranges_filter():
    node = programmed(myapp_ports())
    assert node.trace(EXTERNAL, "172.18.255.200", 80).masquerade
    assert node.trace(EXTERNAL, "172.18.255.203", 80).verdict == "ipvs"        # 172.18.0.100/32 allowed
    assert node.trace("172.18.0.99", "172.18.255.203", 80).verdict == "drop"   # KUBE-SOURCE-RANGES-FIREWALL
    assert not node.trace(EXTERNAL, "172.18.255.206", 80).masquerade           # Local: KUBE-LOAD-BALANCER-LOCAL


def test_hairpin_is_masqueraded_by_the_loop_back_set():
    node = programmed([svc("myapp-svc", "10.96.0.100", endpoints=[MYAPP[1]])])
    trace = node.trace("10.244.1.10", "10.96.0.100", 80)
    assert trace.real_server == "10.244.1.10:80" and trace.masquerade


def test_no_endpoints_is_unreachable_and_unknown_ports_are_rejected():
    node = programmed(myapp_ports())
    assert node.trace(POD_ON_NODE1, "10.96.0.105", 80).verdict == "unreachable"   # ICMP port unreachable
    assert node.trace(POD_ON_NODE1, "10.96.0.100", 8080).verdict == "reject"      # KUBE-IPVS-FILTER


def test_internal_policy_local_uses_only_this_nodes_endpoints():
    node = programmed(myapp_ports())
    assert {node.trace(POD_ON_NODE1, "10.96.0.108", 80).real_server for _ in range(4)} == {"10.244.1.10:80"}
    assert node.trace(POD_ON_NODE1, "10.96.0.109", 80).verdict == "unreachable"


def test_affinity_keeps_a_client_on_one_real_server_until_the_timeout():
    node = programmed([svc("sticky", "10.96.0.104", affinity_timeout=60)])
    first = node.trace(POD_ON_NODE1, "10.96.0.104", 80, now=0).real_server
    assert {node.trace(POD_ON_NODE1, "10.96.0.104", 80, now=t).real_server for t in range(1, 50)} == {first}
    others = {node.trace("10.244.1.77", "10.96.0.104", 80, now=1).real_server,
              node.trace("10.244.1.78", "10.96.0.104", 80, now=1).real_server}
    assert others - {first}
    table = node.ipvs.services[("tcp", "10.96.0.104", 80)]
    before = table.rr_last
    node.trace(POD_ON_NODE1, "10.96.0.104", 80, now=45)
    assert table.rr_last == before            # the template answered: the scheduler was not asked
    node.trace(POD_ON_NODE1, "10.96.0.104", 80, now=200)
    assert table.rr_last != before            # the template expired: rr chose again


def test_udp_dns_through_the_cluster_ip():
    node = programmed(myapp_ports())
    assert node.trace(POD_ON_NODE1, "10.96.0.10", 53, proto="udp").real_server == "10.244.0.2:53"


# -- scheduler semantics (the fake follows ip_vs_*.c) ------------------------------------------

def _table(scheduler, weights, flags=""):
    table = FakeIpvs()
    lines = [f"-A -t 10.96.0.1:80 -s {scheduler}{flags}"]
    lines += [f"-a -t 10.96.0.1:80 -r 10.244.0.{i}:80 -m -w {w}" for i, w in enumerate(weights, start=1)]
    assert table.restore("\n".join(lines)) == []
    return table


def _pick(table, client="10.244.9.9", port=40000, connect=False):
    return table.schedule("tcp", "10.96.0.1", 80, client, port, connect=connect).address


def test_rr_cycles_and_skips_quiescent():
    table = _table("rr", [1, 0, 1])
    assert collections.Counter(_pick(table) for _ in range(10)) == {"10.244.0.1:80": 5, "10.244.0.3:80": 5}


def test_wrr_shares_by_weight():
    table = _table("wrr", [3, 1])
    assert collections.Counter(_pick(table) for _ in range(40)) == {"10.244.0.1:80": 30, "10.244.0.2:80": 10}


def test_lc_and_wlc_prefer_fewer_connections():
    table = _table("lc", [1, 1])
    first = _pick(table, connect=True)
    assert _pick(table, connect=True) != first
    weighted = _table("wlc", [4, 1])
    picks = collections.Counter(_pick(weighted, connect=True) for _ in range(10))
    assert picks == {"10.244.0.1:80": 8, "10.244.0.2:80": 2}


def test_nq_prefers_an_idle_server_and_sed_counts_the_new_connection():
    table = _table("nq", [10, 1])
    first = {_pick(table, connect=True) for _ in range(2)}
    assert first == {"10.244.0.1:80", "10.244.0.2:80"}   # each idle server once
    sed = _table("sed", [10, 1])
    assert collections.Counter(_pick(sed, connect=True) for _ in range(11))["10.244.0.1:80"] >= 9


def test_sh_is_sticky_per_source_and_mh_port_spreads_connections():
    sh = _table("sh", [1, 1, 1])
    for client in ("10.244.1.2", "10.244.2.3", "172.18.0.100"):
        assert len({_pick(sh, client, port) for port in range(40000, 40020)}) == 1
    assert len({_pick(sh, f"10.244.1.{i}") for i in range(2, 60)}) == 3
    mh = _table("mh", [1, 1, 1], " -b mh-port")
    assert len({_pick(mh, "10.244.1.2", port) for port in range(40000, 40040)}) == 3
    mh_sticky = _table("mh", [1, 1, 1])
    assert len({_pick(mh_sticky, "10.244.1.2", port) for port in range(40000, 40040)}) == 1


def test_dh_is_per_destination():
    dh = _table("dh", [1, 1])
    assert len({_pick(dh, f"10.244.1.{i}") for i in range(2, 30)}) == 1


def test_a_vip_without_real_servers_has_no_destination():
    assert FakeIpvs().restore("-A -t 10.96.0.1:80 -s rr") == []
    table = _table("rr", [0])
    assert table.schedule("tcp", "10.96.0.1", 80, "10.244.0.9") is None


def test_every_registered_scheduler_is_modelled():
    for scheduler in get_backend("ipvs").algorithms:
        table = _table(scheduler, [1, 2])
        assert _pick(table) in ("10.244.0.1:80", "10.244.0.2:80")


def test_endpoint_order_does_not_change_the_state():
    ports = [svc("a", "10.96.0.1", endpoints=list(reversed(MYAPP)))]
    assert build_state(ports, NODE1) == build_state([svc("a", "10.96.0.1")], NODE1)
    assert port_state(svc("x", "10.96.0.7", endpoints=[Endpoint("10.244.1.5", 80, "node1")]), NODE1).bind_addresses == (
        "10.96.0.7",)
