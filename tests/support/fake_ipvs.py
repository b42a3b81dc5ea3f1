"""A fake node for the IPVS backend: IPVS table with the kernel's schedulers, ipsets, the dummy
interface's addresses and the iptables rules, plus a packet tracer.

Like tests/support/fake_iptables.py, but for what kube-proxy's ipvs mode writes:

    node = FakeIpvsNode(node_ip="172.18.0.11", other_addresses={"10.244.1.1"})
    runner = FakeIpvsRunner(node)          # what IpvsProxier runs its programs through
    proxier = IpvsProxier(runner, NODE); proxier.sync(ports)
    node.trace(src="10.244.1.9", dst="10.96.0.10", dport=80)   # -> Trace(real_server=..., masquerade=...)

Schedulers follow net/netfilter/ipvs/ip_vs_{rr,wrr,lc,wlc,sed,nq,sh,dh,mh}.c: the destination
list is kept in the kernel's order (new real servers are added at the head), weight 0 means
quiescent (never chosen for new connections), lc/wlc count overhead as active*256 + inactive, sh
and dh fill a 256-bucket table (sh honouring weights) indexed by hash_32 of the source (sh) or
destination (dh) address. mh is Maglev hashing over a 251-slot table; the kernel seeds its
permutation with random keys, so the fake's choice for a given client differs from the kernel's
while keeping its properties (consistency per key, shares by weight, minimal disruption).
Persistence (-p) keeps a template per (client IP, virtual server) until it expires, and a
template whose real server is quiescent is dropped (expire_quiescent_template=1).

Anything the fake does not understand (an unknown ipvsadm option, iptables match or target) is
an error, so a rendering mistake cannot pass silently.
"""
from __future__ import annotations

import ipaddress
import math
import shlex
import subprocess
from dataclasses import dataclass, field

from testbed.backends.ipvs import DUMMY_DEVICE, FLAG_PROTOCOL


class FakeError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# IPVS


@dataclass
class Dest:
    ip: str
    port: int
    weight: int = 1
    forward: str = "-m"
    active: int = 0
    inactive: int = 0

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass
class Service:
    protocol: str
    ip: str
    port: int
    scheduler: str = "rr"
    persistence: int | None = None
    flags: tuple[str, ...] = ()
    dests: list[Dest] = field(default_factory=list)   # kernel order: newest first
    rr_last: str | None = None
    wrr_index: int = -1
    wrr_cw: int = 0
    templates: dict[str, tuple[str, float]] = field(default_factory=dict)   # client IP -> (dest, expiry)

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def dest(self, address: str) -> Dest | None:
        return next((d for d in self.dests if d.address == address), None)


def hash_32(value: int, bits: int) -> int:
    """Linux hash_32: multiply by GOLDEN_RATIO_32, keep the top `bits` bits."""
    return ((value * 0x61C88647) & 0xFFFFFFFF) >> (32 - bits)


