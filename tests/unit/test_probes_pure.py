"""The probes' pure parts: packets built and read with scapy, SYN exchanges summarised, traces parsed."""
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether

from testbed.probes.cli import _standalone, describe
from testbed.probes.dns import answers_of, query_bytes
from testbed.probes.packets import Seen, arp_request, parse_arp_reply, parse_ip, summarise_syn, syn_frame
from testbed.probes.trace import (matched_from_counters, matched_from_nft_trace, matched_from_ofproto,
                                  nft_trace_rules)

CLIENT, VIP, POD = "10.244.0.5", "10.96.0.20", "10.244.1.3"


def test_a_syn_is_a_syn_with_an_mss():
    frame = Ether(syn_frame("0a:58:0a:f4:00:05", "02:42:ac:12:00:0a", CLIENT, VIP, 80, 45000, seq=7))
    assert frame[IP].dst == VIP and frame[TCP].flags == "S" and frame[TCP].sport == 45000 and frame[TCP].seq == 7
    assert ("MSS", 1460) in frame[TCP].options
    seen = parse_ip("client", bytes(frame), True, 0.0)
    assert (seen.src, seen.sport, seen.dst, seen.dport, seen.flags, seen.direction) == (CLIENT, 45000, VIP, 80, "S", "out")


def test_arp_request_and_reply():
    request = Ether(arp_request("02:42:ac:12:00:64", "172.18.0.100", "172.18.255.200"))
    assert request.dst == "ff:ff:ff:ff:ff:ff" and request[ARP].op == 1 and request[ARP].pdst == "172.18.255.200"
    reply = Ether(src="02:42:ac:12:00:0b") / ARP(op=2, psrc="172.18.255.200", hwsrc="02:42:ac:12:00:0b")
    assert parse_arp_reply(bytes(reply)) == ("172.18.255.200", "02:42:ac:12:00:0b")
    assert parse_arp_reply(bytes(request)) is None


def seen(where, t, direction, src, sport, dst, dport, flags):
    return Seen(where, t, direction, src, sport, dst, dport, "tcp", flags, 64)


def test_a_syn_exchange_shows_the_rewrites_and_the_endpoint():
    at_client = [seen("c", 0, "out", CLIENT, 45000, VIP, 80, "S"), seen("c", 90, "in", VIP, 80, CLIENT, 45000, "SA"),
                 seen("c", 95, "out", CLIENT, 45000, VIP, 80, "R")]
    at_pods = {"web-a": [seen("a", 40, "in", "10.244.0.1", 51000, "10.244.1.9", 8080, "S")],    # the kubelet's probe
               "web-b": [seen("b", 45, "in", CLIENT, 45000, POD, 8080, "S"),
                         seen("b", 46, "out", POD, 8080, CLIENT, 45000, "SA")]}
    summary = summarise_syn("pod client", CLIENT, 45000, VIP, 80, at_client, at_pods, {"web-a": "10.244.1.9", "web-b": POD}, 8080)
    assert summary["served_by"] == "web-b" and summary["endpoint_dst"] == f"{POD}:8080"
    assert summary["source_preserved"] and summary["reply_src_is_vip"] and summary["rtt_us"] == 90
    lines = describe("syn", summary)
    assert "destination rewritten to the endpoint" in lines[1] and "source rewritten back to the VIP" in lines[2]


def test_a_masqueraded_refused_syn():
    at_client = [seen("c", 0, "out", "172.18.0.100", 45000, "172.18.0.10", 32223, "S"),
                 seen("c", 50, "in", "172.18.0.10", 32223, "172.18.0.100", 45000, "RA")]
    summary = summarise_syn("external", "172.18.0.100", 45000, "172.18.0.10", 32223, at_client,
                            {"web-a": [seen("a", 20, "in", "172.18.0.10", 61234, POD, 80, "S")]}, {"web-a": POD}, 80)
    assert summary["rejected"] and not summary["answered"] and summary["served_by"] == "web-a"
    assert not summary["source_preserved"] and "masquerade" in describe("nodeport", summary)[1]


def test_dns_messages():
    query = DNS(query_bytes("myapp-svc.default.svc.cluster.local", "A", 42))
    assert query.id == 42 and query.qd[0].qname == b"myapp-svc.default.svc.cluster.local."
    reply = DNS(id=42, qr=1, rcode=0, qd=DNSQR(qname="a.b."), an=DNSRR(rrname="a.b.", type="A", rdata="10.96.0.20"))
    assert answers_of(bytes(reply)) == ("NOERROR", ["a.b A 10.96.0.20"])
    assert answers_of(bytes(DNS(id=1, qr=1, rcode=3, qd=DNSQR(qname="x."))))[0] == "NXDOMAIN"


