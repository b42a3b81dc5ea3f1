"""kube-proxy's iptables rules (testbed.backends.iptables): names, golden output, and packet traces.

The golden file is the rendering for node1 of myapp.yaml-like Services; regenerate it with
`UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_iptables.py` and review the diff.
The traces load the same rendering into tests/support/fake_iptables.py and follow packets.
"""
import os
import random
from pathlib import Path

import pytest

from testbed.backends.iptables import (
    LARGE_CLUSTER_ENDPOINTS_THRESHOLD, build_ruleset, endpoint_chain_name,
    masquerade_mark, port_proto_hash, probability, render_iptables, service_chain_names)
from testbed.proxy.model import Endpoint, NodeInfo, ServicePort
from testbed.proxy.topology import categorize_endpoints
from tests.support.fake_iptables import FakeIptables

GOLDEN = Path(__file__).parents[1] / "golden" / "iptables" / "myapp-node1.rules"
NODE1 = NodeInfo(name="node1", ip="172.18.0.11", pod_cidr="10.244.1.0/24", cluster_cidr="10.244.0.0/16")
NODE1_LOCAL = {"172.18.0.11", "10.244.1.1", "127.0.0.1"}   # node IP, pod gateway, loopback
EXTERNAL = "172.18.0.100"
POD_ON_NODE1 = "10.244.1.50"
MYAPP = (Endpoint("10.244.0.10", 80, "node0", pod_name="myapp-0"),
         Endpoint("10.244.1.10", 80, "node1", pod_name="myapp-1"),
         Endpoint("10.244.2.10", 80, "node2", pod_name="myapp-2"))


def svc(name, cluster_ip, port=80, endpoints=MYAPP, namespace="default", **fields):
    defaults = dict(port_name="", protocol="TCP")
    defaults.update(fields)
    return ServicePort(namespace=namespace, name=name, port=port, cluster_ip=cluster_ip,
                       endpoints=tuple(endpoints), **defaults)


def myapp_ports():
    elsewhere = [e for e in MYAPP if e.node_name != "node1"]
    return [
        svc("myapp-svc", "10.96.0.100"),
        svc("myapp-svc-nodeport", "10.96.0.101", service_type="NodePort", node_port=32223),
        svc("myapp-svc-lb", "10.96.0.102", service_type="LoadBalancer", node_port=30102,
            load_balancer_ips=("172.18.255.200",)),
        svc("myapp-lb-restricted", "10.96.0.103", service_type="LoadBalancer", node_port=30103,
            load_balancer_ips=("172.18.255.203",), load_balancer_source_ranges=("172.18.0.100/32",)),
        svc("myapp-sticky", "10.96.0.104", affinity_timeout=10800),
        svc("myapp-empty", "10.96.0.105", service_type="NodePort", node_port=30105, endpoints=()),
        svc("myapp-local", "10.96.0.106", service_type="LoadBalancer", node_port=30106,
            load_balancer_ips=("172.18.255.206",), external_policy_local=True, health_check_node_port=32006),
        svc("myapp-local-elsewhere", "10.96.0.107", service_type="NodePort", node_port=30107,
            external_policy_local=True, endpoints=elsewhere),
        svc("myapp-internal", "10.96.0.108", internal_policy_local=True),
        svc("myapp-internal-elsewhere", "10.96.0.109", internal_policy_local=True, endpoints=elsewhere),
        svc("myapp-external", "10.96.0.110", external_ips=("172.18.0.200",)),
        svc("myapp-headless-svc", None, port_name="httpport"),
        svc("kube-dns", "10.96.0.10", port=53, namespace="kube-system", port_name="dns", protocol="UDP",
            endpoints=[Endpoint("10.244.0.2", 53, "node0")]),
        svc("kube-dns", "10.96.0.10", port=53, namespace="kube-system", port_name="dns-tcp",
            endpoints=[Endpoint("10.244.0.2", 53, "node0")]),
    ]


@pytest.fixture(scope="module")
def fake():
    tables = FakeIptables()
    tables.restore(render_iptables(myapp_ports(), NODE1), noflush=True)
    return tables


def trace(fake, src, dst, dport=80, **kwargs):
    kwargs.setdefault("local_addresses", NODE1_LOCAL)
    return fake.trace(src, dst, dport=dport, **kwargs)


# -- names and formats ------------------------------------------------------------------------

def test_chain_name_matches_kube_proxy_vector():
    assert port_proto_hash("kube-system/kube-dns:dns", "udp") == "TCOU7JCQXEZGVUNU"
    dns = myapp_ports()[-2]
    assert service_chain_names(dns).cluster == "KUBE-SVC-TCOU7JCQXEZGVUNU"
    assert service_chain_names(dns).local == "KUBE-SVL-TCOU7JCQXEZGVUNU"


