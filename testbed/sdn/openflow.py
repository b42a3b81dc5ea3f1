"""Flow and group descriptions (flows.py) as OS-Ken OpenFlow 1.3 messages.

Pure: building a message needs only OS-Ken's protocol description, no switch. The unit tests check
that every message encodes exactly what the ovs-ofctl rendering says, by letting `ovs-ofctl` print
both (`ofp-parse` on our bytes, `parse-flows` on our text).

`encode_flow_mod` builds the wire bytes of flow-mods for the controller's bulk
programming: the match is encoded here (OXM TLVs are simple and OS-Ken's OFPMatch is the slow
part), the instructions by OS-Ken, cached by their content, since many flows share actions (e.g.
`goto_table`) and a Service's flows are identical on every bridge. The tests check the bytes
against OS-Ken's own OFPFlowMod serialization.
"""
from __future__ import annotations

import ipaddress
import struct
from functools import lru_cache
from typing import Sequence

from os_ken.lib import addrconv
from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from os_ken.ofproto import ofproto_protocol

from testbed.sdn.flows import (
    CONTROLLER, FLOOD, IN_PORT, IP_FIELDS, MAC_FIELDS, Ct, FinTimeout, Flow, Group, Learn, Move,
    Multipath, Output, OutputReg, Resubmit, SelectGroup, SetField)

PROTOCOL = ofproto_protocol.ProtocolDesc(version=ofp.OFP_VERSION)
NX_EXPERIMENTER = 0x00002320
NXAST_REG_MOVE, NXAST_RESUBMIT_TABLE, NXAST_CT, NXAST_NAT = 6, 14, 35, 36
ALL_ONES_64 = 0xFFFFFFFFFFFFFFFF
NX_CT_RECIRC_NONE = 0xFF
FIELD_BITS = {"eth_src": 48, "eth_dst": 48, "arp_sha": 48, "arp_tha": 48, "arp_spa": 32, "arp_tpa": 32,
              "ipv4_src": 32, "ipv4_dst": 32, "ct_mark": 32, "eth_type": 16,
              **{f"reg{i}": 32 for i in range(16)}}
LEARN_FIELDS = {"eth_type": "eth_type_nxm", "ipv4_src": "ipv4_src_nxm", "ipv4_dst": "ipv4_dst_nxm"}
# OVS' enum nx_hash_fields (include/openflow/nicira-ext.h); OS-Ken names only the first two.
HASH_FIELDS = {"eth_src": 0, "symmetric_l4": 1, "symmetric_l3l4": 2, "symmetric_l3l4+udp": 3,
               "nw_src": 4, "nw_dst": 5, "symmetric_l3": 6}
NX_NAT_F_SRC, NX_NAT_F_DST = 1 << 0, 1 << 1     # OVS' enum nx_nat_flags
MP_ALGORITHMS = {"modulo_n": nicira_ext.NX_MP_ALG_MODULO_N, "hash_threshold": nicira_ext.NX_MP_ALG_HASH_THRESHOLD,
                 "hrw": nicira_ext.NX_MP_ALG_HRW, "iter_hash": nicira_ext.NX_MP_ALG_ITER_HASH}
SPECIAL_PORTS = {IN_PORT: ofp.OFPP_IN_PORT, FLOOD: ofp.OFPP_FLOOD, CONTROLLER: ofp.OFPP_CONTROLLER}


def _match_kwargs(m) -> dict:
    kwargs = {}
    for name, value in m:
        if name in IP_FIELDS and isinstance(value, str) and "/" in value:
            network = ipaddress.ip_network(value, strict=False)
            value = (str(network.network_address), str(network.netmask))
        kwargs[name] = value
    return kwargs


def ofp_match(m) -> parser.OFPMatch:
    return parser.OFPMatch(**_match_kwargs(m))


