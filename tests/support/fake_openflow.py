"""A fake OpenFlow 1.3 switch (with Nicira extensions) for unit tests, in the spirit of faucet's
fakeoftable: it applies the flow and group descriptions of testbed/sdn/flows.py and answers
"where does this packet go and how is it rewritten", so the pipeline is tested without OVS.

Modelled: priorities and masks, goto_table, resubmit (a miss returns), select groups (a bucket
works on a clone, as in OVS; the bucket is chosen by a hash of the 5-tuple, weighted), conntrack
with zones, commit, NAT (dst or src), marks and the ct_state bits new/est/rpl/trk, `ct(table=)`
forking the packet as OVS does, learn (with idle timeouts on a fake clock), multipath,
fin_timeout, output to ports / IN_PORT / FLOOD / CONTROLLER / a register.
Not modelled: invalid (+inv) and related (+rel) packets, TTLs, checksums, meters.

Errors instead of surprises: two flows of different owners with the same (table, priority,
match), two flows at the same priority that both match a packet, unknown fields or actions, and
loops all raise FakeOpenFlowError.

A FakeFabric joins several FakeSwitches through their uplinks (a plain L2 switch, as tb-fabric)
and shares one conntrack table between them, as OVS' userspace datapath does.
"""
from __future__ import annotations

import copy
import hashlib
import ipaddress
from dataclasses import dataclass, field

from testbed.sdn.flows import (
    CONTROLLER, CT_EST, CT_NEW, CT_RPL, CT_TRK, FLOOD, IN_PORT, IP_FIELDS, OWNER_MASK, Ct, FinTimeout,
    Flow, Group, Learn, Move, Multipath, Output, OutputReg, Resubmit, SelectGroup, SetField, match)

MAX_DEPTH = 64
L4 = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst")}
HEADER_FIELDS = ("in_port", "eth_src", "eth_dst", "eth_type", "arp_op", "arp_spa", "arp_tpa", "arp_sha",
                 "arp_tha", "ip_proto", "ipv4_src", "ipv4_dst", "tcp_src", "tcp_dst", "udp_src", "udp_dst",
                 "tcp_flags", "payload")


class FakeOpenFlowError(AssertionError):
    pass


# --- packets ---------------------------------------------------------------------------------------
def tcp(in_port, eth_src, eth_dst, src, sport, dst, dport, flags="S", payload="") -> dict:
    return dict(in_port=in_port, eth_src=eth_src, eth_dst=eth_dst, eth_type=0x0800, ip_proto=6,
                ipv4_src=src, ipv4_dst=dst, tcp_src=sport, tcp_dst=dport, tcp_flags=flags, payload=payload)


def udp(in_port, eth_src, eth_dst, src, sport, dst, dport, payload="") -> dict:
    return dict(in_port=in_port, eth_src=eth_src, eth_dst=eth_dst, eth_type=0x0800, ip_proto=17,
                ipv4_src=src, ipv4_dst=dst, udp_src=sport, udp_dst=dport, payload=payload)


def arp_request(in_port, eth_src, sender_ip, target_ip) -> dict:
    return dict(in_port=in_port, eth_src=eth_src, eth_dst="ff:ff:ff:ff:ff:ff", eth_type=0x0806, arp_op=1,
                arp_spa=sender_ip, arp_tpa=target_ip, arp_sha=eth_src, arp_tha="00:00:00:00:00:00")


def reply_to(packet: dict, in_port: int, eth_src: str, eth_dst: str, flags: str = "SA", payload: str = "") -> dict:
    """The answer of the host that received `packet`: addresses and ports swapped."""
    proto = packet["ip_proto"]
    sport, dport = L4[proto]
    answer = dict(packet, in_port=in_port, eth_src=eth_src, eth_dst=eth_dst,
                  ipv4_src=packet["ipv4_dst"], ipv4_dst=packet["ipv4_src"], payload=payload)
    answer[sport], answer[dport] = packet[dport], packet[sport]
    if proto == 6:
        answer["tcp_flags"] = flags
    return answer


def five_tuple(packet: dict) -> tuple:
    proto = packet.get("ip_proto")
    sport, dport = L4.get(proto, (None, None))
    return (packet.get("ipv4_src"), packet.get(sport, 0), packet.get("ipv4_dst"), packet.get(dport, 0), proto)


