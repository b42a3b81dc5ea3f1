"""Flow and group descriptions: what the pipeline computes and what every consumer reads.

The pipeline (pipeline.py) returns these small frozen values; three consumers read them:
`to_ofctl()` (text that `ovs-ofctl -O OpenFlow13 add-flows/add-groups` accepts), openflow.py (OS-Ken
OFPFlowMod/OFPGroupMod for the controller) and the fake OpenFlow table of the unit tests. Field
names are OS-Ken's (OXM/NXM names such as `ipv4_dst`, `ct_mark`, `reg0`); `to_ofctl` translates
the few that ovs-ofctl spells differently.

Match values: ints, `(value, mask)` pairs, IPv4 addresses as "a.b.c.d" or "a.b.c.d/len", MACs as
"aa:bb:cc:dd:ee:ff". A flow is identified on a switch by (table, priority, match), as OpenFlow
does.

Cookies (64 bits) say what a flow belongs to, so a change touches only its own flows and a resync
can compare a switch's flows with the desired ones without parsing actions:

    | kind (8 bits) | owner (32 bits) | fingerprint (24 bits) |

kind: BASE, POD, HOST, ADDRESS, SERVICE, AFFINITY (learned), CONNECTION (reactive per-connection);
owner: a hash of the owner's name (a Service's `namespace/name`, a pod, a host) or an IPv4 address;
fingerprint: a hash of the flow's content, so equal cookies mean equal flows.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Iterable, Union

# --- cookies -------------------------------------------------------------------------------------
KIND_BASE = 0x01
KIND_POD = 0x02
KIND_HOST = 0x03
KIND_ADDRESS = 0x04
KIND_SERVICE = 0x10
KIND_AFFINITY = 0x11
KIND_CONNECTION = 0x12
KIND_NAMES = {KIND_BASE: "base", KIND_POD: "pod", KIND_HOST: "host", KIND_ADDRESS: "address",
              KIND_SERVICE: "service", KIND_AFFINITY: "affinity", KIND_CONNECTION: "connection"}
OWNER_MASK = 0xFFFFFFFFFF000000      # kind + owner: all flows of one owner
FINGERPRINT_MASK = 0xFFFFFF


def owner_hash(name: str) -> int:
    """32-bit owner id of a name, stable across processes (unlike hash())."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big")


def owner_cookie(kind: int, owner: int) -> int:
    return (kind << 56) | ((owner & 0xFFFFFFFF) << 24)


def service_owner(namespace: str, name: str) -> int:
    return owner_hash(f"service:{namespace}/{name}")


def cookie_kind(cookie: int) -> int:
    return cookie >> 56


def cookie_owner(cookie: int) -> int:
    return (cookie >> 24) & 0xFFFFFFFF


# --- matches -------------------------------------------------------------------------------------
MatchValue = Union[int, str, tuple]
Match = tuple  # tuple[tuple[str, MatchValue], ...], sorted by FIELD_ORDER

CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
CT_STATE_BITS = {"new": CT_NEW, "est": CT_EST, "rel": CT_REL, "rpl": CT_RPL, "inv": CT_INV, "trk": CT_TRK}
# TCP header flags, as `tcp_flags` matches them (OVS: NXM_NX_TCP_FLAGS, maskable)
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TCP_FLAG_BITS = {"fin": TCP_FIN, "syn": TCP_SYN, "rst": TCP_RST, "psh": TCP_PSH, "ack": TCP_ACK}

FIELD_ORDER = ("in_port", "eth_type", "eth_src", "eth_dst", "arp_op", "arp_spa", "arp_tpa",
               "ct_state", "ct_mark", "ip_proto", "ipv4_src", "ipv4_dst", "tcp_src", "tcp_dst", "tcp_flags",
               "udp_src", "udp_dst", "sctp_src", "sctp_dst") + tuple(f"reg{i}" for i in range(16))
IP_FIELDS = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"}
MAC_FIELDS = {"eth_src", "eth_dst", "arp_sha", "arp_tha"}
OFCTL_NAMES = {"ipv4_src": "nw_src", "ipv4_dst": "nw_dst"}
ETH_IP, ETH_ARP = 0x0800, 0x0806
PROTOCOLS = {"TCP": 6, "UDP": 17, "SCTP": 132}
L4_FIELDS = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst"), 132: ("sctp_src", "sctp_dst")}


_FIELD_RANK = {name: rank for rank, name in enumerate(FIELD_ORDER)}