def ofp_action(action):
    if isinstance(action, Output):
        port = SPECIAL_PORTS.get(action.port, action.port)
        return parser.OFPActionOutput(port, ofp.OFPCML_NO_BUFFER if port == ofp.OFPP_CONTROLLER else 0)
    if isinstance(action, OutputReg):
        return parser.NXActionOutputReg(ofs_nbits=nicira_ext.ofs_nbits(0, 31), src=action.field, max_len=0xFFFF)
    if isinstance(action, SetField):
        return parser.OFPActionSetField(**{action.field: action.value})
    if isinstance(action, Move):
        return parser.NXActionRegMove(src_field=action.src, dst_field=action.dst, n_bits=FIELD_BITS[action.src])
    if isinstance(action, Resubmit):
        return parser.NXActionResubmitTable(in_port=0xFFF8, table_id=action.table)   # OFPP_IN_PORT, 16 bits
    if isinstance(action, Group):
        return parser.OFPActionGroup(action.group_id)
    if isinstance(action, Ct):
        nested = []
        if action.nat is not None:
            nested.append(_nat(action.nat))
        nested += [ofp_action(a) for a in action.exec_]
        return parser.NXActionCT(flags=nicira_ext.NX_CT_F_COMMIT if action.commit else 0, zone_src="",
                                 zone_ofs_nbits=action.zone,
                                 recirc_table=NX_CT_RECIRC_NONE if action.table is None else action.table,
                                 alg=0, actions=nested)
    if isinstance(action, Learn):
        specs = [parser.NXFlowSpecMatch(src=value, dst=(LEARN_FIELDS.get(name, name), 0), n_bits=FIELD_BITS[name])
                 for name, value in action.fixed]
        specs += [parser.NXFlowSpecMatch(src=(LEARN_FIELDS.get(name, name), 0), dst=(LEARN_FIELDS.get(name, name), 0),
                                         n_bits=FIELD_BITS[name]) for name in action.copy]
        specs += [parser.NXFlowSpecLoad(src=value, dst=(dst, 0), n_bits=FIELD_BITS[dst]) for value, dst in action.loads]
        return parser.NXActionLearn(table_id=action.table, specs=specs, idle_timeout=action.idle_timeout,
                                    hard_timeout=action.hard_timeout, priority=action.priority,
                                    cookie=action.cookie, flags=0, fin_idle_timeout=0, fin_hard_timeout=0)
    if isinstance(action, Multipath):
        return parser.NXActionMultipath(fields=HASH_FIELDS[action.fields], basis=action.basis,
                                        algorithm=MP_ALGORITHMS[action.algorithm], max_link=action.n_links - 1,
                                        arg=0, ofs_nbits=nicira_ext.ofs_nbits(0, 31), dst=action.dst)
    if isinstance(action, FinTimeout):
        return parser.NXActionFinTimeout(fin_idle_timeout=action.idle_timeout, fin_hard_timeout=0)
    raise TypeError(f"unknown action {action!r}")


class _PaddedNAT(parser.NXActionNAT):
    """OS-Ken 4.2.2's NXActionNAT announces a length rounded up to 8 bytes but writes the
    unpadded body, so whatever follows it (ct's exec actions) is misread by the switch."""

    def serialize_body(self):
        data = super().serialize_body()
        header = ofp.OFP_ACTION_EXPERIMENTER_HEADER_SIZE + 2     # + NX subtype
        return bytes(data) + b"\0" * ((-(header + len(data))) % 8)


def _nat(nat):
    if nat.kind is None:
        return _PaddedNAT(flags=0)
    flags = NX_NAT_F_SRC if nat.kind == "src" else NX_NAT_F_DST
    kwargs = dict(range_ipv4_min=nat.ip, range_ipv4_max=nat.ip)
    if nat.port:
        kwargs.update(range_proto_min=nat.port, range_proto_max=nat.port)
    return _PaddedNAT(flags=flags, **kwargs)


def instructions(actions: Sequence, goto: int | None) -> list:
    result = []
    if actions:
        result.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [ofp_action(a) for a in actions]))
    if goto is not None:
        result.append(parser.OFPInstructionGotoTable(goto))
    return result


def flow_mod(flow: Flow, datapath=PROTOCOL, command: int = ofp.OFPFC_ADD) -> parser.OFPFlowMod:
    return parser.OFPFlowMod(
        datapath, cookie=flow.cookie, cookie_mask=0, table_id=flow.table, command=command,
        idle_timeout=flow.idle_timeout, hard_timeout=flow.hard_timeout, priority=flow.priority,
        buffer_id=ofp.OFP_NO_BUFFER, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
        flags=ofp.OFPFF_SEND_FLOW_REM if flow.send_flow_removed else 0,
        match=ofp_match(flow.match), instructions=instructions(flow.actions, flow.goto))


def delete_flow_strict(datapath, table: int, priority: int, match: parser.OFPMatch, cookie: int) -> parser.OFPFlowMod:
    """Delete exactly this flow, and only while it still carries `cookie` (a flow replaced in
    the meantime by one with a new cookie survives)."""
    return parser.OFPFlowMod(datapath, cookie=cookie, cookie_mask=ALL_ONES_64, table_id=table,
                             command=ofp.OFPFC_DELETE_STRICT, priority=priority, buffer_id=ofp.OFP_NO_BUFFER,
                             out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, match=match)


def delete_cookie(datapath, cookie: int, mask: int) -> parser.OFPFlowMod:
    return parser.OFPFlowMod(datapath, cookie=cookie, cookie_mask=mask, table_id=ofp.OFPTT_ALL,
                             command=ofp.OFPFC_DELETE, buffer_id=ofp.OFP_NO_BUFFER,
                             out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, match=parser.OFPMatch())