def test_endpoint_chain_hashes_the_endpoint_address():
    port = myapp_ports()[0]
    name = endpoint_chain_name(port, MYAPP[0])
    assert name == "KUBE-SEP-" + port_proto_hash("default/myapp-svc", "tcp", "10.244.0.10:80")
    assert len({endpoint_chain_name(port, e) for e in MYAPP}) == 3
    assert all(len(endpoint_chain_name(port, e)) <= 28 for e in MYAPP)


def test_probability_and_mark_formats_are_kube_proxys():
    assert [probability(n) for n in (3, 2, 7)] == ["0.3333333333", "0.5000000000", "0.1428571429"]
    assert masquerade_mark(14) == "0x00004000"
    assert masquerade_mark(0) == "0x00000001"


# -- golden output and determinism ------------------------------------------------------------

def test_golden_output_for_myapp_services():
    text = render_iptables(myapp_ports(), NODE1)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_output_is_byte_identical_whatever_the_input_order():
    ports = myapp_ports()
    first = render_iptables(ports, NODE1)
    random.Random(7).shuffle(ports)
    assert render_iptables(ports, NODE1) == first
    assert render_iptables(ports, NODE1) == first


def test_headless_services_get_no_rules():
    assert "myapp-headless-svc" not in render_iptables(myapp_ports(), NODE1)


def test_nodeports_are_reached_on_the_node_ip_as_the_last_rule():
    nat = render_iptables(myapp_ports(), NODE1).split("*nat", 1)[1]
    services = [line for line in nat.splitlines() if line.startswith("-A KUBE-SERVICES")]
    assert services[-1].endswith("-d 172.18.0.11 -j KUBE-NODEPORTS")


def test_restore_input_has_one_filter_and_one_nat_transaction():
    text = render_iptables(myapp_ports(), NODE1)
    assert text.startswith("*filter\n") and text.count("COMMIT\n") == 2
    assert text.index("*nat") > text.index("COMMIT")


def test_large_clusters_drop_the_per_endpoint_comments():
    endpoints = [Endpoint(f"10.244.{i // 250}.{i % 250 + 2}", 80, "node0") for i in range(LARGE_CLUSTER_ENDPOINTS_THRESHOLD + 1)]
    big = svc("big", "10.96.1.1", endpoints=endpoints)
    ruleset = build_ruleset([big], NODE1)
    assert ruleset.large_cluster
    text = ruleset.restore_text()
    sep_rules = [line for line in text.splitlines() if line.startswith("-A KUBE-SEP-")]
    assert sep_rules and not any("--comment" in line for line in sep_rules)
    assert '"default/big cluster IP"' in text  # the Service-level comments stay
    assert not build_ruleset([svc("small", "10.96.1.2")], NODE1).large_cluster


def test_terminating_endpoints_are_used_only_when_none_is_ready():
    terminating = Endpoint("10.244.1.20", 80, "node1", ready=False, serving=True, terminating=True)
    ready = Endpoint("10.244.2.20", 80, "node2")
    both = svc("t", "10.96.1.3", endpoints=[terminating, ready])
    assert categorize_endpoints(both, "node1").reachable == (ready,)
    only_terminating = svc("t", "10.96.1.3", endpoints=[terminating])
    assert categorize_endpoints(only_terminating, "node1").reachable == (terminating,)
    not_serving = svc("t", "10.96.1.3", endpoints=[Endpoint("10.244.1.21", 80, "node1", ready=False, serving=False)])
    assert not categorize_endpoints(not_serving, "node1").has_any


# -- traces -----------------------------------------------------------------------------------

def test_random_choice_gives_each_endpoint_one_nth(fake):
    result = trace(fake, POD_ON_NODE1, "10.96.0.100")
    chances = result.dnat_probabilities()
    assert set(chances) == {"10.244.0.10:80", "10.244.1.10:80", "10.244.2.10:80"}
    assert all(c == pytest.approx(1 / 3, abs=1e-9) for c in chances.values())
    assert sum(chances.values()) == pytest.approx(1.0)
    assert result.verdicts == {"ACCEPT"}


def test_pod_to_cluster_ip_keeps_its_source(fake):
    assert not any(o.masquerade for o in trace(fake, POD_ON_NODE1, "10.96.0.100").outcomes)


def test_hairpin_traffic_is_masqueraded(fake):
    result = trace(fake, "10.244.0.10", "10.96.0.100")
    by_backend = {o.dnat: o.masquerade for o in result.outcomes}
    assert by_backend == {"10.244.0.10:80": True, "10.244.1.10:80": False, "10.244.2.10:80": False}
    hairpin = next(o for o in result.outcomes if o.dnat == "10.244.0.10:80")
    assert hairpin.met("-s 10.244.0.10 -j KUBE-MARK-MASQ")


def test_off_cluster_sources_to_a_cluster_ip_are_masqueraded(fake):
    result = trace(fake, EXTERNAL, "10.96.0.100")
    assert len(result.outcomes) == 3 and all(o.masquerade for o in result.outcomes)
    assert all(o.met("! -s 10.244.0.0/16 -j KUBE-MARK-MASQ") for o in result.outcomes)