def _stable_hash(*parts) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


# --- conntrack -------------------------------------------------------------------------------------
@dataclass
class Connection:
    zone: int
    original: tuple          # 5-tuple as first seen
    reply: tuple             # 5-tuple of replies (after NAT)
    mark: int = 0
    seen_reply: bool = False
    nat: str | None = None   # "src" / "dst"


class FakeConntrack:
    def __init__(self) -> None:
        self.connections: list[Connection] = []

    def find(self, zone: int, key: tuple) -> tuple[Connection | None, bool]:
        for connection in self.connections:
            if connection.zone != zone:
                continue
            if connection.original == key:
                return connection, False
            if connection.reply == key:
                return connection, True
        return None, False

    def in_zone(self, zone: int) -> list[Connection]:
        return [c for c in self.connections if c.zone == zone]

    def flush(self) -> None:
        self.connections.clear()


def _set_tuple(packet: dict, key: tuple) -> None:
    src, sport, dst, dport, proto = key
    packet["ipv4_src"], packet["ipv4_dst"] = src, dst
    if proto in L4:
        packet[L4[proto][0]], packet[L4[proto][1]] = sport, dport


def _inverse(key: tuple) -> tuple:
    src, sport, dst, dport, proto = key
    return dst, dport, src, sport, proto


# --- the switch --------------------------------------------------------------------------------------
@dataclass
class PacketIn:
    packet: dict             # header fields plus regs/ct fields at the time of the packet-in
    cookie: int
    table: int


@dataclass
class FlowRemoved:
    flow: Flow
    reason: str


@dataclass
class Result:
    outputs: list = field(default_factory=list)       # (port, packet)
    packet_ins: list = field(default_factory=list)
    trace: list = field(default_factory=list)

    def ports(self) -> list[int]:
        return [port for port, _ in self.outputs]

    def only(self) -> tuple[int, dict]:
        if len(self.outputs) != 1:
            raise FakeOpenFlowError(f"expected one output, got {self.outputs}\n" + "\n".join(self.trace))
        return self.outputs[0]


@dataclass
class _Entry:
    flow: Flow
    last_used: float
    fin_idle: int | None = None


