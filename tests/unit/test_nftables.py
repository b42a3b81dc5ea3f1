"""kube-proxy's nftables rules (testbed.backends.nftables): names, kube-proxy's own expected output,
golden output, and packet traces.

The golden file is the rendering for node1 of the same Services the iptables tests use
(tests/unit/test_iptables.py myapp_ports); regenerate it with
`UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_nftables.py` and review the diff.
The traces load the rendering into tests/support/fake_nft.py and follow packets through the hooks.
"""
import os
import random
from pathlib import Path

import pytest

from testbed.backends.nftables import (
    CHAIN_NAME_BASE_LENGTH_MAX, KernelTable, affinity_set_name, build_ruleset, endpoint_chain_name,
    hash_and_truncate, masquerade_mark, render_nftables, service_chain_names)
from testbed.proxy.model import Endpoint, NodeInfo, ServicePort
from testbed.proxy.topology import categorize_endpoints
from tests.support.fake_nft import FakeNft, FakeNftError
from tests.unit.test_iptables import EXTERNAL, MYAPP, NODE1, NODE1_LOCAL, POD_ON_NODE1, myapp_ports, svc

GOLDEN = Path(__file__).parents[1] / "golden" / "nftables" / "myapp-node1.nft"


@pytest.fixture(scope="module")
def fake():
    nft = FakeNft()
    nft.run(render_nftables(myapp_ports(), NODE1))
    return nft


def trace(fake, src, dst, dport=80, **kwargs):
    kwargs.setdefault("local_addresses", NODE1_LOCAL)
    return fake.trace(src, dst, dport=dport, **kwargs)


# -- names ------------------------------------------------------------------------------------

def test_chain_names_match_kube_proxys_vectors():
    """Vectors from kube-proxy's proxier_test.go, and from a real cluster's `nft list table`."""
    port = ServicePort("ns1", "svc1", "p80", "TCP", 80, "172.30.0.41")
    assert service_chain_names(port).cluster == "service-ULMVA6XW-ns1/svc1/tcp/p80"
    assert service_chain_names(port).external == "external-ULMVA6XW-ns1/svc1/tcp/p80"
    assert endpoint_chain_name(port, Endpoint("10.180.0.1", 80)) == "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    sticky = ServicePort("ns5", "svc5", "p80", "TCP", 80, "172.30.0.45")
    assert affinity_set_name(sticky, Endpoint("10.180.0.3", 80)) == "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"
    dns = ServicePort("kube-system", "kube-dns", "dns", "UDP", 53, "10.43.0.10")
    assert service_chain_names(dns).cluster == "service-FY5PMXPG-kube-system/kube-dns/udp/dns"
    assert endpoint_chain_name(dns, Endpoint("10.42.0.171", 53)) == \
        "endpoint-S4FSIJI2-kube-system/kube-dns/udp/dns__10.42.0.171/53"
    unnamed = ServicePort("riset", "hellopod-np-svc", "", "TCP", 8000, "10.43.195.72")
    assert service_chain_names(unnamed).cluster == "service-P6J77WGM-riset/hellopod-np-svc/tcp/"


def test_long_names_keep_their_hash_and_are_truncated():
    longest_ipv4 = "n" * 63 + "/" + "s" * 63 + "/sctp/" + "p" * 63 + "__10.244.255.255/65535"
    assert not hash_and_truncate(longest_ipv4).endswith("...")   # as kube-proxy notes: never for IPv4
    name = "x" * 300
    base = hash_and_truncate(name)
    assert len(base) == CHAIN_NAME_BASE_LENGTH_MAX and base.endswith("...")
    assert base[:9] == hash_and_truncate(name)[:9] != hash_and_truncate(name + "x")[:9]
    assert len(hash_and_truncate("short")) == 8 + 1 + len("short")


def test_mark_is_formatted_as_new_proxier_does():
    assert masquerade_mark(14) == "0x00004000" and masquerade_mark(0) == "0x00000001"


# -- kube-proxy's own expected output ----------------------------------------------------------

KUBE_PROXY_NODE = NodeInfo("test-node", "192.168.0.2", "10.0.0.0/24", "10.0.0.0/8", service_cidr="172.30.0.0/16")


