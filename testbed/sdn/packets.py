"""Packets the controller builds itself: the answer to a connection for a Service without endpoints.

kube-proxy rejects such connections (iptables `-j REJECT`): the client sees "connection refused"
at once instead of a timeout. OVS actions cannot build a TCP RST or an ICMP error, so the frontend
flow sends the first packet to the controller and the controller sends this answer back out of the
port the packet came in on. Pure: bytes in, bytes out (OS-Ken's packet library).
"""
from __future__ import annotations

from os_ken.lib.packet import ethernet, icmp, in_proto, ipv4, packet, tcp
from os_ken.ofproto import ether


def rejection(frame: bytes) -> bytes | None:
    """The answer to `frame`: a TCP RST for TCP (RFC 9293 3.10.7.1), an ICMP port unreachable for
    anything else over IPv4; None for what must not be answered (non-IPv4, RSTs, ICMP errors)."""
    pkt = packet.Packet(frame)
    eth, ip = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv4.ipv4)
    if eth is None or ip is None:
        return None
    answer = packet.Packet()
    answer.add_protocol(ethernet.ethernet(ethertype=ether.ETH_TYPE_IP, dst=eth.src, src=eth.dst))
    segment = pkt.get_protocol(tcp.tcp)
    if segment is not None:
        if segment.bits & tcp.TCP_RST:
            return None
        answer.add_protocol(ipv4.ipv4(src=ip.dst, dst=ip.src, proto=in_proto.IPPROTO_TCP, ttl=64))
        if segment.bits & tcp.TCP_ACK:
            reply = tcp.tcp(src_port=segment.dst_port, dst_port=segment.src_port, seq=segment.ack, bits=tcp.TCP_RST)
        else:
            length = ip.total_length - ip.header_length * 4 - segment.offset * 4
            length += 1 if segment.bits & tcp.TCP_SYN else 0
            length += 1 if segment.bits & tcp.TCP_FIN else 0
            reply = tcp.tcp(src_port=segment.dst_port, dst_port=segment.src_port, seq=0,
                            ack=(segment.seq + length) & 0xFFFFFFFF, bits=tcp.TCP_RST | tcp.TCP_ACK)
        answer.add_protocol(reply)
    else:
        if ip.proto == in_proto.IPPROTO_ICMP:
            message = pkt.get_protocol(icmp.icmp)
            if message is None or message.type not in (icmp.ICMP_ECHO_REQUEST,):
                return None
        offending = frame[14:14 + ip.header_length * 4 + 8]
        answer.add_protocol(ipv4.ipv4(src=ip.dst, dst=ip.src, proto=in_proto.IPPROTO_ICMP, ttl=64))
        answer.add_protocol(icmp.icmp(type_=icmp.ICMP_DEST_UNREACH, code=icmp.ICMP_PORT_UNREACH_CODE,
                                      data=icmp.dest_unreach(data=offending)))
    answer.serialize()
    return bytes(answer.data)