class FakeSwitch:
    def __init__(self, name: str, ports, conntrack: FakeConntrack | None = None):
        self.name = name
        self.ports = set(ports)
        self.conntrack = conntrack or FakeConntrack()
        self.tables: dict[int, dict[tuple, _Entry]] = {}
        self.groups: dict[int, SelectGroup] = {}
        self.clock = 0.0
        self.removed: list[FlowRemoved] = []

    # --- programming --------------------------------------------------------------------------
    def add_flow(self, flow: Flow) -> None:
        table = self.tables.setdefault(flow.table, {})
        existing = table.get(flow.identity)
        if existing and (existing.flow.cookie & OWNER_MASK) != (flow.cookie & OWNER_MASK):
            raise FakeOpenFlowError(f"same match and priority from two owners:\n  {existing.flow}\n  {flow}")
        table[flow.identity] = _Entry(flow, self.clock)

    def install(self, flowset) -> "FakeSwitch":
        for group in flowset.groups:
            self.add_group(group)
        seen = set()
        for flow in flowset.flows:
            if flow.identity in seen:
                raise FakeOpenFlowError(f"duplicate flow in one batch: {flow}")
            seen.add(flow.identity)
            self.add_flow(flow)
        return self

    def add_group(self, group: SelectGroup) -> None:
        self.groups[group.group_id] = group

    def delete_group(self, group_id: int) -> None:
        self.groups.pop(group_id, None)
        for table in self.tables.values():   # OVS removes flows that point at a deleted group
            for identity in [i for i, e in table.items() if Group(group_id) in e.flow.actions]:
                del table[identity]

    def delete_flow(self, flow: Flow) -> None:
        self.tables.get(flow.table, {}).pop(flow.identity, None)

    def delete_cookie(self, cookie: int, mask: int) -> int:
        count = 0
        for table in self.tables.values():
            for identity in [i for i, e in table.items() if e.flow.cookie & mask == cookie & mask]:
                del table[identity]
                count += 1
        return count

    def flows(self, table: int | None = None) -> list[Flow]:
        return [e.flow for t, entries in sorted(self.tables.items()) if table in (None, t) for e in entries.values()]

    # --- time ------------------------------------------------------------------------------------
    def advance(self, seconds: float) -> list[FlowRemoved]:
        """Move the fake clock; expire idle flows (flow-removed records for those that ask)."""
        self.clock += seconds
        removed = []
        for table in self.tables.values():
            for identity, entry in list(table.items()):
                idle = entry.fin_idle if entry.fin_idle is not None else entry.flow.idle_timeout
                if idle and self.clock - entry.last_used >= idle:
                    del table[identity]
                    if entry.flow.send_flow_removed:
                        removed.append(FlowRemoved(entry.flow, "idle_timeout"))
        self.removed += removed
        return removed

    # --- packets ---------------------------------------------------------------------------------
    def process(self, packet: dict, table: int = 0, actions: tuple | None = None) -> Result:
        """Run a packet through the pipeline from `table`, or run packet-out `actions` on it."""
        result = Result()
        state = dict(packet)
        for reg in range(16):
            state.setdefault(f"reg{reg}", 0)
        if actions is not None:
            self._execute(actions, None, state, result, depth=0)
        else:
            self._lookup_and_run(table, state, result, depth=0, resubmit=False)
        return result

    def _lookup(self, table: int, packet: dict, result: Result) -> _Entry | None:
        candidates = [e for e in self.tables.get(table, {}).values() if matches(e.flow.match, packet)]
        if not candidates:
            return None
        best = max(e.flow.priority for e in candidates)
        top = [e for e in candidates if e.flow.priority == best]
        if len(top) > 1:
            raise FakeOpenFlowError(f"{self.name} table {table}: {len(top)} flows at priority {best} match "
                                    f"{packet}:\n  " + "\n  ".join(str(e.flow) for e in top))
        return top[0]

    def _lookup_and_run(self, table: int, packet: dict, result: Result, depth: int, resubmit: bool) -> None:
        if depth > MAX_DEPTH:
            raise FakeOpenFlowError("pipeline loop:\n" + "\n".join(result.trace))
        entry = self._lookup(table, packet, result)
        if entry is None:
            result.trace.append(f"{'  ' * depth}table {table}: miss")
            return
        entry.last_used = self.clock
        flow = entry.flow
        result.trace.append(f"{'  ' * depth}table {table} prio {flow.priority} {dict(flow.match)}")
        self._execute(flow.actions, entry, packet, result, depth)
        if flow.goto is not None:
            if flow.goto <= table:
                raise FakeOpenFlowError(f"goto_table must go forward: {flow}")
            self._lookup_and_run(flow.goto, packet, result, depth + 1, resubmit)

    def _execute(self, actions, entry: _Entry | None, packet: dict, result: Result, depth: int) -> None:
        for action in actions:
            if isinstance(action, Output):
                self._output(action.port, packet, result, entry)
            elif isinstance(action, OutputReg):
                self._output(packet[action.field], packet, result, entry)
            elif isinstance(action, SetField):
                if action.field == "ct_mark":
                    raise FakeOpenFlowError("ct_mark can only be set inside ct(exec(...))")
                packet[action.field] = action.value
            elif isinstance(action, Move):
                packet[action.dst] = packet.get(action.src, 0)
            elif isinstance(action, Resubmit):
                self._lookup_and_run(action.table, packet, result, depth + 1, resubmit=True)
            elif isinstance(action, Group):
                self._group(action.group_id, packet, result, depth)
            elif isinstance(action, Ct):
                self._ct(action, packet, result, depth)
            elif isinstance(action, Learn):
                self._learn(action, packet)
            elif isinstance(action, Multipath):
                packet[action.dst] = self._multipath(action, packet)
            elif isinstance(action, FinTimeout):
                if entry is not None and any(f in packet.get("tcp_flags", "") for f in "FR"):
                    entry.fin_idle = action.idle_timeout
            else:
                raise FakeOpenFlowError(f"unknown action {action!r}")

    def _output(self, port, packet: dict, result: Result, entry: _Entry | None) -> None:
        headers = {k: v for k, v in packet.items() if k in HEADER_FIELDS}
        if port == CONTROLLER:
            result.packet_ins.append(PacketIn(dict(packet), entry.flow.cookie if entry else 0,
                                              entry.flow.table if entry else -1))
            result.trace.append("  -> controller")
        elif port == FLOOD:
            for p in sorted(self.ports - {packet["in_port"]}):
                result.outputs.append((p, dict(headers)))
        elif port == IN_PORT:
            result.outputs.append((packet["in_port"], dict(headers)))
        elif port == packet["in_port"]:
            result.trace.append(f"  output to in_port {port} dropped (use IN_PORT)")
        elif port not in self.ports:
            raise FakeOpenFlowError(f"output to unknown port {port}")
        else:
            result.outputs.append((port, dict(headers)))
            result.trace.append(f"  -> port {port}")

    def _group(self, group_id: int, packet: dict, result: Result, depth: int) -> None:
        group = self.groups.get(group_id)
        if group is None:
            raise FakeOpenFlowError(f"group {group_id} does not exist")
        total = sum(b.weight for b in group.buckets)
        point = _stable_hash("group", five_tuple(packet)) % total
        for bucket in group.buckets:
            if point < bucket.weight:
                break
            point -= bucket.weight
        clone = dict(packet)          # OVS: a bucket's changes do not outlive the group action
        self._execute(bucket.actions, None, clone, result, depth + 1)

    def _multipath(self, action: Multipath, packet: dict) -> int:
        if action.fields == "nw_src":
            basis = (packet["ipv4_src"],)
        elif action.fields == "nw_dst":
            basis = (packet["ipv4_dst"],)
        elif action.fields == "symmetric_l3l4+udp":
            src, sport, dst, dport, proto = five_tuple(packet)
            basis = (tuple(sorted([(src, sport), (dst, dport)])), proto)
        else:
            raise FakeOpenFlowError(f"multipath fields {action.fields} not modelled")
        if action.algorithm != "modulo_n":
            raise FakeOpenFlowError(f"multipath algorithm {action.algorithm} not modelled")
        return _stable_hash("multipath", action.basis, basis) % action.n_links

    def _learn(self, action: Learn, packet: dict) -> None:
        fields = dict(action.fixed)
        for name in action.copy:
            fields[name] = packet[name]
        learned = Flow(action.table, action.priority, match(**fields),
                       tuple(SetField(dst, value) for value, dst in action.loads), action.cookie,
                       idle_timeout=action.idle_timeout, hard_timeout=action.hard_timeout)
        self.tables.setdefault(action.table, {})[learned.identity] = _Entry(learned, self.clock)

    def _ct(self, action: Ct, packet: dict, result: Result, depth: int) -> None:
        if packet.get("eth_type") != 0x0800:
            raise FakeOpenFlowError("ct on a non-IP packet")
        tracked = dict(packet)
        key = five_tuple(tracked)
        connection, is_reply = self.conntrack.find(action.zone, key)
        if action.commit and connection is None:
            connection = Connection(action.zone, key, key)
            if action.nat is not None and action.nat.kind is not None:
                src, sport, dst, dport, proto = key
                if action.nat.kind == "dst":
                    translated = (src, sport, action.nat.ip, action.nat.port or dport, proto)
                else:
                    translated = (action.nat.ip, action.nat.port or sport, dst, dport, proto)
                connection.reply, connection.nat = _inverse(translated), action.nat.kind
            self.conntrack.connections.append(connection)
        if connection is not None and action.commit:
            for exec_action in action.exec_:
                if isinstance(exec_action, SetField) and exec_action.field == "ct_mark":
                    connection.mark = exec_action.value
                elif isinstance(exec_action, Move) and exec_action.dst == "ct_mark":
                    connection.mark = packet.get(exec_action.src, 0)
                else:
                    raise FakeOpenFlowError(f"ct exec supports ct_mark only: {exec_action}")
        if connection is not None and is_reply:
            connection.seen_reply = True
        if connection is not None and action.nat is not None and connection.nat:
            _set_tuple(tracked, _inverse(connection.original) if is_reply else _inverse(connection.reply))
        state = CT_TRK
        if connection is None:
            state |= CT_NEW
        else:
            state |= CT_RPL if is_reply else 0
            state |= CT_EST if (connection.seen_reply or is_reply) else CT_NEW
        tracked.update(ct_state=state, ct_mark=connection.mark if connection else 0, ct_zone=action.zone)
        if action.table is None:
            packet.clear()
            packet.update(tracked)
            return
        result.trace.append(f"{'  ' * depth}  ct(zone={action.zone}) state={state:#x} mark={tracked['ct_mark']:#x}"
                            f" -> recirculate to table {action.table}")
        self._lookup_and_run(action.table, tracked, result, depth + 1, resubmit=False)