def test_the_node_itself_reaches_cluster_ips_masqueraded(fake):
    result = trace(fake, "172.18.0.11", "10.96.0.100", hook="OUTPUT")
    assert set(result.dnat_probabilities()) == {e.address for e in MYAPP}
    assert all(o.masquerade for o in result.outcomes)


def test_nodeport_with_cluster_policy_spreads_and_masquerades(fake):
    result = trace(fake, EXTERNAL, "172.18.0.11", dport=32223)
    assert result.dnat_probabilities() == pytest.approx({e.address: 1 / 3 for e in MYAPP})
    assert all(o.masquerade and o.met("KUBE-NODEPORTS") for o in result.outcomes)


def test_nodeports_answer_only_on_the_primary_node_ip(fake):
    result = trace(fake, EXTERNAL, "10.244.1.1", dport=32223)
    assert result.only.dnat is None and result.only.verdict == "ACCEPT"


def test_local_nodeport_without_local_endpoints_drops(fake):
    result = trace(fake, EXTERNAL, "172.18.0.11", dport=30107)
    assert result.only.verdict == "DROP" and result.only.dnat is None
    assert result.only.met('"default/myapp-local-elsewhere has no local endpoints"')


def test_local_nodeport_from_a_pod_short_circuits_to_all_endpoints(fake):
    result = trace(fake, POD_ON_NODE1, "172.18.0.11", dport=30107)
    assert set(result.dnat_probabilities()) == {"10.244.0.10:80", "10.244.2.10:80"}
    assert result.verdicts == {"ACCEPT"}


def test_local_load_balancer_keeps_the_client_address(fake):
    result = trace(fake, EXTERNAL, "172.18.255.206")
    assert result.only.dnat == "10.244.1.10:80" and not result.only.masquerade


def test_load_balancer_ip_with_cluster_policy(fake):
    result = trace(fake, EXTERNAL, "172.18.255.200")
    assert set(result.dnat_probabilities()) == {e.address for e in MYAPP}
    assert all(o.masquerade for o in result.outcomes)


def test_load_balancer_source_ranges(fake):
    allowed = trace(fake, EXTERNAL, "172.18.255.203")
    assert set(allowed.dnat_probabilities()) == {e.address for e in MYAPP}
    refused = trace(fake, "172.18.0.50", "172.18.255.203")
    assert refused.only.verdict == "DROP"
    assert refused.only.met("KUBE-PROXY-FIREWALL")


def test_service_without_endpoints_rejects(fake):
    assert trace(fake, POD_ON_NODE1, "10.96.0.105").only.verdict == "REJECT"
    assert trace(fake, EXTERNAL, "172.18.0.11", dport=30105).only.verdict == "REJECT"


def test_internal_local_policy_uses_only_local_endpoints_or_drops(fake):
    assert trace(fake, POD_ON_NODE1, "10.96.0.108").only.dnat == "10.244.1.10:80"
    dropped = trace(fake, POD_ON_NODE1, "10.96.0.109").only
    assert dropped.verdict == "DROP" and dropped.met("has no local endpoints")


def test_external_ip_goes_through_the_external_chain(fake):
    result = trace(fake, EXTERNAL, "172.18.0.200")
    assert set(result.dnat_probabilities()) == {e.address for e in MYAPP}
    assert all(o.masquerade and o.met("KUBE-EXT-") for o in result.outcomes)


def test_client_ip_affinity_sticks_to_the_remembered_endpoint(fake):
    sticky = myapp_ports()[4]
    remembered = endpoint_chain_name(sticky, MYAPP[2])
    result = trace(fake, POD_ON_NODE1, "10.96.0.104", recent={(remembered, POD_ON_NODE1)})
    assert result.only.dnat == "10.244.2.10:80" and remembered in result.only.recent_set
    fresh = trace(fake, POD_ON_NODE1, "10.96.0.104")
    assert fresh.dnat_probabilities() == pytest.approx({e.address: 1 / 3 for e in MYAPP})
    assert all(endpoint_chain_name(sticky, MYAPP[i]) in o.recent_set
               for i, o in enumerate(sorted(fresh.outcomes, key=lambda o: o.dnat)))


def test_udp_dns_uses_the_vector_chain(fake):
    result = trace(fake, POD_ON_NODE1, "10.96.0.10", dport=53, proto="udp")
    assert result.only.dnat == "10.244.0.2:53" and result.only.met("KUBE-SVC-TCOU7JCQXEZGVUNU")
    assert trace(fake, POD_ON_NODE1, "10.96.0.10", dport=54, proto="udp").only.dnat is None


def test_health_check_node_port_is_accepted(fake):
    result = trace(fake, EXTERNAL, "172.18.0.11", dport=32006)
    assert result.only.verdict == "ACCEPT" and result.only.met("health check node port")
