"""scapy probes against a live cluster: the SYN's rewrites on the wire, ARP answers for LoadBalancer
IPs, DNS timing, NodePort sources, and which rules or flows a connection met, per mode."""
import os

import pytest

from testbed import probes
from testbed.experiments.common import cluster_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="integration tests need root")


@pytest.fixture(scope="module", params=["iptables", "iptables-legacy", "sdn"])
def live(request):
    with cluster_for(request.param, seed=5) as cluster:
        cluster.apply("examples/myapp.yaml")
        cluster.mode_label = request.param
        yield cluster


def test_syn_shows_the_vip_rewritten_both_ways(live):
    record = probes.syn(live, "myapp-svc")
    target = probes.service_target(live, "myapp-svc")
    assert record["answered"] and record["reply_src_is_vip"], record
    assert record["served_by"] in target["endpoints"]
    assert record["endpoint_dst"] == f"{target['endpoints'][record['served_by']]}:{target['target_port']}"
    assert record["source_preserved"]       # pod to Service: no masquerade
    rows = probes.to_samples([record], live, "syn")
    assert {r["metric"] for r in rows} >= {"syn_answered", "vip_rewritten_back", "syn_rtt_us"}
    assert all(r["datapath"] for r in rows)


def test_nodeport_from_outside_is_masqueraded_under_cluster_policy(live, request):
    if live.backend.needs_openflow:
        request.applymarker(pytest.mark.xfail(reason="observed on this machine: in sdn mode a single raw SYN from the "
                                              "external host to some nodes' NodePorts gets no answer within 1 s (curl, "
                                              "which retransmits, succeeds); not yet explained", strict=False))
    records = probes.nodeport(live, "myapp-svc-lb")
    answered = [r for r in records if r["answered"]]
    assert len(answered) == len(records), records
    assert any(not r["source_preserved"] for r in answered if r["entry"].startswith("nodeport"))


def test_arp_answers_for_loadbalancer_ips_only(live):
    records = {r["ip"]: r for r in probes.arp(live)}
    lb_ip = live.get("svc", "myapp-svc-lb")["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert records[lb_ip]["answered"] and records[lb_ip]["answers"][0]["node"].startswith("node")
    cluster_ip = live.get("svc", "myapp-svc")["spec"]["clusterIP"]
    assert not records[cluster_ip]["answered"]


def test_dns_answers_and_times(live):
    records = probes.dns(live, ["myapp-svc.default.svc.cluster.local", "nothing.default.svc.cluster.local"], count=3)
    vip = live.get("svc", "myapp-svc")["spec"]["clusterIP"]
    found = [r for r in records if r["name"].startswith("myapp")]
    assert all(r["rcode"] == "NOERROR" and any(vip in a for a in r["answers"]) and r["rtt_us"] > 0 for r in found)
    assert {r["rcode"] for r in records if r["name"].startswith("nothing")} == {"NXDOMAIN"}


def test_trace_names_the_rules_or_flows_met(live):
    record = probes.trace(live, "myapp-svc")
    text = " ".join(record["matched"])
    assert record["matched"], record["raw"][-2000:]
    if live.backend.needs_openflow:
        assert record["method"] == "ofproto/trace" and "table" in text
    else:
        assert "KUBE-SVC-" in text and "KUBE-SEP-" in text