# --- matching ----------------------------------------------------------------------------------------
TCP_FLAG_LETTERS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}   # packets carry tcp_flags="SA"

def _ip_matches(value, wanted) -> bool:
    if value is None:
        return False
    if isinstance(wanted, str) and "/" in wanted:
        return ipaddress.ip_address(value) in ipaddress.ip_network(wanted, strict=False)
    return value == wanted


def matches(flow_match, packet: dict) -> bool:
    for name, wanted in flow_match:
        value = packet.get(name)
        if name in IP_FIELDS:
            if not _ip_matches(value, wanted):
                return False
        elif name == "tcp_flags":
            bits = sum(bit for letter, bit in TCP_FLAG_LETTERS.items() if letter in str(value or ""))
            if value is None or bits & wanted[1] != wanted[0]:
                return False
        elif name == "ct_state":
            bits, mask = wanted
            if "ct_state" not in packet:
                if bits & CT_TRK:     # an untracked packet matches only -trk
                    return False
                continue
            if value & mask != bits:
                return False
        elif isinstance(wanted, tuple):
            if value is None or value & wanted[1] != wanted[0]:
                return False
        elif isinstance(wanted, str):
            if value is None or str(value).lower() != wanted.lower():
                return False
        elif value != wanted:
            return False
    return True


