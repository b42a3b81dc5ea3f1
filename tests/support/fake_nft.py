"""A fake nft for unit tests: applies `nft -f` transactions and traces packets through the result.

Like tests/support/fake_iptables.py (and Faucet's fakeoftable): the transaction a backend writes is
loaded into a small model of one nftables table, and tests ask "where would this packet go?".
Only the commands and rule expressions kube-proxy's nftables layout uses are understood; anything
else is an error, so a rendering mistake cannot pass silently. The transaction semantics are the
kernel's, as checked with nft 1.0.6 on kernel 6.18 in a scratch namespace:
- a transaction applies whole or not at all;
- `add` of an existing chain, set or element is a no-op, but an element with another value is
  EEXIST, a base chain with another hook or priority is EOPNOTSUPP, and a set's other timeout is
  silently ignored (the old one stays), as is an element's other comment;
- `delete`/`flush` of a missing object is ENOENT; deleting a chain or set that a rule or a map
  element still refers to is EBUSY; deleting a chain takes its rules with it;
- rules and map elements may refer only to chains, sets and maps that exist; `reject` is not a
  verdict a map can hold (kube-proxy uses `goto reject-chain` for that reason).

    fake = FakeNft()
    fake.run(transaction_text)
    trace = fake.trace("10.244.1.9", "10.96.0.10", dport=80, local_addresses={"172.18.0.11"})
    trace.dnat_probabilities()      # {"10.244.0.5:80": 0.5, "10.244.2.5:80": 0.5}

Packet paths (new connections; base chains of a hook run in priority order):
    from outside: prerouting -> input (destination local after DNAT) or forward -> postrouting
    from the node: output -> postrouting
`numgen random mod N` forks a trace into N branches of probability 1/N; `ip saddr @affinity-X`
matches when (X, source) is in the `affinity` argument; `update @set` is recorded.
"""
from __future__ import annotations

import copy
import ipaddress
import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field, replace
from typing import Iterable

from testbed.net.runner import CommandError

PROTOCOLS = ("tcp", "udp", "sctp")
VERDICTS = ("accept", "drop", "return", "continue")


class FakeNftError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# Objects


@dataclass
class Rule:
    text: str                   # as written after the chain name, comment included
    exprs: list[tuple]
    comment: str | None = None

    def references(self) -> tuple[set[str], set[str]]:
        """(chains, sets/maps) this rule refers to."""
        chains, sets = set(), set()
        for expr in self.exprs:
            kind = expr[0]
            if kind in ("jump", "goto"):
                chains.add(expr[1])
            elif kind == "numgen":
                chains |= {v[1] for v in expr[2].values() if v[0] in ("jump", "goto")}
            elif kind in ("lookup", "vmap", "update"):
                sets.add(expr[-1] if kind != "lookup" else expr[2])
        return chains, sets


@dataclass
class Chain:
    name: str
    base: tuple[str, str, int] | None = None      # (type, hook, priority)
    comment: str | None = None
    rules: list[Rule] = field(default_factory=list)

    def spec(self) -> str:
        if self.base:
            kind, hook, priority = self.base
            return f" {{ type {kind} hook {hook} priority {priority} ; }}"
        return f' {{ comment "{self.comment}" ; }}' if self.comment else ""


@dataclass
class Container:
    kind: str                   # "set" or "map"
    name: str
    key_type: tuple[str, ...]
    flags: tuple[str, ...] = ()
    timeout: int | None = None
    comment: str | None = None
    elements: dict[tuple[str, ...], tuple[str | None, str | None]] = field(default_factory=dict)  # key -> (value, comment)

    def spec(self) -> str:
        parts = [f"type {' . '.join(self.key_type)}{' : verdict' if self.kind == 'map' else ''} ;"]
        if self.flags:
            parts.append(f"flags {','.join(self.flags)} ;")
        if self.timeout is not None:
            parts.append(f"timeout {self.timeout}s ;")
        if self.comment is not None:
            parts.append(f'comment "{self.comment}" ;')
        return "{ " + " ".join(parts) + " }"