def _ip_int(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


class FakeIpvs:
    """The IPVS table of one network namespace."""

    def __init__(self):
        self.services: dict[tuple[str, str, int], Service] = {}

    # -- ipvsadm ----------------------------------------------------------------------------
    def restore(self, text: str) -> list[str]:
        """ipvsadm -R: each line is one command; a failing line prints an error and the rest goes on."""
        errors = []
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                self.command(shlex.split(line))
            except FakeError as err:
                errors.append(str(err))
        return errors

    def command(self, words: list[str]) -> None:
        verb, rest = words[0], words[1:]
        if verb == "-C":
            self.services.clear()
            return
        opts = self._options(rest)
        key = self._key(opts)
        if verb in ("-A", "-E"):
            if verb == "-A" and key in self.services:
                raise FakeError("Service already exists")
            if verb == "-E" and key not in self.services:
                raise FakeError("No such service")
            svc = self.services.get(key) or Service(*key)
            svc.scheduler = opts.get("-s", "wlc")
            svc.persistence = int(opts["-p"]) if "-p" in opts else None
            svc.flags = tuple(opts["-b"].split(",")) if "-b" in opts else ()
            self.services[key] = svc
        elif verb == "-D":
            if self.services.pop(key, None) is None:
                raise FakeError("No such service")
        elif verb in ("-a", "-e", "-d"):
            svc = self.services.get(key)
            if svc is None:
                raise FakeError("Service not defined")
            ip, _, port = opts["-r"].rpartition(":")
            existing = svc.dest(opts["-r"])
            if verb == "-a":
                if existing is not None:
                    raise FakeError("Destination already exists")
                svc.dests.insert(0, Dest(ip, int(port), int(opts.get("-w", "1")), opts.get("fwd", "-g")))
            elif verb == "-e":
                if existing is None:
                    raise FakeError("No such destination")
                existing.weight = int(opts.get("-w", "1"))
            else:
                if existing is None:
                    raise FakeError("No such destination")
                svc.dests.remove(existing)
        else:
            raise FakeError(f"unknown ipvsadm command {verb}")

    @staticmethod
    def _options(words: list[str]) -> dict[str, str]:
        opts: dict[str, str] = {}
        i = 0
        while i < len(words):
            word = words[i]
            if word in FLAG_PROTOCOL:
                opts["proto"], opts["addr"] = FLAG_PROTOCOL[word], words[i + 1]
                i += 2
            elif word in ("-s", "-p", "-b", "-r", "-w"):
                opts[word] = words[i + 1]
                i += 2
            elif word in ("-m", "-g", "-i"):
                opts["fwd"] = word
                i += 1
            else:
                raise FakeError(f"ipvsadm option {word!r} not understood")
        return opts

    @staticmethod
    def _key(opts) -> tuple[str, str, int]:
        ip, _, port = opts["addr"].rpartition(":")
        return (opts["proto"], ip, int(port))

    def save(self) -> str:
        """ipvsadm -S -n (services in insertion order, real servers in the kernel's list order)."""
        lines = []
        for svc in self.services.values():
            flag = next(f for f, p in FLAG_PROTOCOL.items() if p == svc.protocol)
            spec = f"-A {flag} {svc.address} -s {svc.scheduler}"
            spec += f" -p {svc.persistence}" if svc.persistence is not None else ""
            spec += f" -b {','.join(svc.flags)}" if svc.flags else ""
            lines.append(spec)
            lines += [f"-a {flag} {svc.address} -r {d.address} {d.forward} -w {d.weight}" for d in svc.dests]
        return "\n".join(lines) + ("\n" if lines else "")

    def listing(self) -> str:
        """ipvsadm -L -n, with ActiveConn and InActConn."""
        lines = ["IP Virtual Server version 1.2.1 (size=4096)", "Prot LocalAddress:Port Scheduler Flags",
                 "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"]
        for svc in self.services.values():
            lines.append(f"{svc.protocol.upper()}  {svc.address} {svc.scheduler}")
            lines += [f"  -> {d.address:28} Masq    {d.weight:<6} {d.active:<10} {d.inactive}" for d in svc.dests]
        return "\n".join(lines) + "\n"

    # -- scheduling ---------------------------------------------------------------------------
    def schedule(self, protocol: str, vip: str, vport: int, client_ip: str, client_port: int = 40000,
                 now: float = 0.0, connect: bool = False) -> Dest | None:
        """The real server a new connection gets (None: no destination, ICMP unreachable)."""
        svc = self.services.get((protocol, vip, vport))
        if svc is None:
            raise FakeError(f"no virtual server {protocol} {vip}:{vport}")
        dest = None
        if svc.persistence is not None:
            template = svc.templates.get(client_ip)
            if template and template[1] > now:
                dest = svc.dest(template[0])
                if dest is not None and dest.weight == 0:   # expire_quiescent_template
                    dest = None
        if dest is None:
            dest = self._pick(svc, client_ip, client_port, vip)
        if dest is not None and svc.persistence is not None:
            svc.templates[client_ip] = (dest.address, now + svc.persistence)
        if dest is not None and connect:
            dest.active += 1
        return dest

    def _pick(self, svc: Service, client_ip: str, client_port: int, vip: str) -> Dest | None:
        usable = [d for d in svc.dests if d.weight > 0]
        if not usable:
            return None
        kind = svc.scheduler
        if kind == "rr":
            order = svc.dests
            start = 0
            if svc.rr_last is not None:
                last = next((i for i, d in enumerate(order) if d.address == svc.rr_last), -1)
                start = last + 1
            for i in range(len(order)):
                dest = order[(start + i) % len(order)]
                if dest.weight > 0:
                    svc.rr_last = dest.address
                    return dest
            return None
        if kind == "wrr":
            weights = [d.weight for d in svc.dests]
            mw, di = max(weights), math.gcd(*weights)
            n = len(svc.dests)
            while True:
                svc.wrr_index = (svc.wrr_index + 1) % n
                if svc.wrr_index == 0:
                    svc.wrr_cw -= di
                    if svc.wrr_cw <= 0:
                        svc.wrr_cw = mw
                dest = svc.dests[svc.wrr_index]
                if dest.weight >= svc.wrr_cw:
                    return dest
        if kind in ("lc", "wlc", "sed", "nq"):
            if kind == "nq":
                idle = next((d for d in usable if d.active == 0), None)
                if idle is not None:
                    return idle

            def overhead(d: Dest) -> int:
                if kind in ("sed", "nq"):
                    return d.active + 1
                return (d.active << 8) + d.inactive

            least = usable[0]
            for dest in usable[1:]:
                if kind == "lc":
                    if overhead(dest) < overhead(least):
                        least = dest
                elif overhead(least) * dest.weight > overhead(dest) * least.weight:
                    least = dest
            return least
        if kind in ("sh", "dh"):
            table = []
            dests = svc.dests
            index, count = 0, 0
            for _ in range(256):
                table.append(dests[index])
                count += 1
                if kind == "dh" or count >= max(dests[index].weight, 1):
                    index, count = (index + 1) % len(dests), 0
            if kind == "sh":
                port = client_port if "sh-port" in svc.flags else 0
                bucket = hash_32((port + _ip_int(client_ip)) & 0xFFFFFFFF, 8)
            else:
                bucket = (_ip_int(vip) * 2654435761) & 0xFF
            dest = table[bucket]
            return dest if dest.weight > 0 else None
        if kind == "mh":
            table = maglev_table([(d.address, d.weight) for d in svc.dests if d.weight > 0])
            port = client_port if "mh-port" in svc.flags else 0
            slot = hash_32((port + _ip_int(client_ip)) & 0xFFFFFFFF, 32) % len(table)
            return svc.dest(table[slot])
        raise FakeError(f"scheduler {kind!r} not modelled")

    def close(self, dest: Dest) -> None:
        """A connection ends: active -> inactive (TIME_WAIT), as the kernel counts it."""
        dest.active -= 1
        dest.inactive += 1

    def expire(self) -> None:
        for svc in self.services.values():
            for dest in svc.dests:
                dest.inactive = 0


MAGLEV_SIZE = 251


def maglev_table(dests: list[tuple[str, int]]) -> list[str]:
    """Maglev's population (ip_vs_mh_populate): each destination walks its permutation
    (offset, skip from two hashes of its name) and claims free slots, `weight` turns per round."""
    if not dests:
        return []
    perms = []
    for name, _ in dests:
        h = sum((i + 1) * ord(c) for i, c in enumerate(name))
        offset = hash_32(h, 32) % MAGLEV_SIZE
        skip = hash_32(h ^ 0x5BD1E995, 32) % (MAGLEV_SIZE - 1) + 1
        perms.append((offset, skip))
    table: list[str | None] = [None] * MAGLEV_SIZE
    nexts = [0] * len(dests)
    filled = 0
    while filled < MAGLEV_SIZE:
        for i, (name, weight) in enumerate(dests):
            for _ in range(weight):
                offset, skip = perms[i]
                while True:
                    slot = (offset + nexts[i] * skip) % MAGLEV_SIZE
                    nexts[i] += 1
                    if table[slot] is None:
                        break
                table[slot] = name
                filled += 1
                if filled == MAGLEV_SIZE:
                    return table
    return table


# ---------------------------------------------------------------------------------------------
# ipsets


SET_TYPES = {"hash:ip", "hash:ip,port", "hash:ip,port,ip", "hash:ip,port,net", "bitmap:port"}


class FakeIpsets:
    def __init__(self):
        self.types: dict[str, str] = {}
        self.entries: dict[str, set[str]] = {}

    def restore(self, text: str) -> None:
        for line in text.splitlines():
            words = line.split()
            if not words:
                continue
            exist = "-exist" in words
            verb, name = words[0], words[1]
            if verb == "create":
                if words[2] not in SET_TYPES:
                    raise FakeError(f"ipset type {words[2]} not understood")
                if name in self.types and not exist:
                    raise FakeError(f"set {name} exists")
                self.types.setdefault(name, words[2])
                self.entries.setdefault(name, set())
            elif verb in ("add", "del"):
                if name not in self.types:
                    raise FakeError(f"set {name} does not exist")
                entry = words[2]
                self._check(name, entry)
                if verb == "add":
                    if entry in self.entries[name] and not exist:
                        raise FakeError(f"{entry} already in {name}")
                    self.entries[name].add(entry)
                else:
                    if entry not in self.entries[name] and not exist:
                        raise FakeError(f"{entry} not in {name}")
                    self.entries[name].discard(entry)
            elif verb == "destroy":
                self.types.pop(name, None)
                self.entries.pop(name, None)
            else:
                raise FakeError(f"ipset command {verb} not understood")

    def _check(self, name: str, entry: str) -> None:
        kind = self.types[name]
        parts = entry.split(",")
        expected = {"hash:ip": 1, "hash:ip,port": 2, "hash:ip,port,ip": 3, "hash:ip,port,net": 3, "bitmap:port": 1}[kind]
        if len(parts) != expected:
            raise FakeError(f"entry {entry!r} does not fit {name} ({kind})")
        if kind == "bitmap:port":
            int(entry)
        else:
            ipaddress.IPv4Address(parts[0])
            if len(parts) > 1:
                proto, _, port = parts[1].partition(":")
                if proto not in ("tcp", "udp", "sctp") or not port.isdigit():
                    raise FakeError(f"entry {entry!r}: bad proto:port")

    def save(self) -> str:
        lines = []
        for name, kind in self.types.items():
            lines.append(f"create {name} {kind}")
            lines += [f"add {name} {e}" for e in sorted(self.entries[name])]
        return "\n".join(lines) + ("\n" if lines else "")

    def match(self, name: str, match: str, packet: "Packet") -> bool:
        """`-m set --match-set NAME dst,dst,src` against a packet."""
        if name not in self.types:
            raise FakeError(f"iptables references missing set {name}")
        kind = self.types[name]
        dims = match.split(",")
        values = {"src": packet.src, "dst": packet.dst}
        ports = {"src": packet.sport, "dst": packet.dport}
        for entry in self.entries[name]:
            parts = entry.split(",")
            if kind == "bitmap:port":
                if int(parts[0]) == ports[dims[0]]:
                    return True
                continue
            if parts[0] != values[dims[0]]:
                continue
            if len(parts) > 1:
                proto, _, port = parts[1].partition(":")
                if proto != packet.proto or int(port) != ports[dims[1]]:
                    continue
            if len(parts) > 2:
                third = values[dims[2]]
                if "/" in parts[2] or kind == "hash:ip,port,net":
                    if ipaddress.IPv4Address(third) not in ipaddress.ip_network(parts[2], strict=False):
                        continue
                elif parts[2] != third:
                    continue
            return True
        return False


# ---------------------------------------------------------------------------------------------
# iptables (just enough of the restore format)


class FakeTables:
    BUILTIN = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
               "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")}

    def __init__(self):
        self.chains: dict[str, dict[str, list[str]]] = {t: {c: [] for c in b} for t, b in self.BUILTIN.items()}

    def restore(self, text: str) -> None:
        table = None
        staged = None
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("*"):
                table = line[1:]
                staged = {c: list(r) for c, r in self.chains[table].items()}
            elif line == "COMMIT":
                for chain, rules in staged.items():
                    for rule in rules:
                        target = _target(rule)
                        if target and target.startswith("KUBE-") and target not in staged:
                            raise FakeError(f"{table}: {chain} jumps to missing chain {target}")
                self.chains[table] = staged
                table = staged = None
            elif line.startswith(":"):
                staged[line[1:].split()[0]] = []
            else:
                words = shlex.split(line)
                verb, chain, spec = words[0], words[1], " ".join(shlex.quote(w) for w in words[2:])
                if chain not in staged:
                    raise FakeError(f"{table}: no chain {chain}")
                if verb == "-A":
                    staged[chain].append(spec)
                elif verb == "-I":
                    staged[chain].insert(0, spec)
                elif verb == "-D":
                    staged[chain].remove(spec)
                elif verb == "-X":
                    if any(_target(r) == chain for rules in staged.values() for r in rules):
                        raise FakeError(f"{table}: cannot delete {chain}: still referenced")
                    del staged[chain]
                else:
                    raise FakeError(f"iptables-restore verb {verb} not understood")

    def save(self) -> str:
        out = []
        for table, chains in self.chains.items():
            out.append(f"*{table}")
            out += [f":{c} {'ACCEPT' if c in self.BUILTIN[table] else '-'} [0:0]" for c in chains]
            out += [f"-A {c} {r}" for c, rules in chains.items() for r in rules]
            out.append("COMMIT")
        return "\n".join(out) + "\n"


