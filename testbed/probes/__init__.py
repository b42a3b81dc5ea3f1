"""scapy packet probes inside a running emulated cluster (`testbed probe ...` is their CLI).

    from testbed import Cluster, probes
    with Cluster(proxy_mode="iptables") as c:
        c.apply("examples/myapp.yaml")
        r = probes.syn(c, "myapp-svc")          # a SYN from a pod to the VIP, captured on both sides
        r["endpoint_dst"], r["reply_src"], r["served_by"]
        probes.arp(c)                           # who answers ARP for the VIPs and LoadBalancer IPs
        probes.dns(c, ["myapp-svc.default.svc.cluster.local"], count=20)   # queries and their timing
        probes.nodeport(c, "myapp-svc")         # NodePort SYNs from the external host, per node
        probes.trace(c, "myapp-svc")            # which rules or flows the connection met
        probes.to_samples(records, c, "syn")    # the same tidy rows as experiment samples

Every probe sends from and captures in the emulation's own namespaces (testbed/probes/capture.py);
scapy builds and parses the packets. The records are plain dicts.
"""
from __future__ import annotations

import random
import time

from ..errors import TestbedError
from .capture import Tap, netns_of
from .dns import dns
from .packets import arp_request, parse_arp_reply, parse_ip, summarise_syn, syn_frame
from .trace import trace

__all__ = ["arp", "dns", "nodeport", "service_target", "syn", "to_samples", "trace"]


def _link(host, interface: str = "eth0") -> tuple[str, str]:
    """(mac, ipv4) of a host's interface, read inside its namespace."""
    words = host.cmd(f"ip -o link show {interface}").split()
    mac = words[words.index("link/ether") + 1] if "link/ether" in words else ""
    return mac, host.IP()


def next_hop(host, destination: str) -> str:
    """The address a host sends to for `destination` (its gateway, or the destination on-link)."""
    words = host.cmd(f"ip -o route get {destination}").split()
    return words[words.index("via") + 1] if "via" in words else destination


def resolve_mac(host, ip: str, timeout: float = 1.0) -> str | None:
    """ARP for `ip` from the host's eth0 (scapy frames on a packet socket); the answering MAC."""
    mac, own_ip = _link(host)
    with Tap("arp", netns_of(host)) as tap:
        for _ in range(3):
            tap.send(arp_request(mac, own_ip, ip))
            deadline = time.monotonic() + timeout / 3
            while time.monotonic() < deadline:
                for frame in list(tap.frames):
                    reply = parse_arp_reply(frame.data)
                    if reply and reply[0] == ip:
                        return reply[1]
                time.sleep(0.01)
    return None


def service_target(cluster, service: str, namespace: str = "default", port: int | str | None = None) -> dict:
    """A Service's VIP, port, targetPort, nodePort and its ready endpoints (pod name -> IP)."""
    svc = cluster.get("svc", service, namespace=namespace)
    ports = svc["spec"].get("ports") or []
    chosen = next((p for p in ports if port in (None, p.get("port"), p.get("name"))), None)
    if chosen is None:
        raise TestbedError(f"service {namespace}/{service} has no port {port!r}")
    endpoints: dict[str, str] = {}
    target_port = chosen.get("targetPort", chosen["port"])
    for eps in cluster.get("endpointslice", namespace=namespace):
        if eps["metadata"].get("labels", {}).get("kubernetes.io/service-name") != service:
            continue
        for slice_port in eps.get("ports") or []:
            if slice_port.get("name", "") == chosen.get("name", ""):
                target_port = slice_port["port"]
        for endpoint in eps.get("endpoints") or []:
            if endpoint.get("conditions", {}).get("ready", True) and endpoint.get("targetRef"):
                endpoints[endpoint["targetRef"]["name"]] = endpoint["addresses"][0]
    return {"service": f"{namespace}/{service}", "vip": svc["spec"].get("clusterIP"), "port": chosen["port"],
            "target_port": target_port, "node_port": chosen.get("nodePort"), "endpoints": endpoints,
            "lb_ips": [i["ip"] for i in svc.get("status", {}).get("loadBalancer", {}).get("ingress", []) if "ip" in i]}