def kube_proxy_test_services():
    """The Services and EndpointSlices of kube-proxy's TestOverallNFTablesRules (proxier_test.go)."""
    def port(ns, name, ip, endpoints=(), **fields):
        return ServicePort(ns, name, "p80", "TCP", 80, ip, endpoints=tuple(endpoints), **fields)
    return [
        port("ns1", "svc1", "172.30.0.41", [Endpoint("10.180.0.1", 80)]),
        port("ns2", "svc2", "172.30.0.42", [Endpoint("10.180.0.2", 80)], service_type="LoadBalancer", node_port=3001,
             load_balancer_ips=("1.2.3.4",), external_ips=("192.168.99.22",), external_policy_local=True,
             health_check_node_port=30000),
        port("ns3", "svc3", "172.30.0.43", [Endpoint("10.180.0.3", 80)], service_type="NodePort", node_port=3003),
        port("ns4", "svc4", "172.30.0.44", [Endpoint("10.180.0.4", 80), Endpoint("10.180.0.5", 80, "test-node")],
             service_type="NodePort", external_ips=("192.168.99.33",)),
        port("ns5", "svc5", "172.30.0.45", [Endpoint("10.180.0.3", 80)], service_type="LoadBalancer", node_port=3002,
             load_balancer_ips=("5.6.7.8",), health_check_node_port=30000,
             load_balancer_source_ranges=(" 203.0.113.0/25",), affinity_timeout=10800),
        port("ns6", "svc6", "172.30.0.46"),
    ]


KUBE_PROXY_EXPECTED = Path(__file__).parents[1] / "golden" / "nftables" / "kube-proxy-TestOverallNFTablesRules.nft"


def sorted_transaction(text: str) -> list[str]:
    """kube-proxy's sortNFTablesTransaction: by object type, then name; rules keep their order."""
    order = {"table": 10, "chain": 9, "rule": 8, "set": 7, "map": 6, "element": 5}
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return sorted(lines, key=lambda line: (-order[line.split()[1]], line.split()[4] if len(line.split()) > 4 else "",
                                           0 if line.split()[1] == "rule" else line))


def test_renders_what_kube_proxys_test_expects():
    rendered = render_nftables(kube_proxy_test_services(), KUBE_PROXY_NODE).replace("0x00004000", "0x4000")
    assert sorted_transaction(rendered) == sorted_transaction(KUBE_PROXY_EXPECTED.read_text())


# -- golden output and determinism ------------------------------------------------------------

def test_golden_output_for_myapp_services():
    text = render_nftables(myapp_ports(), NODE1)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_output_is_byte_identical_whatever_the_input_order():
    ports = myapp_ports()
    first = render_nftables(ports, NODE1)
    random.Random(3).shuffle(ports)
    assert render_nftables(ports, NODE1) == first


def test_render_is_knftables_dump_form_and_loads():
    text = render_nftables(myapp_ports(), NODE1)
    verbs = [line.split()[:2] for line in text.splitlines()]
    assert verbs[0] == ["add", "table"] and {v[0] for v in verbs} == {"add"}
    kinds = [v[1] for v in verbs]
    assert kinds == sorted(kinds, key=["table", "chain", "set", "map", "rule", "element"].index)
    nft = FakeNft()
    nft.run(text)
    assert sorted(nft.dump().splitlines()) == sorted(text.splitlines())    # every line understood, nothing lost


def test_headless_services_get_nothing():
    assert "myapp-headless-svc" not in render_nftables(myapp_ports(), NODE1)


def test_counts():
    ruleset = build_ruleset(myapp_ports(), NODE1)
    assert ruleset.rule_count == sum(len(c.rules) for c in ruleset.chains)
    assert len(ruleset.elements()) == render_nftables(myapp_ports(), NODE1).count("add element")


def test_the_kernel_listing_is_read_from_nft_json():
    listing = ('{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},'
               '{"table": {"family": "ip", "name": "kube-proxy", "handle": 3}},'
               '{"set": {"family": "ip", "name": "affinity-Q", "table": "kube-proxy", "type": "ipv4_addr",'
               ' "handle": 2, "flags": ["timeout"], "timeout": 10800}},'
               '{"map": {"family": "ip", "name": "m", "table": "kube-proxy", "type": ["ipv4_addr"], "map": "verdict"}},'
               '{"chain": {"family": "ip", "table": "kube-proxy", "name": "a/b", "handle": 1}}]}')
    table = KernelTable.from_json(listing)
    assert table.chains == {"a/b"} and table.sets == {"affinity-Q": 10800}   # maps are not sets