def group_mod(group: SelectGroup, datapath=PROTOCOL, command: int = ofp.OFPGC_ADD) -> parser.OFPGroupMod:
    buckets = [parser.OFPBucket(weight=b.weight, watch_port=ofp.OFPP_ANY, watch_group=ofp.OFPG_ANY,
                                actions=[ofp_action(a) for a in b.actions]) for b in group.buckets]
    return parser.OFPGroupMod(datapath, command=command, type_=ofp.OFPGT_SELECT, group_id=group.group_id,
                              buckets=buckets)


def delete_group(datapath, group_id: int) -> parser.OFPGroupMod:
    return parser.OFPGroupMod(datapath, command=ofp.OFPGC_DELETE, type_=ofp.OFPGT_SELECT, group_id=group_id)


# --- fast bulk encoding ------------------------------------------------------------------------------
_OXM_BASIC = {  # name -> (field number, value bytes)
    "in_port": (0, 4), "eth_dst": (3, 6), "eth_src": (4, 6), "eth_type": (5, 2), "ip_proto": (10, 1),
    "ipv4_src": (11, 4), "ipv4_dst": (12, 4), "tcp_src": (13, 2), "tcp_dst": (14, 2), "udp_src": (15, 2),
    "udp_dst": (16, 2), "sctp_src": (17, 2), "sctp_dst": (18, 2), "arp_op": (21, 2), "arp_spa": (22, 4),
    "arp_tpa": (23, 4), "arp_sha": (24, 6), "arp_tha": (25, 6)}
_NXM1 = {"ct_state": (105, 4), "ct_mark": (107, 4), **{f"reg{i}": (i, 4) for i in range(16)}}
# tcp_flags as the ONF experimenter field of OpenFlow 1.3 (ONFOXM_ET_TCP_FLAGS, as in 1.5): its
# class 0xFFFF orders it after ip_proto, its prerequisite (the NXM form would come first and OVS
# refuses it with OFPBMC_BAD_PREREQ).
_ONF_EXPERIMENTER = {"tcp_flags": (42, 2)}
ONF_EXPERIMENTER_ID = 0x4F4E4600


def _value_bytes(name: str, value, size: int) -> bytes:
    if name in IP_FIELDS:
        return addrconv.ipv4.text_to_bin(value)
    if name in MAC_FIELDS:
        return addrconv.mac.text_to_bin(value)
    return value.to_bytes(size, "big")


def _oxm_class_field(name: str) -> tuple[int, int, int]:
    if name in _OXM_BASIC:
        return (ofp.OFPXMC_OPENFLOW_BASIC, *_OXM_BASIC[name])
    if name in _ONF_EXPERIMENTER:
        return (ofp.OFPXMC_EXPERIMENTER, *_ONF_EXPERIMENTER[name])
    return (0x0001, *_NXM1[name])


def _oxm_order(name: str) -> int:
    """OS-Ken orders match fields by (class << 7 | field): NXM registers first, then OXM basic."""
    oxm_class, field, _ = _oxm_class_field(name)
    return (oxm_class << 7) | field


@lru_cache(maxsize=200_000)
def _oxm(name: str, value) -> bytes:
    oxm_class, field, size = _oxm_class_field(name)
    mask = None
    if isinstance(value, tuple):
        value, mask = value
    elif name in IP_FIELDS and "/" in value:
        network = ipaddress.ip_network(value, strict=False)
        value, mask = str(network.network_address), str(network.netmask)
    body = _value_bytes(name, value, size)
    if mask is not None:
        body += _value_bytes(name, mask, size)
    if oxm_class == ofp.OFPXMC_EXPERIMENTER:
        body = struct.pack("!I", ONF_EXPERIMENTER_ID) + body
    header = (oxm_class << 16) | (field << 9) | ((mask is not None) << 8) | len(body)
    return struct.pack("!I", header) + body


def _match_bytes(m) -> bytes:
    fields = b"".join(_oxm(name, value) for name, value in sorted(m, key=lambda item: _oxm_order(item[0])))
    length = 4 + len(fields)
    return struct.pack("!HH", ofp.OFPMT_OXM, length) + fields + b"\0" * ((8 - length % 8) % 8)


def _pad8(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 8)


def _nx_action(subtype: int, body: bytes) -> bytes:
    raw = _pad8(struct.pack("!HHIH", ofp.OFPAT_EXPERIMENTER, 0, NX_EXPERIMENTER, subtype) + body)
    return raw[:2] + struct.pack("!H", len(raw)) + raw[4:]


def _field_header(name: str) -> int:
    oxm_class, field, size = _oxm_class_field(name)
    return (oxm_class << 16) | (field << 9) | size