def _target(rule: str) -> str | None:
    words = shlex.split(rule)
    return words[words.index("-j") + 1] if "-j" in words else None


# ---------------------------------------------------------------------------------------------
# The node and its tracer


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    dport: int
    proto: str = "tcp"
    sport: int = 40000


@dataclass(frozen=True)
class Trace:
    verdict: str                  # "ipvs" (to a real server), "unreachable" (VS without usable
                                  # destinations), "reject", "drop", "local" (no VS), "forward"
    real_server: str | None = None
    masquerade: bool = False
    chains: tuple[str, ...] = ()


class FakeIpvsNode:
    def __init__(self, node_ip: str, other_addresses=()):
        self.node_ip = node_ip
        self.addresses = {node_ip, "127.0.0.1", *other_addresses}
        self.ipvs = FakeIpvs()
        self.ipsets = FakeIpsets()
        self.tables = FakeTables()
        self.dummy: set[str] | None = None     # addresses on kube-ipvs0, None: no device
        self.sysctls: dict[str, str] = {}

    def local(self, ip: str) -> bool:
        return ip in self.addresses or ip in (self.dummy or ())

    def trace(self, src: str, dst: str, dport: int, proto: str = "tcp", sport: int = 40000,
              from_node: bool = False, now: float = 0.0, connect: bool = False) -> Trace:
        """A new connection's first packet: nat PREROUTING (OUTPUT when the node itself sends),
        routing, filter INPUT, IPVS, nat POSTROUTING."""
        packet = Packet(src, dst, dport, proto, sport)
        state = {"mark": 0, "chains": []}
        verdict = self._walk("nat", "OUTPUT" if from_node else "PREROUTING", packet, state)
        if verdict in ("DROP", "REJECT"):
            return Trace(verdict.lower(), chains=tuple(state["chains"]))
        if not self.local(dst):
            return Trace("forward", chains=tuple(state["chains"]))
        verdict = self._walk("filter", "OUTPUT" if from_node else "INPUT", packet, state)
        if verdict in ("DROP", "REJECT"):
            return Trace(verdict.lower(), chains=tuple(state["chains"]))
        if (proto, dst, dport) not in self.ipvs.services:
            return Trace("local", chains=tuple(state["chains"]))
        dest = self.ipvs.schedule(proto, dst, dport, src, sport, now, connect)
        if dest is None:
            return Trace("unreachable", chains=tuple(state["chains"]))
        after = Packet(src, dest.ip, dest.port, proto, sport)   # IPVS rewrote the destination
        state["masquerade"] = False
        self._walk("nat", "POSTROUTING", after, state)
        return Trace("ipvs", dest.address, state["masquerade"], tuple(state["chains"]))

    def _walk(self, table: str, chain: str, packet: Packet, state: dict) -> str | None:
        for rule in self.tables.chains[table].get(chain, []):
            words = shlex.split(rule)
            if not self._matches(words, packet, state):
                continue
            target = words[words.index("-j") + 1] if "-j" in words else None
            if target is None:
                continue
            state["chains"].append(f"{chain}->{target}")
            if target in ("ACCEPT", "DROP", "REJECT"):
                return target
            if target == "RETURN":
                return None
            if target == "MASQUERADE":
                state["masquerade"] = True
                return "ACCEPT"
            if target == "MARK":
                if "--or-mark" in words:
                    state["mark"] |= int(words[words.index("--or-mark") + 1], 16)
                elif "--xor-mark" in words:
                    state["mark"] ^= int(words[words.index("--xor-mark") + 1], 16)
                else:
                    raise FakeError(f"MARK form not understood: {rule}")
                continue
            if target in self.tables.chains[table]:
                verdict = self._walk(table, target, packet, state)
                if verdict is not None:
                    return verdict
                continue
            raise FakeError(f"target {target} not understood")
        return None

    def _matches(self, words: list[str], packet: Packet, state: dict) -> bool:
        i = 0
        negate = False
        while i < len(words):
            w = words[i]
            if w == "!":
                negate = True
                i += 1
                continue
            if w == "-j":
                return True
            if w == "-m":
                module = words[i + 1]
                i += 2
                if module in ("comment",):
                    i += 2
                continue
            if w in ("-s", "-d"):
                value = packet.src if w == "-s" else packet.dst
                ok = ipaddress.IPv4Address(value) in ipaddress.ip_network(words[i + 1], strict=False)
                i += 2
            elif w == "-p":
                ok = packet.proto == words[i + 1]
                i += 2
            elif w == "--match-set":
                ok = self.ipsets.match(words[i + 1], words[i + 2], packet)
                i += 3
            elif w == "--dst-type":
                ok = words[i + 1] == "LOCAL" and self.local(packet.dst)
                i += 2
            elif w == "--src-type":
                ok = words[i + 1] == "LOCAL" and self.local(packet.src)
                i += 2
            elif w == "--physdev-is-in":
                ok = False      # no bridge netfilter: nothing arrives through a bridge port
                i += 1
            elif w == "--mark":
                value, _, mask = words[i + 1].partition("/")
                ok = state["mark"] & int(mask or value, 16) == int(value, 16)
                i += 2
            elif w == "--ctstate":
                ok = "NEW" in words[i + 1].split(",")
                i += 2
            elif w in ("--vaddr", "--vproto", "--vport"):
                ok = True      # -m ipvs: the packet is for that virtual server (checked by the caller's dst)
                i += 2
            else:
                raise FakeError(f"iptables match {w!r} not understood")
            if ok == negate:
                return False
            negate = False
        return True


