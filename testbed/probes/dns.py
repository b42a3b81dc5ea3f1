"""DNS queries from a pod to the cluster DNS Service, with their timing (scapy builds and parses;
RFC 1035 messages over UDP, from a socket inside the pod's network namespace)."""
from __future__ import annotations

import random
import socket
import time

from scapy.layers.dns import DNS, DNSQR

from ..errors import TestbedError
from ..net.netns import socket_in_netns
from .capture import netns_of

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def query_bytes(name: str, qtype: str, query_id: int) -> bytes:
    return bytes(DNS(id=query_id, rd=1, qd=DNSQR(qname=name, qtype=qtype)))


def answers_of(reply: bytes) -> tuple[str, list[str]]:
    """(rcode name, answer strings "name TYPE data") of a DNS reply (pure)."""
    message = DNS(reply)
    answers = []
    for record in (message.an or []):
        data = record.rdata
        if isinstance(data, bytes):
            data = data.decode(errors="replace")
        elif isinstance(data, list):
            data = " ".join(d.decode(errors="replace") if isinstance(d, bytes) else str(d) for d in data)
        answers.append(f"{record.rrname.decode().rstrip('.')} {record.sprintf('%type%')} {data}".strip())
    return RCODES.get(message.rcode, str(message.rcode)), answers


def cluster_dns_ip(cluster) -> str:
    try:
        return cluster.get("svc", "kube-dns", namespace="kube-system")["spec"]["clusterIP"]
    except TestbedError:
        raise TestbedError("this cluster has no cluster DNS (the dns add-on is off)") from None


def dns(cluster, names: list[str], qtype: str = "A", count: int = 5, client=None, server: str | None = None,
        timeout: float = 2.0) -> list[dict]:
    """`count` queries per name from a pod (default: the client pod) to the cluster DNS Service (or
    `server`); one record per query: rcode, answers and the round-trip time in µs."""
    host = client or cluster.client()
    server = server or cluster_dns_ip(cluster)
    sock = socket_in_netns(netns_of(host), socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    records = []
    try:
        for name in names:
            for i in range(count):
                query_id = random.randint(0, 0xFFFF)
                started = time.perf_counter()
                sock.sendto(query_bytes(name, qtype, query_id), (server, 53))
                rtt, rcode, answers = None, "TIMEOUT", []
                while True:
                    try:
                        reply, _ = sock.recvfrom(65535)
                    except socket.timeout:
                        break
                    if DNS(reply).id == query_id:
                        rtt = round((time.perf_counter() - started) * 1e6, 1)
                        rcode, answers = answers_of(reply)
                        break
                records.append({"name": name, "qtype": qtype, "server": server, "seq": i, "rcode": rcode,
                                "answers": answers, "rtt_us": rtt})
    finally:
        sock.close()
    return records