@dataclass
class Table:
    family: str
    name: str
    comment: str | None = None
    chains: dict[str, Chain] = field(default_factory=dict)
    containers: dict[str, Container] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Parsing


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text, posix=True)
    except ValueError as error:
        raise FakeNftError(f"cannot tokenise {text!r}: {error}") from None


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise FakeNftError(f"not an IPv4 address: {text!r}") from None


def _network(text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise FakeNftError(f"not an address or network (host bits set?): {text!r}") from None


def _key_part(kind: str, text: str) -> str:
    if kind == "ipv4_addr":
        return _ip(text)
    if kind == "inet_proto":
        if text not in PROTOCOLS:
            raise FakeNftError(f"unknown protocol {text!r}")
        return text
    if kind == "inet_service":
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise FakeNftError(f"bad port {text!r}")
        return str(int(text))
    raise FakeNftError(f"key type {kind} not modelled")


def _verdict(words: list[str], where: str) -> tuple:
    if len(words) == 2 and words[0] in ("jump", "goto"):
        return (words[0], words[1])
    if len(words) == 1 and words[0] in VERDICTS:
        return (words[0],)
    raise FakeNftError(f"not a verdict: {' '.join(words)!r} in {where}")


def _braced(words: list[str], i: int) -> tuple[list[str], int]:
    """Words between `{` at words[i] and its `}`; returns them and the index after `}`."""
    if i >= len(words) or words[i] != "{":
        raise FakeNftError(f"expected '{{' in {' '.join(words)!r}")
    end = words.index("}", i)
    return words[i + 1:end], end + 1


_FIELDS = {("ip", "daddr"): "daddr", ("ip", "saddr"): "saddr"}


def parse_rule(text: str) -> Rule:
    """The expressions of a rule as kube-proxy writes them; anything else is an error."""
    words = _tokens(text)
    comment = None
    if len(words) >= 2 and words[-2] == "comment":
        comment, words = words[-1], words[:-2]
    exprs: list[tuple] = []
    i = 0

    def need(n: int) -> list[str]:
        if i + n > len(words):
            raise FakeNftError(f"rule ends early: {text!r}")
        return words[i:i + n]

    while i < len(words):
        w = words[i]
        if words[i:i + 3] == ["ct", "state", "new"]:
            exprs.append(("ctstate", "new"))
            i += 3
        elif words[i:i + 8] == ["ip", "daddr", ".", "meta", "l4proto", ".", "th", "dport"]:
            if need(10)[8] != "vmap" or not words[i + 9].startswith("@"):
                raise FakeNftError(f"concatenation only as a vmap lookup: {text!r}")
            exprs.append(("vmap", ("daddr", "proto", "dport"), words[i + 9][1:]))
            i += 10
        elif words[i:i + 5] == ["meta", "l4proto", ".", "th", "dport"]:
            if need(7)[5] != "vmap" or not words[i + 6].startswith("@"):
                raise FakeNftError(f"concatenation only as a vmap lookup: {text!r}")
            exprs.append(("vmap", ("proto", "dport"), words[i + 6][1:]))
            i += 7
        elif tuple(words[i:i + 2]) in _FIELDS:
            field_name = _FIELDS[tuple(words[i:i + 2])]
            i += 2
            negated = need(1)[0] == "!="
            i += negated
            operand = need(1)[0]
            if operand.startswith("@"):
                exprs.append(("lookup", field_name, operand[1:], negated))
                i += 1
            elif operand == "{":
                items, i = _braced(words, i)
                networks = [_network(x) for x in " ".join(items).replace(",", " ").split()]
                exprs.append(("addr", field_name, tuple(networks), negated))
            else:
                exprs.append(("addr", field_name, (_network(operand),), negated))
                i += 1
        elif w in PROTOCOLS and need(3)[1] == "dport":
            exprs.append(("dport", w, int(words[i + 2])))
            i += 3
        elif words[i:i + 2] == ["meta", "l4proto"]:
            proto = need(3)[2]
            if proto not in PROTOCOLS:
                raise FakeNftError(f"unknown protocol in {text!r}")
            exprs.append(("proto", proto))
            i += 3
        elif w == "fib" and need(4)[2:4] == ["type", "local"] and words[i + 1] in ("saddr", "daddr"):
            exprs.append(("fib-local", "saddr" if words[i + 1] == "saddr" else "daddr"))
            i += 4
        elif w == "numgen" and need(4)[1:3] == ["random", "mod"]:
            modulus = int(words[i + 3])
            if need(5)[4] != "vmap":
                raise FakeNftError(f"numgen only with vmap: {text!r}")
            items, i = _braced(words, i + 5)
            choices: dict[int, tuple] = {}
            for entry in " ".join(items).split(","):
                key, sep, verdict = entry.partition(":")
                if not sep:
                    raise FakeNftError(f"bad vmap entry {entry!r} in {text!r}")
                choices[int(key)] = _verdict(verdict.split(), text)
            exprs.append(("numgen", modulus, choices))
        elif w == "update":
            target = need(2)[1]
            items, i = _braced(words, i + 2)
            if not target.startswith("@") or items != ["ip", "saddr"]:
                raise FakeNftError(f"only `update @set {{ ip saddr }}` is modelled: {text!r}")
            exprs.append(("update", target[1:]))
        elif words[i:i + 3] == ["mark", "set", "mark"]:
            op, value = need(5)[3], int(words[i + 4], 0)
            if op not in ("or", "xor"):
                raise FakeNftError(f"mark op {op!r} not modelled")
            exprs.append(("mark-set", op, value))
            i += 5
        elif words[i:i + 2] == ["mark", "and"]:
            mask, eq, value = need(5)[2:5]
            if eq != "==":
                raise FakeNftError(f"bad mark comparison in {text!r}")
            exprs.append(("mark-match", int(mask, 0), int(value, 0)))
            i += 5
        elif w == "dnat" and need(3)[1] == "to":
            ip, _, port = words[i + 2].rpartition(":")
            exprs.append(("dnat", _ip(ip), int(port)))
            i += 3
        elif w == "masquerade":
            i += 1
            if i < len(words) and words[i] == "fully-random":
                i += 1
            exprs.append(("masquerade",))
        elif w in ("jump", "goto"):
            exprs.append((w, need(2)[1]))
            i += 2
        elif w in ("return", "drop", "reject", "accept"):
            exprs.append((w,))
            i += 1
        else:
            raise FakeNftError(f"expression not modelled at {' '.join(words[i:])!r} in {text!r}")
    verdicts = [n for n, e in enumerate(exprs) if e[0] in ("jump", "goto", "return", "drop", "reject", "accept",
                                                            "dnat", "masquerade", "numgen", "vmap")]
    if verdicts and verdicts[0] != len(exprs) - 1:
        raise FakeNftError(f"an expression after a verdict in {text!r}")
    return Rule(text, exprs, comment)


_OBJECT_RE = re.compile(r"^(add|flush|delete) (table|chain|set|map|rule|element) (\S+) (\S+)(?: (.*))?$")


# ---------------------------------------------------------------------------------------------
# The fake


@dataclass(frozen=True)
class Outcome:
    probability: float
    verdict: str                      # ACCEPT, DROP or REJECT
    dnat: str | None                  # "ip:port" the destination was rewritten to
    masquerade: bool
    mark: int
    rules: tuple[str, ...]            # "chain: rule" of every rule that matched
    updates: tuple[str, ...] = ()     # sets `update @set { ip saddr }` added the source to

    def met(self, fragment: str) -> bool:
        return any(fragment in rule for rule in self.rules)


@dataclass(frozen=True)
class Trace:
    outcomes: tuple[Outcome, ...]

    def dnat_probabilities(self) -> dict[str | None, float]:
        result: dict[str | None, float] = {}
        for o in self.outcomes:
            result[o.dnat] = result.get(o.dnat, 0.0) + o.probability
        return result

    @property
    def verdicts(self) -> frozenset[str]:
        return frozenset(o.verdict for o in self.outcomes)

    @property
    def only(self) -> Outcome:
        if len(self.outcomes) != 1:
            raise AssertionError(f"expected one outcome, got {len(self.outcomes)}: {self.outcomes}")
        return self.outcomes[0]


@dataclass(frozen=True)
class _Packet:
    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    proto: str
    dport: int
    probability: float = 1.0
    mark: int = 0
    dnat: str | None = None
    masquerade: bool = False
    rules: tuple[str, ...] = ()
    updates: tuple[str, ...] = ()


class FakeNft:
    """One nftables ruleset (any number of tables; kube-proxy uses one)."""

    def __init__(self):
        self.tables: dict[tuple[str, str], Table] = {}
        self.transactions: list[str] = []

    # -- transactions -------------------------------------------------------------------------

    def run(self, text: str, *, check: bool = False) -> None:
        """`nft -f -` (or `nft -c -f -`): every command or none."""
        work = copy.deepcopy(self.tables)
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                self._command(work, line)
            except FakeNftError as error:
                raise FakeNftError(f"line {number}: {line!r}: {error}") from None
        if not check:
            self.tables = work
            self.transactions.append(text)

    def _command(self, tables: dict[tuple[str, str], Table], line: str) -> None:
        match = _OBJECT_RE.match(line)
        if not match:
            raise FakeNftError("not a command this fake knows")
        verb, kind, family, rest = match.group(1), match.group(2), match.group(3), match.group(4)
        if kind == "table":
            name, _, spec = (rest + " " + (match.group(5) or "")).strip().partition(" ")
            key = (family, name)
            if verb == "add":
                comment = re.fullmatch(r'\{ comment "([^"]*)" ; \}', spec.strip())
                if spec.strip() and not comment:
                    raise FakeNftError(f"bad table spec {spec!r}")
                table = tables.setdefault(key, Table(family, name))
                table.comment = table.comment or (comment.group(1) if comment else None)
            elif verb == "delete":
                if key not in tables:
                    raise FakeNftError("No such file or directory (table)")
                del tables[key]
            else:
                raise FakeNftError("flush table is not used by kube-proxy")
            return
        table = tables.get((family, rest))
        if table is None:
            raise FakeNftError(f"No such file or directory (table {family} {rest})")
        tail = match.group(5) or ""
        name, _, spec = tail.partition(" ")
        if not name:
            raise FakeNftError("missing object name")
        if kind == "chain":
            self._chain(table, verb, name, spec.strip())
        elif kind in ("set", "map"):
            self._container(table, verb, kind, name, spec.strip())
        elif kind == "rule":
            if verb != "add":
                raise FakeNftError("only `add rule` is used")
            chain = table.chains.get(name)
            if chain is None:
                raise FakeNftError(f"No such file or directory (chain {name})")
            rule = parse_rule(spec)
            chains, sets = rule.references()
            for target in chains - table.chains.keys():
                raise FakeNftError(f"No such file or directory (chain {target})")
            for target in sets - table.containers.keys():
                raise FakeNftError(f"No such file or directory (set {target})")
            if chain.base and chain.base[0] != "nat" and any(e[0] in ("dnat", "masquerade") for e in rule.exprs):
                raise FakeNftError("nat statements belong in nat chains")   # regular chains: checked when traced
            chain.rules.append(rule)
        else:
            self._element(table, verb, name, spec.strip())

    def _chain(self, table: Table, verb: str, name: str, spec: str) -> None:
        existing = table.chains.get(name)
        if verb == "add":
            base, comment = None, None
            if spec:
                m = re.fullmatch(r"\{ type (filter|nat) hook (prerouting|input|forward|output|postrouting) "
                                 r"priority (-?\d+) ; \}", spec)
                c = re.fullmatch(r'\{ comment "([^"]*)" ; \}', spec)
                if m:
                    base = (m.group(1), m.group(2), int(m.group(3)))
                    if base[0] == "nat" and base[1] in ("forward",):
                        raise FakeNftError("nat chains have no forward hook")
                elif c:
                    comment = c.group(1)
                else:
                    raise FakeNftError(f"bad chain spec {spec!r}")
            if existing is None:
                table.chains[name] = Chain(name, base, comment)
            elif base is not None and existing.base != base:
                raise FakeNftError("Operation not supported (base chain with other properties)")
            return
        if existing is None:
            raise FakeNftError(f"No such file or directory (chain {name})")
        if verb == "flush":
            existing.rules = []
            return
        users = [c.name for c in table.chains.values() if c.name != name
                 for r in c.rules if name in r.references()[0]]
        users += [m.name for m in table.containers.values() if m.kind == "map"
                  for value, _ in m.elements.values() if value and value.split()[-1] == name]
        if users:
            raise FakeNftError(f"Device or resource busy (chain {name} is used by {sorted(set(users))})")
        del table.chains[name]

    def _container(self, table: Table, verb: str, kind: str, name: str, spec: str) -> None:
        existing = table.containers.get(name)
        if verb == "add":
            m = re.fullmatch(r'\{ type ([^;:]+?)( : verdict)? ;(?: flags ([a-z,]+) ;)?(?: timeout (\d+)s ;)?'
                             r'(?: comment "([^"]*)" ;)? \}', spec)
            if not m or (kind == "map") != bool(m.group(2)):
                raise FakeNftError(f"bad {kind} spec {spec!r}")
            key_type = tuple(part.strip() for part in m.group(1).split("."))
            for part in key_type:
                _key_part(part, {"ipv4_addr": "0.0.0.0", "inet_proto": "tcp", "inet_service": "1"}.get(part, "?"))
            container = Container(kind, name, key_type, tuple((m.group(3) or "").split(",")) if m.group(3) else (),
                                  int(m.group(4)) if m.group(4) else None, m.group(5))
            if existing is None:
                table.containers[name] = container
            elif existing.kind != kind or existing.key_type != key_type:
                raise FakeNftError("File exists (a set or map of another type)")
            return                      # another timeout or comment: the kernel keeps the old one
        if existing is None or existing.kind != kind:
            raise FakeNftError(f"No such file or directory ({kind} {name})")
        if verb == "flush":
            existing.elements.clear()
            return
        users = [c.name for c in table.chains.values() for r in c.rules if name in r.references()[1]]
        if users:
            raise FakeNftError(f"Device or resource busy ({kind} {name} is used by {sorted(set(users))})")
        del table.containers[name]

    def _element(self, table: Table, verb: str, name: str, spec: str) -> None:
        container = table.containers.get(name)
        if container is None:
            raise FakeNftError(f"No such file or directory (set {name})")
        m = re.fullmatch(r'\{ ([^":]+?)(?: comment "([^"]*)")?(?: : ([^}]+?))? \}', spec)
        if not m:
            raise FakeNftError(f"bad element {spec!r}")
        parts = [p.strip() for p in m.group(1).split(" . ")]
        if len(parts) != len(container.key_type):
            raise FakeNftError(f"key {m.group(1)!r} does not fit {' . '.join(container.key_type)}")
        key = tuple(_key_part(kind, part) for kind, part in zip(container.key_type, parts))
        value = m.group(3)
        if verb == "delete":
            if value or m.group(2):
                raise FakeNftError("delete element takes the key alone")
            if key not in container.elements:
                raise FakeNftError("No such file or directory (element)")
            del container.elements[key]
            return
        if verb != "add":
            raise FakeNftError("flush element is not a command")
        if container.kind == "map":
            if not value:
                raise FakeNftError("a map element needs a value")
            verdict = _verdict(value.split(), spec)
            if verdict[0] in ("jump", "goto") and verdict[1] not in table.chains:
                raise FakeNftError(f"No such file or directory (chain {verdict[1]})")
        elif value:
            raise FakeNftError("a set element has no value")
        if key in container.elements:
            if container.elements[key][0] != value:
                raise FakeNftError("File exists (element with another value)")
            return                      # same value: nothing changes, not even the comment
        container.elements[key] = (value, m.group(2))

    # -- reading ------------------------------------------------------------------------------

    def table(self, family: str = "ip", name: str = "kube-proxy") -> Table:
        return self.tables[(family, name)]

    def dump(self) -> str:
        """Like knftables' Fake.Dump(), with elements sorted (their order means nothing)."""
        out: list[str] = []
        for (family, name), table in sorted(self.tables.items()):
            ref = f"{family} {name}"
            out.append(f"add table {ref}" + (f' {{ comment "{table.comment}" ; }}' if table.comment else ""))
            chains = sorted(table.chains.values(), key=lambda c: c.name)
            containers = sorted(table.containers.values(), key=lambda c: (c.kind != "set", c.name))
            out += [f"add chain {ref} {c.name}{c.spec()}" for c in chains]
            out += [f"add {c.kind} {ref} {c.name} {c.spec()}" for c in containers]
            out += [f"add rule {ref} {c.name} {r.text}" for c in chains for r in c.rules]
            for c in containers:
                for key, (value, comment) in sorted(c.elements.items()):
                    comment_text = f' comment "{comment}"' if comment is not None else ""
                    value_text = f" : {value}" if value else ""
                    out.append(f"add element {ref} {c.name} {{ {' . '.join(key)}{comment_text}{value_text} }}")
        return "\n".join(out) + "\n"

    def list_json(self, family: str = "ip", name: str = "kube-proxy") -> str:
        """`nft -j -t list table`: names, and sets' timeouts (what a proxier reads)."""
        table = self.tables[(family, name)]
        items: list[dict] = [{"metainfo": {"json_schema_version": 1}}, {"table": {"family": family, "name": name}}]
        for c in table.containers.values():
            body = {"family": family, "name": c.name, "table": name}
            if c.timeout is not None:
                body["timeout"] = c.timeout
            items.append({c.kind: body})
        items += [{"chain": {"family": family, "table": name, "name": c}} for c in table.chains]
        return json.dumps({"nftables": items})

    def empty_unreferenced_chains(self, family: str = "ip", name: str = "kube-proxy") -> set[str]:
        """Chains with no rules that nothing refers to (what stale-chain handling leaves for a while)."""
        table = self.tables[(family, name)]
        used = {t for c in table.chains.values() for r in c.rules for t in r.references()[0]}
        used |= {v.split()[-1] for m in table.containers.values() for v, _ in m.elements.values() if v}
        return {c.name for c in table.chains.values() if not c.rules and not c.base and c.name not in used}

    # -- tracing ------------------------------------------------------------------------------

    def trace(self, src: str, dst: str, *, dport: int, proto: str = "tcp", origin: str = "outside",
              local_addresses: Iterable[str] = (), affinity: Iterable[tuple[str, str]] = ()) -> Trace:
        """Where a new connection goes. origin "outside": it arrives at the node (from a pod or
        from another host); "node": the node itself sends it."""
        if origin not in ("outside", "node"):
            raise ValueError("origin is 'outside' or 'node'")
        self._local = frozenset(ipaddress.ip_address(a) for a in local_addresses)
        self._affinity = frozenset((s, str(ipaddress.ip_address(ip))) for s, ip in affinity)
        packet = _Packet(ipaddress.ip_address(src), ipaddress.ip_address(dst), proto, dport)
        outcomes: list[Outcome] = []
        for state, verdict in self._hook("prerouting" if origin == "outside" else "output", packet):
            if verdict:
                outcomes.append(self._outcome(state, verdict))
            elif origin == "outside" and state.dst in self._local:    # routed to this host
                outcomes += [self._outcome(s, v or "ACCEPT") for s, v in self._hook("input", state)]
            else:
                routed = self._hook("forward", state) if origin == "outside" else [(state, None)]
                for s, v in routed:
                    finished = [(s, v)] if v else self._hook("postrouting", s)
                    outcomes += [self._outcome(s2, v2 or "ACCEPT") for s2, v2 in finished]
        return Trace(tuple(outcomes))

    @staticmethod
    def _outcome(state: _Packet, verdict: str) -> Outcome:
        return Outcome(state.probability, verdict, state.dnat, state.masquerade, state.mark, state.rules,
                       state.updates)

    def _hook(self, hook: str, packet: _Packet) -> list[tuple[_Packet, str | None]]:
        """Run the base chains of `hook` in priority order; verdict DROP/REJECT, or None (on)."""
        chains = sorted((c for t in self.tables.values() for c in t.chains.values() if c.base and c.base[1] == hook),
                        key=lambda c: c.base[2])
        tables = {c.name: t for t in self.tables.values() for c in t.chains.values()}
        states: list[tuple[_Packet, str | None]] = [(packet, None)]
        for chain in chains:
            following: list[tuple[_Packet, str | None]] = []
            for state, verdict in states:
                if verdict:
                    following.append((state, verdict))
                    continue
                for s, v in self._walk(tables[chain.name], chain, state, 0, chain.base[0]):
                    following.append((s, v.upper() if v in ("drop", "reject") else None))
            states = following
        return states

    def _walk(self, table: Table, chain: Chain, packet: _Packet, depth: int, chain_type: str):
        """All branches through `chain`: (packet, verdict), verdict None when the chain ends or returns."""
        if depth > 16:
            raise FakeNftError(f"chain loop through {chain.name}")
        results: list[tuple[_Packet, str | None]] = []
        pending = [(packet, 0)]
        while pending:
            state, index = pending.pop()
            if index >= len(chain.rules):
                results.append((state, None))
                continue
            rule = chain.rules[index]
            for s, outcome in self._eval(table, chain, rule, state, chain_type):
                if outcome is None:            # no match, or matched without a verdict
                    pending.append((s, index + 1))
                    continue
                kind = outcome[0]
                if kind in ("jump", "goto"):
                    target = table.chains[outcome[1]]
                    for s2, v2 in self._walk(table, target, s, depth + 1, chain_type):
                        if v2 is None and kind == "jump":
                            pending.append((s2, index + 1))
                        elif v2 is None:        # goto: the called chain's end returns from this one
                            results.append((s2, None))
                        else:
                            results.append((s2, v2))
                elif kind == "return":
                    results.append((s, None))
                else:
                    results.append((s, kind))  # accept, drop, reject, nat
        return results

    def _eval(self, table: Table, chain: Chain, rule: Rule, packet: _Packet, chain_type: str):
        """Evaluate one rule: [(packet, None (no match, or no verdict) | verdict tuple)]."""
        state = packet
        for expr in rule.exprs:
            kind = expr[0]
            if kind == "ctstate":
                continue                        # traces are of new connections
            if kind == "addr":
                value = state.dst if expr[1] == "daddr" else state.src
                if any(value in net for net in expr[2]) == expr[3]:
                    return [(state, None)]
            elif kind == "lookup":
                value = str(state.dst if expr[1] == "daddr" else state.src)
                container = table.containers[expr[2]]
                if "dynamic" in container.flags:
                    present = (expr[2], value) in self._affinity
                else:
                    present = (value,) in container.elements
                if present == expr[3]:
                    return [(state, None)]
            elif kind == "dport":
                if state.proto != expr[1] or state.dport != expr[2]:
                    return [(state, None)]
            elif kind == "proto":
                if state.proto != expr[1]:
                    return [(state, None)]
            elif kind == "fib-local":
                if (state.src if expr[1] == "saddr" else state.dst) not in self._local:
                    return [(state, None)]
            elif kind == "mark-match":
                if state.mark & expr[1] != expr[2]:
                    return [(state, None)]
            elif kind == "mark-set":
                state = replace(state, mark=state.mark | expr[2] if expr[1] == "or" else state.mark ^ expr[2])
            elif kind == "update":
                state = replace(state, updates=state.updates + (expr[1],))
            elif kind == "vmap":
                values = {"daddr": str(state.dst), "proto": state.proto, "dport": str(state.dport)}
                element = table.containers[expr[2]].elements.get(tuple(values[f] for f in expr[1]))
                if element is None:
                    return [(state, None)]
                state = self._met(state, chain, rule)
                return [(state, _verdict(element[0].split(), expr[2]))]
            elif kind == "numgen":
                branches = []
                for n in range(expr[1]):
                    forked = replace(self._met(state, chain, rule), probability=state.probability / expr[1])
                    branches.append((forked, expr[2].get(n)))
                return branches
            elif kind == "dnat":
                if chain_type != "nat":
                    raise FakeNftError(f"dnat reached from a {chain_type} chain: {chain.name}")
                address = f"{expr[1]}:{expr[2]}"
                state = replace(self._met(state, chain, rule), dst=ipaddress.ip_address(expr[1]), dport=expr[2],
                                dnat=address)
                return [(state, ("nat",))]
            elif kind == "masquerade":
                if chain_type != "nat":
                    raise FakeNftError(f"masquerade reached from a {chain_type} chain: {chain.name}")
                return [(replace(self._met(state, chain, rule), masquerade=True), ("nat",))]
            elif kind in ("jump", "goto", "return", "drop", "reject", "accept"):
                return [(self._met(state, chain, rule), expr)]
            else:
                raise FakeNftError(f"expression {kind} not modelled")
        return [(self._met(state, chain, rule), None)]

    @staticmethod
    def _met(state: _Packet, chain: Chain, rule: Rule) -> _Packet:
        entry = f"{chain.name}: {rule.text}"
        return state if state.rules and state.rules[-1] == entry else replace(state, rules=state.rules + (entry,))


class FakeNftRunner:
    """Stands in for a NamespaceRunner: `nft -f -`, `nft -c -f -` and `nft -j -t list table` act on a FakeNft."""

    def __init__(self, fake: FakeNft | None = None):
        self.fake = fake or FakeNft()
        self.calls: list[tuple[list[str], str | None]] = []

    def run(self, args: list[str], input: str | None = None, check: bool = True,
            timeout: float | None = 120) -> subprocess.CompletedProcess:
        self.calls.append((list(args), input))
        if args[0] != "nft":
            raise FakeNftError(f"FakeNftRunner cannot run {args}")
        rest = args[1:]
        try:
            if rest in (["-f", "-"], ["-c", "-f", "-"]):
                self.fake.run(input or "", check=rest[0] == "-c")
                return subprocess.CompletedProcess(args, 0, "", "")
            if rest[:4] == ["-j", "-t", "list", "table"] and len(rest) == 6:
                if (rest[4], rest[5]) not in self.fake.tables:
                    raise FakeNftError(f"Error: No such file or directory\nlist table {rest[4]} {rest[5]}")
                return subprocess.CompletedProcess(args, 0, self.fake.list_json(rest[4], rest[5]), "")
        except FakeNftError as error:
            if check:
                raise CommandError(list(args), 1, str(error)) from None
            return subprocess.CompletedProcess(args, 1, "", str(error))
        raise FakeNftError(f"FakeNftRunner cannot run {args}")

    def transactions(self) -> list[str]:
        return [text for args, text in self.calls if args[1:] == ["-f", "-"]]