class FakeIpvsRunner:
    """What IpvsProxier calls: runs the programs against a FakeIpvsNode and records the calls."""

    def __init__(self, node: FakeIpvsNode):
        self.node = node
        self.calls: list[tuple[list[str], str | None]] = []
        self.fail_next: str | None = None    # program name whose next call fails

    def run(self, args, input=None, check=True, timeout=120):
        args = list(args)
        self.calls.append((args, input))
        if self.fail_next and args[0] == self.fail_next:
            self.fail_next = None
            return self._done(args, 1, "", "injected failure", check)
        out, err, rc = "", "", 0
        node = self.node
        try:
            if args[0] == "sysctl":
                for item in args[3:]:
                    key, _, value = item.partition("=")
                    node.sysctls[key] = value
            elif args[:3] == ["ip", "link", "show"]:
                rc = 0 if node.dummy is not None else 1
            elif args[:3] == ["ip", "link", "add"]:
                if node.dummy is not None:
                    raise FakeError("RTNETLINK answers: File exists")
                node.dummy = set()
            elif args[:3] == ["ip", "link", "del"]:
                if node.dummy is None:
                    rc, err = 1, "Cannot find device"
                node.dummy = None
            elif args[:2] == ["ip", "-o"]:
                if node.dummy is None:
                    rc, err = 1, f'Device "{DUMMY_DEVICE}" does not exist.'
                else:
                    out = "".join(f"9: {DUMMY_DEVICE}    inet {a}/32 scope global {DUMMY_DEVICE}\n" for a in sorted(node.dummy))
            elif args[:2] == ["ip", "-force"]:
                for line in (input or "").splitlines():
                    words = line.split()
                    if words[:2] == ["link", "add"]:
                        node.dummy = node.dummy if node.dummy is not None else set()
                    elif words[:2] in (["address", "add"], ["address", "del"]):
                        if node.dummy is None:
                            raise FakeError(f"Cannot find device {DUMMY_DEVICE}")
                        ip = words[2].split("/")[0]
                        if words[1] == "add":
                            if ip in node.dummy:
                                raise FakeError("RTNETLINK answers: File exists")
                            node.dummy.add(ip)
                        else:
                            node.dummy.discard(ip)
                    else:
                        raise FakeError(f"ip -batch line not understood: {line}")
            elif args[0] == "ipvsadm":
                if args[1:] == ["-S", "-n"]:
                    out = node.ipvs.save()
                elif args[1:] == ["-L", "-n"]:
                    out = node.ipvs.listing()
                elif args[1:] == ["-R"]:
                    err = "\n".join(node.ipvs.restore(input or ""))
                elif args[1:] == ["-C"]:
                    node.ipvs.services.clear()
                else:
                    raise FakeError(f"ipvsadm {args[1:]} not understood")
            elif args[0] == "ipset":
                if args[1:] == ["save"]:
                    out = node.ipsets.save()
                elif args[1:] == ["restore"]:
                    node.ipsets.restore(input or "")
                else:
                    raise FakeError(f"ipset {args[1:]} not understood")
            elif args[0].endswith("-save"):
                out = node.tables.save()
            elif args[0].endswith("-restore"):
                if "--noflush" not in args:
                    raise FakeError("the proxier must not flush the tables")
                node.tables.restore(input or "")
            else:
                raise FakeError(f"program {args[0]} not understood")
        except FakeError as error:
            rc, err = 1, str(error)
        return self._done(args, rc, out, err, check)

    @staticmethod
    def _done(args, rc, out, err, check):
        if check and rc != 0:
            from testbed.net.runner import CommandError
            raise CommandError(args, rc, err)
        return subprocess.CompletedProcess(args, rc, out, err)

    def programs(self) -> list[str]:
        return [" ".join(a[:2]) for a, _ in self.calls]