@lru_cache(maxsize=400_000)
def _action_bytes(action) -> bytes:
    """One action's wire form: the frequent ones packed here, the rest by OS-Ken (the tests
    compare both with OS-Ken byte for byte)."""
    if isinstance(action, Output) and not isinstance(action.port, str) or \
            isinstance(action, Output) and action.port in SPECIAL_PORTS:
        port = SPECIAL_PORTS.get(action.port, action.port)
        max_len = ofp.OFPCML_NO_BUFFER if port == ofp.OFPP_CONTROLLER else 0
        return struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, port, max_len)
    if isinstance(action, Group):
        return struct.pack("!HHI", ofp.OFPAT_GROUP, 8, action.group_id)
    if isinstance(action, SetField) and action.field in _OXM_BASIC or \
            isinstance(action, SetField) and action.field in _NXM1:
        raw = _pad8(struct.pack("!HH", ofp.OFPAT_SET_FIELD, 0) + _oxm(action.field, action.value))
        return raw[:2] + struct.pack("!H", len(raw)) + raw[4:]
    if isinstance(action, Resubmit):
        return _nx_action(NXAST_RESUBMIT_TABLE, struct.pack("!HB3x", 0xFFF8, action.table))
    if isinstance(action, Move) and action.src in FIELD_BITS:
        return _nx_action(NXAST_REG_MOVE, struct.pack("!HHHII", FIELD_BITS[action.src], 0, 0,
                                                      _field_header(action.src), _field_header(action.dst)))
    if isinstance(action, Ct):
        nested = b""
        if action.nat is not None:
            nested += _nat_bytes(action.nat)
        nested += b"".join(_action_bytes(a) for a in action.exec_)
        body = struct.pack("!HIHB3xH", nicira_ext.NX_CT_F_COMMIT if action.commit else 0, 0, action.zone,
                           NX_CT_RECIRC_NONE if action.table is None else action.table, 0)
        return _nx_action(NXAST_CT, body + nested)
    buf, message = bytearray(), ofp_action(action)
    message.serialize(buf, 0)
    return bytes(buf).ljust(message.len, b"\0")   # some NX actions leave their padding to the next one


def _nat_bytes(nat) -> bytes:
    if nat.kind is None:
        return _nx_action(NXAST_NAT, struct.pack("!2xHH", 0, 0))
    present = nicira_ext.NX_NAT_RANGE_IPV4_MIN | nicira_ext.NX_NAT_RANGE_IPV4_MAX
    ranges = addrconv.ipv4.text_to_bin(nat.ip) * 2
    if nat.port:
        present |= nicira_ext.NX_NAT_RANGE_PROTO_MIN | nicira_ext.NX_NAT_RANGE_PROTO_MAX
        ranges += struct.pack("!HH", nat.port, nat.port)
    flags = NX_NAT_F_SRC if nat.kind == "src" else NX_NAT_F_DST
    return _nx_action(NXAST_NAT, struct.pack("!2xHH", flags, present) + ranges)


@lru_cache(maxsize=200_000)
def _instruction_bytes(actions: tuple, goto: int | None) -> bytes:
    result = b""
    if actions:
        body = b"".join(_action_bytes(a) for a in actions)
        result += struct.pack("!HH4x", ofp.OFPIT_APPLY_ACTIONS, 8 + len(body)) + body
    if goto is not None:
        result += struct.pack("!HHB3x", ofp.OFPIT_GOTO_TABLE, 8, goto)
    return result


_FLOW_MOD_HEAD = struct.Struct("!BBHIQQBBHHHIIIH2x")


def encode_flow_mod(flow: Flow, xid: int, command: int = ofp.OFPFC_ADD) -> bytes:
    """The bytes OS-Ken's flow_mod(flow).serialize() gives, much faster."""
    body = _match_bytes(flow.match) + _instruction_bytes(flow.actions, flow.goto)
    length = _FLOW_MOD_HEAD.size + len(body)
    head = _FLOW_MOD_HEAD.pack(ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, length, xid, flow.cookie, 0, flow.table, command,
                               flow.idle_timeout, flow.hard_timeout, flow.priority, ofp.OFP_NO_BUFFER,
                               ofp.OFPP_ANY, ofp.OFPG_ANY,
                               ofp.OFPFF_SEND_FLOW_REM if flow.send_flow_removed else 0)
    return head + body


def encode_delete_strict(flow: Flow, xid: int) -> bytes:
    """The bytes of delete_flow_strict() for a flow described here (only while it has its cookie)."""
    body = _match_bytes(flow.match)
    length = _FLOW_MOD_HEAD.size + len(body)
    head = _FLOW_MOD_HEAD.pack(ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, length, xid, flow.cookie, ALL_ONES_64,
                               flow.table, ofp.OFPFC_DELETE_STRICT, 0, 0, flow.priority, ofp.OFP_NO_BUFFER,
                               ofp.OFPP_ANY, ofp.OFPG_ANY, 0)
    return head + body