# -- traces -----------------------------------------------------------------------------------

def test_random_choice_gives_each_endpoint_one_nth(fake):
    result = trace(fake, POD_ON_NODE1, "10.96.0.100")
    assert result.dnat_probabilities() == pytest.approx({e.address: 1 / 3 for e in MYAPP})
    assert result.verdicts == {"ACCEPT"}
    assert all(o.met("numgen random mod 3 vmap") for o in result.outcomes)


def test_pod_to_cluster_ip_keeps_its_source(fake):
    assert not any(o.masquerade for o in trace(fake, POD_ON_NODE1, "10.96.0.100").outcomes)


def test_hairpin_traffic_is_masqueraded(fake):
    result = trace(fake, "10.244.0.10", "10.96.0.100")
    assert {o.dnat: o.masquerade for o in result.outcomes} == {
        "10.244.0.10:80": True, "10.244.1.10:80": False, "10.244.2.10:80": False}


def test_off_cluster_sources_to_a_cluster_ip_are_masqueraded(fake):
    result = trace(fake, EXTERNAL, "10.96.0.100")
    assert len(result.outcomes) == 3 and all(o.masquerade for o in result.outcomes)
    assert all(o.met("ip saddr != 10.244.0.0/16 jump mark-for-masquerade") for o in result.outcomes)


def test_the_node_itself_reaches_cluster_ips_masqueraded(fake):
    result = trace(fake, "172.18.0.11", "10.96.0.100", origin="node")
    assert set(result.dnat_probabilities()) == {e.address for e in MYAPP}
    assert all(o.masquerade and o.met("nat-output: jump services") for o in result.outcomes)


def test_nodeport_with_cluster_policy_spreads_and_masquerades(fake):
    result = trace(fake, EXTERNAL, "172.18.0.11", dport=32223)
    assert result.dnat_probabilities() == pytest.approx({e.address: 1 / 3 for e in MYAPP})
    assert all(o.masquerade and o.met("vmap @service-nodeports") for o in result.outcomes)


def test_nodeports_answer_only_on_the_primary_node_ip(fake):
    result = trace(fake, EXTERNAL, "10.244.1.1", dport=32223)
    assert result.only.dnat is None and result.only.verdict == "ACCEPT"


def test_local_nodeport_without_local_endpoints_drops(fake):
    result = trace(fake, EXTERNAL, "172.18.0.11", dport=30107)
    assert result.only.verdict == "DROP" and result.only.dnat is None
    assert result.only.met("nodeport-endpoints-check")


def test_local_nodeport_from_a_pod_short_circuits_to_all_endpoints(fake):
    result = trace(fake, POD_ON_NODE1, "172.18.0.11", dport=30107)
    assert set(result.dnat_probabilities()) == {"10.244.0.10:80", "10.244.2.10:80"}
    assert all(o.met("short-circuit pod traffic") for o in result.outcomes)


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
    assert refused.only.verdict == "DROP" and refused.only.met("filter-prerouting: ct state new jump firewall-check")
    nodeport = trace(fake, "172.18.0.50", "172.18.0.11", dport=30103)   # NodePorts ignore the ranges
    assert set(nodeport.dnat_probabilities()) == {e.address for e in MYAPP}


def test_service_without_endpoints_rejects(fake):
    assert trace(fake, POD_ON_NODE1, "10.96.0.105").only.verdict == "REJECT"
    external = trace(fake, EXTERNAL, "172.18.0.11", dport=30105).only
    assert external.verdict == "REJECT" and external.met("nodeport-endpoints-check")


def test_unknown_ports_and_unallocated_cluster_ips(fake):
    unknown_port = trace(fake, POD_ON_NODE1, "10.96.0.100", dport=81).only
    assert unknown_port.verdict == "REJECT" and unknown_port.met("ip daddr @cluster-ips reject")
    assert trace(fake, POD_ON_NODE1, "10.96.7.7").only.verdict == "DROP"
    assert trace(fake, POD_ON_NODE1, "10.100.0.1").only.verdict == "DROP"   # inside 10.96.0.0/12