# --- several switches on one fabric ---------------------------------------------------------------------
@dataclass
class Delivery:
    """Where a packet ended: a host on the fabric, a port of a switch, or the controller."""
    switch: str | None
    port: int | None
    packet: dict


class FakeFabric:
    """Node bridges joined by their uplinks through an L2 switch that also holds plain hosts
    (the external host). One conntrack table for all, zones per bridge."""

    def __init__(self) -> None:
        self.conntrack = FakeConntrack()
        self.switches: dict[str, FakeSwitch] = {}
        self.uplinks: dict[str, int] = {}
        self.macs: dict[str, str] = {}         # MAC -> switch name (whose uplink leads to it) or host

    def add_switch(self, name: str, ports, uplink: int, macs_behind_uplink: list[str]) -> FakeSwitch:
        switch = FakeSwitch(name, ports, self.conntrack)
        self.switches[name], self.uplinks[name] = switch, uplink
        for mac in macs_behind_uplink:
            self.macs[mac.lower()] = name
        return switch

    def add_host(self, mac: str, name: str) -> None:
        self.macs[mac.lower()] = f"host:{name}"

    def send(self, switch: str, packet: dict, actions: tuple | None = None,
             max_hops: int = 8) -> tuple[list[Delivery], list[tuple[str, PacketIn]]]:
        """Inject `packet` into `switch` (through its pipeline, or as a packet-out with `actions`);
        follow it across the fabric; return where copies ended and the packet-ins on the way."""
        deliveries, packet_ins = [], []
        pending = [(switch, packet, actions)]
        for _ in range(max_hops):
            if not pending:
                break
            next_round = []
            for name, pkt, first_actions in pending:
                result = self.switches[name].process(pkt, actions=first_actions)
                packet_ins += [(name, p) for p in result.packet_ins]
                for port, out in result.outputs:
                    if port != self.uplinks[name]:
                        deliveries.append(Delivery(name, port, out))
                        continue
                    next_round += self._across_fabric(name, out, deliveries)
            pending = next_round
        else:
            raise FakeOpenFlowError("packet still travelling after max hops")
        return deliveries, packet_ins

    def _across_fabric(self, source: str, packet: dict, deliveries: list) -> list:
        targets = [self.macs.get(packet["eth_dst"].lower())]
        if packet["eth_dst"].lower() == "ff:ff:ff:ff:ff:ff":
            targets = [n for n in self.switches if n != source] + \
                      sorted({v for v in self.macs.values() if v.startswith("host:")})
        hops = []
        for target in targets:
            if target is None:
                continue
            if target.startswith("host:"):
                deliveries.append(Delivery(None, None, dict(packet, host=target[5:])))
            elif target != source:
                hops.append((target, dict(packet, in_port=self.uplinks[target]), None))
        return hops


def clone(packet: dict) -> dict:
    return copy.deepcopy(packet)