def _answered(frames, client_port: int) -> bool:
    """An incoming packet to the probe's port (SYN-ACK, RST or ICMP) among the captured frames."""
    for frame in list(frames):
        if frame.outgoing:
            continue
        seen = parse_ip("", frame.data, False, 0)
        if seen is not None and (seen.dport == client_port or seen.proto == "icmp"):
            return True
    return False


def _syn_exchange(cluster, source_host, source_name: str, address: str, port: int, target: dict,
                  namespace: str, timeout: float) -> dict:
    mac, ip = _link(source_host)
    hop = next_hop(source_host, address)
    hop_mac = resolve_mac(source_host, hop)
    if hop_mac is None:
        raise TestbedError(f"no ARP answer for {hop} (next hop to {address}) from {source_name}")
    client_port = random.randint(40000, 60000)
    taps = {pod: Tap(f"pod {pod} eth0", netns_of(cluster.pod(pod, namespace))) for pod in target["endpoints"]}
    client_tap = Tap(f"{source_name} eth0", netns_of(source_host))
    try:
        sent = client_tap.send(syn_frame(mac, hop_mac, ip, address, port, client_port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not _answered(client_tap.frames, client_port):
            time.sleep(0.005)
        time.sleep(0.05)    # the endpoint side, and the client kernel's RST, a moment more
    finally:
        frames = {pod: tap.stop() for pod, tap in taps.items()}
        client_frames = client_tap.stop()

    def seen(where, captured):
        out = []
        for frame in captured:
            record = parse_ip(where, frame.data, frame.outgoing, (frame.at - sent) * 1e6)
            if record is not None and frame.at >= sent - 0.001:
                out.append(record)
        return out
    at_client = [s for s in seen(source_name, client_frames) if s.sport == client_port or s.dport == client_port]
    tport = target["target_port"]
    at_endpoints = {pod: [s for s in seen(f"pod {pod}", f) if tport in (s.dport, s.sport)] for pod, f in frames.items()}
    summary = summarise_syn(source_name, ip, client_port, address, port, at_client, at_endpoints, target["endpoints"],
                            target["target_port"])
    summary["service"] = target["service"]
    summary["packets"] = [s.as_record() for s in at_client] + [s.as_record() for p in at_endpoints.values() for s in p]
    return summary


def syn(cluster, service: str, namespace: str = "default", port: int | str | None = None, client=None,
        timeout: float = 1.0) -> dict:
    """A scapy SYN from a pod (default: the cluster's client pod) to a Service's VIP, captured on the
    client's and on every endpoint's eth0."""
    target = service_target(cluster, service, namespace, port)
    if not target["vip"] or target["vip"] == "None":
        raise TestbedError(f"service {target['service']} has no ClusterIP (headless): nothing to rewrite")
    host = client or cluster.client()
    return _syn_exchange(cluster, host, f"pod {host.name}", target["vip"], target["port"], target, namespace, timeout)


def nodeport(cluster, service: str, namespace: str = "default", port: int | str | None = None,
             timeout: float = 1.0) -> list[dict]:
    """A SYN from the external host to the Service's NodePort on every node (and to its LoadBalancer
    IPs): which endpoint served, and whether the endpoint saw the external address or a node's."""
    target = service_target(cluster, service, namespace, port)
    external = cluster.external()
    records = []
    if target["node_port"]:
        for node in cluster.nodes():
            record = _syn_exchange(cluster, external, "external", node.IP(), target["node_port"], target, namespace, timeout)
            records.append({**record, "entry": f"nodeport {node.name}"})
    for lb_ip in target["lb_ips"]:
        record = _syn_exchange(cluster, external, "external", lb_ip, target["port"], target, namespace, timeout)
        records.append({**record, "entry": f"loadbalancer {lb_ip}"})
    if not records:
        raise TestbedError(f"service {target['service']} has neither a NodePort nor a LoadBalancer IP")
    return records


def arp(cluster, targets: list[str] | None = None, source: str = "external", timeout: float = 0.5) -> list[dict]:
    """ARP who-has for every ClusterIP and LoadBalancer IP (or `targets`) from the external host (or
    a pod: `source="client"`): who answers, with which MAC, and which node that MAC belongs to."""
    from ..net import addressing
    host = cluster.external() if source == "external" else cluster.client()
    if targets is None:
        targets = []
        for svc in cluster.get("svc", namespace=None):
            ip = svc["spec"].get("clusterIP")
            if ip and ip != "None":
                targets.append((ip, f"ClusterIP {svc['metadata']['namespace']}/{svc['metadata']['name']}"))
            for entry in svc.get("status", {}).get("loadBalancer", {}).get("ingress", []):
                targets.append((entry["ip"], f"LoadBalancer {svc['metadata']['namespace']}/{svc['metadata']['name']}"))
    else:
        targets = [(ip, "") for ip in targets]
    macs = {addressing.host_mac(node.IP()): node.name for node in cluster.nodes()}
    mac, own_ip = _link(host)
    records = []
    with Tap(source, netns_of(host)) as tap:
        for ip, what in targets:
            start = len(tap.frames)
            sent = tap.send(arp_request(mac, own_ip, ip))
            time.sleep(timeout)
            answers = []
            for frame in tap.frames[start:]:
                reply = parse_arp_reply(frame.data)
                if reply and reply[0] == ip:
                    answers.append({"mac": reply[1], "node": macs.get(reply[1], ""), "t_us": round((frame.at - sent) * 1e6, 1)})
            records.append({"source": source, "ip": ip, "what": what, "answered": bool(answers),
                            "answers": answers, "rtt_us": answers[0]["t_us"] if answers else None})
    return records


def to_samples(records: list[dict], cluster, probe: str, mode: str | None = None) -> list[dict]:
    """Probe records as tidy samples (the columns experiments write), labelled with what ran
    (`mode`: the experiment's mode label, e.g. iptables-legacy; default the cluster's proxy mode)."""
    from ..experiments.common import data_plane_label
    from ..results import sample
    labels = data_plane_label(cluster, mode)
    services = len(cluster.get("svc", namespace=None))
    rows = []
    for record in records:
        if probe in ("syn", "nodeport"):
            target = record.get("entry") or f"{record['vip']}:{record['port']}"
            extra = {k: record.get(k) for k in ("served_by", "endpoint_dst", "endpoint_src", "reply_src")}
            rows.append(sample("syn_answered", int(record["answered"]), "bool", target=target, **extra))
            rows.append(sample("vip_rewritten_back", int(record["reply_src_is_vip"]), "bool", target=target, **extra))
            rows.append(sample("source_preserved", int(record["source_preserved"]), "bool", target=target, **extra))
            if record["rtt_us"] is not None:
                rows.append(sample("syn_rtt_us", record["rtt_us"], "us", target=target, **extra))
        elif probe == "arp":
            extra = {"answered_by": ",".join(a["node"] or a["mac"] for a in record["answers"]), "what": record["what"]}
            rows.append(sample("arp_answered", int(record["answered"]), "bool", target=record["ip"], **extra))
            if record["rtt_us"] is not None:
                rows.append(sample("arp_rtt_us", record["rtt_us"], "us", target=record["ip"], **extra))
        elif probe == "dns":
            extra = {"qtype": record["qtype"], "rcode": record["rcode"], "answers": " ".join(record["answers"])}
            if record["rtt_us"] is not None:
                rows.append(sample("dns_rtt_us", record["rtt_us"], "us", target=record["name"], **extra))
            rows.append(sample("dns_answered", int(record["rtt_us"] is not None), "bool", target=record["name"], **extra))
        elif probe == "trace":
            rows.append(sample("trace_steps", len(record["matched"]), "rules", target=record["target"],
                               method=record["method"], matched=" | ".join(record["matched"])[:4000]))
        else:
            raise TestbedError(f"unknown probe {probe!r}")
    for row in rows:
        row.update(labels)
        row.setdefault("services", services)
    return rows