def match(**fields: MatchValue) -> Match:
    """A canonical (sorted, hashable) match from field=value keywords; None values are left out."""
    try:
        return tuple(sorted(((k, v) for k, v in fields.items() if v is not None), key=lambda kv: _FIELD_RANK[kv[0]]))
    except KeyError as unknown:
        raise ValueError(f"unknown match field {unknown}") from None


def ct_state(**flags: bool) -> tuple[int, int]:
    """`ct_state(trk=True, rpl=False)` -> (value, mask), as `ct_state=+trk-rpl`."""
    value = mask = 0
    for name, on in flags.items():
        bit = CT_STATE_BITS[name]
        mask |= bit
        value |= bit if on else 0
    return value, mask


# --- actions -------------------------------------------------------------------------------------
IN_PORT = "in_port"          # Output(IN_PORT): back out of the port the packet came in on
FLOOD = "flood"
CONTROLLER = "controller"


@dataclass(frozen=True)
class Output:
    port: int | str


@dataclass(frozen=True)
class OutputReg:
    """Output to the port number held in a register (NXAST_OUTPUT_REG)."""
    field: str


@dataclass(frozen=True)
class SetField:
    field: str
    value: MatchValue


@dataclass(frozen=True)
class Move:
    """Copy a whole field into another of the same width (NXAST_REG_MOVE)."""
    src: str
    dst: str


@dataclass(frozen=True)
class Resubmit:
    """Look the packet up in `table`, run that flow's actions, then continue here."""
    table: int


@dataclass(frozen=True)
class Group:
    group_id: int


@dataclass(frozen=True)
class Nat:
    """`nat` inside ct: kind None applies a committed connection's NAT (or its reverse)."""
    kind: str | None = None       # "src", "dst" or None
    ip: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class Ct:
    zone: int
    table: int | None = None      # recirculate into this table afterwards
    commit: bool = False
    nat: Nat | None = None
    exec_: tuple = ()             # SetField/Move on ct_mark, run on commit


@dataclass(frozen=True)
class Learn:
    """Add (or refresh) a flow from the current packet (NXAST_LEARN).

    `copy` fields are matched with the current packet's value of the same field; `fixed` are
    (field, value) matches; `loads` are (value, register) actions of the learned flow."""
    table: int
    priority: int
    cookie: int
    idle_timeout: int = 0
    hard_timeout: int = 0
    fixed: tuple = ()
    copy: tuple = ()
    loads: tuple = ()


@dataclass(frozen=True)
class Multipath:
    """Hash `fields` of the packet into [0, n_links) and store the link number in `dst`."""
    fields: str                   # nw_src, nw_dst, symmetric_l3l4+udp, ...
    n_links: int
    dst: str
    algorithm: str = "modulo_n"
    basis: int = 0


@dataclass(frozen=True)
class FinTimeout:
    """Shorten the idle timeout of the flow that holds this action once a FIN or RST passes."""
    idle_timeout: int


Action = Union[Output, OutputReg, SetField, Move, Resubmit, Group, Ct, Learn, Multipath, FinTimeout]


@dataclass(frozen=True)
class Flow:
    table: int
    priority: int
    match: Match
    actions: tuple = ()           # empty and no goto: drop
    cookie: int = 0
    goto: int | None = None
    idle_timeout: int = 0
    hard_timeout: int = 0
    send_flow_removed: bool = False

    @property
    def identity(self) -> tuple:
        """What makes two flows the same entry on a switch."""
        return self.table, self.priority, self.match

    def content_fingerprint(self) -> int:
        text = repr((self.table, self.priority, self.match, self.actions, self.goto,
                     self.idle_timeout, self.hard_timeout, self.send_flow_removed))
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=3).digest(), "big")

    def fingerprinted(self) -> "Flow":
        """This flow with the content fingerprint in its cookie's low 24 bits."""
        return replace(self, cookie=(self.cookie & OWNER_MASK) | self.content_fingerprint())


@dataclass(frozen=True)
class Bucket:
    actions: tuple
    weight: int = 1


@dataclass(frozen=True)
class SelectGroup:
    group_id: int
    buckets: tuple
    owner: int = 0                # the owning cookie (kind + owner), for bookkeeping only


# --- ovs-ofctl rendering -------------------------------------------------------------------------
def _ofctl_value(name: str, value: MatchValue) -> str:
    if name == "ct_state":
        bits, mask = value if isinstance(value, tuple) else (value, 0x3F)
        return "".join(("+" if bits & bit else "-") + flag for flag, bit in CT_STATE_BITS.items() if mask & bit)
    if name == "tcp_flags":
        bits, mask = value if isinstance(value, tuple) else (value, 0xFFF)
        return "".join(("+" if bits & bit else "-") + flag for flag, bit in TCP_FLAG_BITS.items() if mask & bit)
    if isinstance(value, tuple):
        return f"{value[0]:#x}/{value[1]:#x}"
    if isinstance(value, int):
        return f"{value:#x}" if name.startswith("reg") or name in ("ct_mark", "eth_type") else str(value)
    return value