def test_internal_local_policy_uses_only_local_endpoints_or_drops(fake):
    assert trace(fake, POD_ON_NODE1, "10.96.0.108").only.dnat == "10.244.1.10:80"
    dropped = trace(fake, POD_ON_NODE1, "10.96.0.109").only
    assert dropped.verdict == "DROP" and dropped.met("service-endpoints-check")


def test_external_ip_goes_through_the_external_chain(fake):
    result = trace(fake, EXTERNAL, "172.18.0.200")
    assert set(result.dnat_probabilities()) == {e.address for e in MYAPP}
    assert all(o.masquerade and o.met("external-") for o in result.outcomes)


def test_client_ip_affinity_sticks_to_the_remembered_endpoint(fake):
    sticky = myapp_ports()[4]
    remembered = affinity_set_name(sticky, MYAPP[2])
    result = trace(fake, POD_ON_NODE1, "10.96.0.104", affinity={(remembered, POD_ON_NODE1)})
    assert result.only.dnat == "10.244.2.10:80" and result.only.updates == (remembered,)
    fresh = trace(fake, POD_ON_NODE1, "10.96.0.104")
    assert fresh.dnat_probabilities() == pytest.approx({e.address: 1 / 3 for e in MYAPP})
    assert {o.dnat: o.updates for o in fresh.outcomes} == {
        e.address: (affinity_set_name(sticky, e),) for e in MYAPP}
    other_client = trace(fake, "10.244.1.51", "10.96.0.104", affinity={(remembered, POD_ON_NODE1)})
    assert len(other_client.outcomes) == 3


def test_udp_dns_is_dispatched_by_protocol(fake):
    result = trace(fake, POD_ON_NODE1, "10.96.0.10", dport=53, proto="udp")
    assert result.only.dnat == "10.244.0.2:53" and result.only.met("/kube-dns/udp/dns")
    tcp = trace(fake, POD_ON_NODE1, "10.96.0.10", dport=53, proto="tcp")
    assert tcp.only.met("/kube-dns/tcp/dns-tcp")


def test_both_policies_local_still_short_circuit_pods_to_every_endpoint():
    """kube-proxy's UsesClusterEndpoints holds for any externally reachable port: with both traffic
    policies Local the external chain still jumps to the Cluster chain (it was missing)."""
    elsewhere = [e for e in MYAPP if e.node_name != "node1"]
    both = svc("both-local", "10.96.0.120", service_type="NodePort", node_port=30120, internal_policy_local=True,
               external_policy_local=True, endpoints=MYAPP)
    assert categorize_endpoints(both, "node1").cluster == MYAPP
    nft = FakeNft()
    nft.run(render_nftables([both, svc("x", "10.96.0.121", endpoints=elsewhere)], NODE1))
    from_pod = trace(nft, POD_ON_NODE1, "172.18.0.11", dport=30120)
    assert set(from_pod.dnat_probabilities()) == {e.address for e in MYAPP}
    assert trace(nft, EXTERNAL, "172.18.0.11", dport=30120).only.dnat == "10.244.1.10:80"
    assert trace(nft, POD_ON_NODE1, "10.96.0.120").only.dnat == "10.244.1.10:80"


def test_the_fake_refuses_what_the_kernel_refuses():
    nft = FakeNft()
    nft.run(render_nftables(myapp_ports(), NODE1))
    before = nft.dump()
    sticky = myapp_ports()[4]
    chain = service_chain_names(sticky).cluster
    for bad in (f"delete chain ip kube-proxy {endpoint_chain_name(sticky, MYAPP[0])}",     # referenced
                f"delete set ip kube-proxy {affinity_set_name(sticky, MYAPP[0])}",          # referenced
                "add element ip kube-proxy service-ips { 10.96.0.100 . tcp . 80 : drop }",  # other value
                "add element ip kube-proxy no-endpoint-services { 10.96.0.1 . tcp . 1 : reject }",
                "delete element ip kube-proxy cluster-ips { 10.1.2.3 }",
                f"add rule ip kube-proxy {chain} goto no-such-chain",
                "add chain ip kube-proxy nat-output { type nat hook output priority 0 ; }",
                f"add rule ip kube-proxy {chain} ip daddr 10.0.0.1/8 drop"):
        with pytest.raises(FakeNftError):
            nft.run(f"flush chain ip kube-proxy services\n{bad}\n")
    assert nft.dump() == before     # all or nothing