def test_nft_trace_keeps_the_first_packets_rules():
    text = """trace id 11aa ip testbed-trace pre packet: iif "eth0" ip saddr 10.244.0.5 ip daddr 10.96.0.20
trace id 11aa ip testbed-trace pre rule ip saddr 10.244.0.5 ip daddr 10.96.0.20 tcp dport 80 meta nftrace set 1 (verdict continue)
trace id 11aa ip nat PREROUTING rule counter packets 0 bytes 0 jump KUBE-SERVICES (verdict jump KUBE-SERVICES)
trace id 11aa ip nat KUBE-SERVICES rule ip daddr 10.96.0.20 tcp dport 80 counter jump KUBE-SVC-ABC (verdict jump KUBE-SVC-ABC)
trace id 11aa ip nat KUBE-SVC-ABC verdict continue
trace id 22bb ip nat PREROUTING rule counter packets 0 bytes 0 jump KUBE-SERVICES (verdict jump KUBE-SERVICES)
"""
    assert matched_from_nft_trace(text) == [
        "ip nat PREROUTING: counter packets 0 bytes 0 jump KUBE-SERVICES (verdict jump KUBE-SERVICES)",
        "ip nat KUBE-SERVICES: ip daddr 10.96.0.20 tcp dport 80 counter jump KUBE-SVC-ABC (verdict jump KUBE-SVC-ABC)"]
    rules = nft_trace_rules(CLIENT, VIP, 80)
    assert "priority -350" in rules and f"ip daddr {VIP} tcp dport 80" in rules


def test_legacy_counters_tell_which_rules_a_packet_passed():
    before = "*nat\n[5:300] -A PREROUTING -j KUBE-SERVICES\n[0:0] -A KUBE-SERVICES -d 10.96.0.20/32 -j KUBE-SVC-A\n" \
             "[0:0] -A KUBE-SERVICES -d 10.96.0.21/32 -j KUBE-SVC-B\nCOMMIT\n"
    after = before.replace("[5:300]", "[6:360]").replace("[0:0] -A KUBE-SERVICES -d 10.96.0.20",
                                                         "[1:60] -A KUBE-SERVICES -d 10.96.0.20")
    assert matched_from_counters(before, after) == ["nat: -A PREROUTING -j KUBE-SERVICES",
                                                    "nat: -A KUBE-SERVICES -d 10.96.0.20/32 -j KUBE-SVC-A"]


def test_ofproto_trace_steps():
    text = """Flow: tcp,in_port=10,nw_src=10.244.0.5,nw_dst=10.96.0.20,tp_dst=80

bridge("tb-node1")
------------------
 0. ip,in_port=10, priority 100, cookie 0x1
    goto_table:10
10. tcp,nw_dst=10.96.0.20,tp_dst=80, priority 200, cookie 0x2
    group:7
"""
    assert matched_from_ofproto(text) == ["table 0: ip,in_port=10, priority 100, cookie 0x1 -> goto_table:10",
                                          "table 10: tcp,nw_dst=10.96.0.20,tp_dst=80, priority 200, cookie 0x2 -> group:7"]


def test_probe_command_line():
    args = _standalone().parse_args(["probe", "trace", "--modes", "iptables,sdn", "--service", "web"])
    assert (args.probe, args.modes, args.service) == ("trace", "iptables,sdn", "web")
    record = {"method": "nft monitor trace", "node": "node1", "client": "client", "target": "10.96.0.20:80", "matched": []}
    assert describe("trace", record)[-1] == "  (nothing matched)"


def test_probe_records_become_tidy_samples():
    from testbed import Cluster
    from testbed.probes import to_samples
    from testbed.results import check_samples
    cluster = Cluster(proxy_mode="iptables", network=False)
    syn = {"vip": VIP, "port": 80, "answered": True, "reply_src_is_vip": True, "source_preserved": True, "rtt_us": 80.0,
           "served_by": "web-b", "endpoint_dst": f"{POD}:8080", "endpoint_src": f"{CLIENT}:45000", "reply_src": f"{VIP}:80"}
    rows = to_samples([syn], cluster, "syn")
    check_samples(rows)
    assert {(r["metric"], r["value"]) for r in rows} == {("syn_answered", 1.0), ("vip_rewritten_back", 1.0),
                                                        ("source_preserved", 1.0), ("syn_rtt_us", 80.0)}
    assert {r["backend"] for r in rows} == {"iptables (nft)"} and {r["target"] for r in rows} == {f"{VIP}:80"}
    dns_rows = to_samples([{"name": "a.b", "qtype": "A", "rcode": "NXDOMAIN", "answers": [], "rtt_us": None, "seq": 0}],
                          cluster, "dns")
    assert [(r["metric"], r["value"]) for r in dns_rows] == [("dns_answered", 0.0)]