def ofctl_field(name: str) -> str:
    return OFCTL_NAMES.get(name, name)


def match_to_ofctl(m: Match) -> str:
    return ",".join(f"{ofctl_field(k)}={_ofctl_value(k, v)}" for k, v in m)


def action_to_ofctl(action: Action) -> str:
    if isinstance(action, Output):
        if action.port == CONTROLLER:
            return "controller(max_len=65535)"
        return action.port if isinstance(action.port, str) else f"output:{action.port}"
    if isinstance(action, OutputReg):
        return f"output:{action.field}"
    if isinstance(action, SetField):
        value = action.value
        if isinstance(value, int):
            value = f"{value:#x}"
        return f"set_field:{value}->{ofctl_field(action.field)}"
    if isinstance(action, Move):
        return f"move:{ofctl_field(action.src)}->{ofctl_field(action.dst)}"
    if isinstance(action, Resubmit):
        return f"resubmit(,{action.table})"
    if isinstance(action, Group):
        return f"group:{action.group_id}"
    if isinstance(action, Ct):
        parts = ["commit"] if action.commit else []
        parts.append(f"zone={action.zone}")
        if action.nat is not None:
            parts.append(_nat_to_ofctl(action.nat))
        if action.exec_:
            parts.append("exec(" + ",".join(action_to_ofctl(a) for a in action.exec_) + ")")
        if action.table is not None:
            parts.append(f"table={action.table}")
        return "ct(" + ",".join(parts) + ")"
    if isinstance(action, Learn):
        parts = [f"table={action.table}", f"idle_timeout={action.idle_timeout}",
                 f"hard_timeout={action.hard_timeout}", f"priority={action.priority}",
                 f"cookie={action.cookie:#x}"]
        parts += [f"{ofctl_field(k)}={_ofctl_value(k, v)}" for k, v in action.fixed]
        parts += [ofctl_field(k) for k in action.copy]
        parts += [f"load:{v:#x}->{ofctl_field(dst)}" for v, dst in action.loads]
        return "learn(" + ",".join(parts) + ")"
    if isinstance(action, Multipath):
        return (f"multipath({action.fields},{action.basis},{action.algorithm},{action.n_links},0,"
                f"{ofctl_field(action.dst)})")
    if isinstance(action, FinTimeout):
        return f"fin_timeout(idle_timeout={action.idle_timeout})"
    raise TypeError(f"unknown action {action!r}")


def _nat_to_ofctl(nat: Nat) -> str:
    if nat.kind is None:
        return "nat"
    target = nat.ip + (f":{nat.port}" if nat.port else "")
    return f"nat({nat.kind}={target})"


def actions_to_ofctl(actions: Iterable[Action], goto: int | None = None) -> str:
    parts = [action_to_ofctl(a) for a in actions]
    if goto is not None:
        parts.append(f"goto_table:{goto}")
    return ",".join(parts) or "drop"


def flow_to_ofctl(flow: Flow) -> str:
    head = [f"table={flow.table}", f"priority={flow.priority}", f"cookie={flow.cookie:#x}"]
    if flow.idle_timeout:
        head.append(f"idle_timeout={flow.idle_timeout}")
    if flow.hard_timeout:
        head.append(f"hard_timeout={flow.hard_timeout}")
    if flow.send_flow_removed:
        head.append("send_flow_rem")
    body = match_to_ofctl(flow.match)
    return ",".join(head + ([body] if body else [])) + " actions=" + actions_to_ofctl(flow.actions, flow.goto)


def group_to_ofctl(group: SelectGroup) -> str:
    buckets = ",".join(f"bucket=weight:{b.weight},actions={actions_to_ofctl(b.actions)}" for b in group.buckets)
    return f"group_id={group.group_id},type=select,{buckets}"


# --- helpers the pipeline and the fake table share ----------------------------------------------------
@dataclass
class FlowSet:
    """Flows and groups that one owner (a Service, a pod, the base pipeline...) puts on a bridge."""
    flows: list = field(default_factory=list)
    groups: list = field(default_factory=list)

    def add(self, *flows: Flow) -> None:
        self.flows.extend(flows)

    def extend(self, other: "FlowSet") -> None:
        self.flows.extend(other.flows)
        self.groups.extend(other.groups)
