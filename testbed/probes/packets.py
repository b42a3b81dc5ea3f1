"""What the probes send and how captured frames read (pure: scapy builds and parses bytes only).

The records are plain dicts, so they go into the same tidy tables as experiment samples
(testbed.probes.to_samples).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

BROADCAST = "ff:ff:ff:ff:ff:ff"


def syn_frame(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, dst_port: int, src_port: int | None = None,
              seq: int | None = None) -> bytes:
    """A TCP SYN (RFC 9293) with an MSS option, as a kernel's first packet of a connection."""
    rng = random.Random()
    return bytes(Ether(src=src_mac, dst=dst_mac) / IP(src=src_ip, dst=dst_ip, ttl=64)
                 / TCP(sport=src_port or rng.randint(40000, 60000), dport=dst_port, flags="S",
                       seq=seq if seq is not None else rng.randint(0, 2**32 - 1), window=64240,
                       options=[("MSS", 1460)]))


def arp_request(src_mac: str, src_ip: str, target_ip: str) -> bytes:
    """ARP who-has (RFC 826), broadcast."""
    return bytes(Ether(src=src_mac, dst=BROADCAST) / ARP(op=1, hwsrc=src_mac, psrc=src_ip, pdst=target_ip))


@dataclass(frozen=True)
class Seen:
    """One captured IPv4 packet, reduced to what the probes report."""
    where: str
    t_us: float            # since the probe was sent
    direction: str         # "out" (left the interface) or "in"
    src: str
    sport: int | None
    dst: str
    dport: int | None
    proto: str
    flags: str             # TCP flags ("S", "SA", "R", ...), ICMP type/code, or ""
    ttl: int

    def as_record(self) -> dict:
        return dict(self.__dict__)


def parse_ip(where: str, data: bytes, outgoing: bool, t_us: float) -> Seen | None:
    frame = Ether(data)
    if IP not in frame:
        return None
    ip = frame[IP]
    sport = dport = None
    flags, proto = "", {6: "tcp", 17: "udp", 1: "icmp"}.get(ip.proto, str(ip.proto))
    if TCP in ip:
        sport, dport, flags = ip[TCP].sport, ip[TCP].dport, str(ip[TCP].flags)
    elif UDP in ip:
        sport, dport = ip[UDP].sport, ip[UDP].dport
    elif ICMP in ip:
        flags = f"type {ip[ICMP].type} code {ip[ICMP].code}"
    return Seen(where, round(t_us, 1), "out" if outgoing else "in", ip.src, sport, ip.dst, dport, proto, flags, ip.ttl)


def parse_arp_reply(data: bytes) -> tuple[str, str] | None:
    """(ip, mac) of an ARP reply, else None."""
    frame = Ether(data)
    if ARP in frame and frame[ARP].op == 2:
        return frame[ARP].psrc, frame[ARP].hwsrc
    return None


def summarise_syn(client: str, client_ip: str, client_port: int, vip: str, port: int,
                  seen_client: list[Seen], seen_endpoints: dict[str, list[Seen]], endpoint_ips: dict[str, str],
                  target_port: int) -> dict:
    """What a SYN to a VIP showed: the destination the endpoint saw (the VIP rewritten to pod
    IP:targetPort), the source it saw (the client's, or a masquerade address), the reply's source
    back at the client (rewritten back to the VIP), and which endpoint served."""
    syn_ack = next((s for s in seen_client if s.direction == "in" and "S" in s.flags and "A" in s.flags
                    and s.dport == client_port), None)
    rejected = next((s for s in seen_client if s.direction == "in" and (s.flags == "R" or s.flags == "RA"
                                                                       or s.proto == "icmp")), None)
    # The endpoint's side: a SYN arriving at its own IP and targetPort. Ours keeps the client's port
    # unless a masquerade rewrote it (--random-fully); then it is the one SYN in the probe's window
    # that is not the kubelet's readiness probe from the node.
    candidates = [(pod, s) for pod, packets in seen_endpoints.items() for s in packets
                  if s.direction == "in" and s.flags == "S" and s.dst == endpoint_ips[pod] and s.dport == target_port]
    exact = [c for c in candidates if c[1].sport == client_port]
    served_by, at_endpoint = (exact or candidates or [(None, None)])[0]
    return {"client": client, "client_ip": client_ip, "client_port": client_port, "vip": vip, "port": port,
            "answered": syn_ack is not None, "rejected": rejected is not None and syn_ack is None,
            "rtt_us": syn_ack.t_us if syn_ack else None,
            "reply_src": f"{syn_ack.src}:{syn_ack.sport}" if syn_ack else None,
            "reply_src_is_vip": bool(syn_ack and syn_ack.src == vip and syn_ack.sport == port),
            "served_by": served_by,
            "endpoint_dst": f"{at_endpoint.dst}:{at_endpoint.dport}" if at_endpoint else None,
            "endpoint_src": f"{at_endpoint.src}:{at_endpoint.sport}" if at_endpoint else None,
            "source_preserved": bool(at_endpoint and at_endpoint.src == client_ip)}
