"""A fake iptables for unit tests: applies iptables-restore input and traces packets through it.

Like Faucet's fakeoftable: the rules a backend renders are loaded into a small model of the
netfilter tables and the tests ask "where would this packet go?" instead of comparing text.
Only what kube-proxy's layout uses is understood; any other match, option or target is an error,
so a rendering mistake cannot silently pass.

    fake = FakeIptables()
    fake.restore(text, noflush=True)
    trace = fake.trace("10.244.1.9", "10.96.0.10", dport=80, hook="PREROUTING",
                       local_addresses={"172.18.0.11", "10.244.1.1"})
    trace.dnat_probabilities()   # {"10.244.0.5:80": 0.333..., ...}

Packet path modelled (new connections only, as the nat table sees them):
    PREROUTING: nat PREROUTING -> filter INPUT (destination local) or FORWARD -> nat POSTROUTING
    OUTPUT:     nat OUTPUT -> filter OUTPUT -> nat POSTROUTING
A `-m statistic` rule forks the trace in two branches (p and 1-p): a trace is a list of outcomes
whose probabilities sum to 1. `-m recent --rcheck` matches when (name, source) is in `recent`.
"""
from __future__ import annotations

import copy
import ipaddress
import shlex
import subprocess
from dataclasses import dataclass, field, replace
from typing import Iterable

BUILTIN_CHAINS = {"filter": ("INPUT", "FORWARD", "OUTPUT"),
                  "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")}
TERMINAL_TARGETS = {"ACCEPT", "DROP", "REJECT", "DNAT", "MASQUERADE", "RETURN"}
PROTOCOLS = {"tcp", "udp", "sctp"}


class FakeIptablesError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Match:
    kind: str            # "proto", "src", "dst", "dport", "addrtype-dst", "addrtype-src", "statistic",
                         # "recent-check", "recent-set", "mark", "ctstate", "comment"
    value: object
    negated: bool = False


@dataclass(frozen=True)
class Rule:
    text: str                       # the rule as written, after "-A CHAIN "
    matches: tuple[Match, ...]
    target: str | None              # None: a rule with no -j (counts as met, does nothing)
    target_args: tuple[tuple[str, str | None], ...] = ()

    def arg(self, name: str) -> str | None:
        return dict(self.target_args).get(name)


_MODULE_OPTIONS = {
    "comment": {"--comment": 1},
    "tcp": {"--dport": 1, "--sport": 1},
    "udp": {"--dport": 1, "--sport": 1},
    "sctp": {"--dport": 1, "--sport": 1},
    "addrtype": {"--dst-type": 1, "--src-type": 1},
    "statistic": {"--mode": 1, "--probability": 1},
    "recent": {"--name": 1, "--rcheck": 0, "--set": 0, "--seconds": 1, "--reap": 0, "--rsource": 0, "--mask": 1},
    "mark": {"--mark": 1},
    "conntrack": {"--ctstate": 1},
}
_TARGET_OPTIONS = {
    "DNAT": {"--to-destination": 1},
    "MARK": {"--or-mark": 1, "--xor-mark": 1, "--set-xmark": 1, "--set-mark": 1},
    "MASQUERADE": {"--random-fully": 0, "--random": 0},
    "REJECT": {"--reject-with": 1},
}


def _int(text: str) -> int:
    return int(text, 0)


def parse_rule(text: str) -> Rule:
    """Parse the part of a rule after `-A CHAIN`; unknown words are an error."""
    words = shlex.split(text)
    matches: list[Match] = []
    module: str | None = None
    target: str | None = None
    target_args: list[tuple[str, str | None]] = []
    modules: dict[str, dict] = {}
    negate = False
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(words):
            raise FakeIptablesError(f"missing value after {words[i - 1]!r} in {text!r}")
        value = words[i]
        i += 1
        return value

    while i < len(words):
        word = take()
        if word == "!":
            negate = True
            continue
        if target is not None:
            options = _TARGET_OPTIONS.get(target, {})
            if word not in options or negate:
                raise FakeIptablesError(f"unknown option {word!r} for target {target} in {text!r}")
            target_args.append((word, take() if options[word] else None))
            continue
        if word == "-m":
            module = take()
            if module not in _MODULE_OPTIONS:
                raise FakeIptablesError(f"unknown match module {module!r} in {text!r}")
            modules.setdefault(module, {})
        elif word == "-p":
            matches.append(Match("proto", take().lower(), negate))
        elif word in ("-s", "--source", "-d", "--destination"):
            kind = "src" if word in ("-s", "--source") else "dst"
            matches.append(Match(kind, ipaddress.ip_network(take(), strict=False), negate))
        elif word == "-j":
            target = take()
            if negate:
                raise FakeIptablesError(f"'!' before -j in {text!r}")
        elif module is not None and word in _MODULE_OPTIONS[module]:
            value = take() if _MODULE_OPTIONS[module][word] else None
            modules[module][word] = (value, negate)
            if module in ("tcp", "udp", "sctp") and word == "--dport":
                matches.append(Match("dport", int(value), negate))
            elif module in ("tcp", "udp", "sctp"):
                raise FakeIptablesError(f"{word} not modelled in {text!r}")
            elif module == "addrtype":
                if value != "LOCAL":
                    raise FakeIptablesError(f"address type {value!r} not modelled in {text!r}")
                matches.append(Match("addrtype-dst" if word == "--dst-type" else "addrtype-src", value, negate))
            elif module == "mark":
                mark, _, mask = value.partition("/")
                matches.append(Match("mark", (_int(mark), _int(mask) if mask else 0xFFFFFFFF), negate))
            elif module == "conntrack":
                matches.append(Match("ctstate", frozenset(value.split(",")), negate))
            elif negate:
                raise FakeIptablesError(f"'!' not modelled before {word} in {text!r}")
        else:
            raise FakeIptablesError(f"unknown option {word!r} in {text!r}")
        negate = False
    matches += _module_matches(modules, text)
    return Rule(text, tuple(matches), target, tuple(target_args))


def _module_matches(modules: dict[str, dict], text: str) -> list[Match]:
    """Matches that need several options of one module (statistic, recent, comment)."""
    found: list[Match] = []
    if "statistic" in modules:
        options = modules["statistic"]
        if options.get("--mode", (None,))[0] != "random" or "--probability" not in options:
            raise FakeIptablesError(f"only -m statistic --mode random --probability is modelled: {text!r}")
        found.append(Match("statistic", float(options["--probability"][0])))
    if "recent" in modules:
        options = modules["recent"]
        name = options.get("--name", (None,))[0]
        if not name or ("--rcheck" in options) == ("--set" in options):
            raise FakeIptablesError(f"-m recent needs --name and one of --rcheck/--set: {text!r}")
        found.append(Match("recent-check" if "--rcheck" in options else "recent-set", name))
    if "comment" in modules:
        found.append(Match("comment", modules["comment"]["--comment"][0]))
    return found


# ---------------------------------------------------------------------------------------------
# Tracing


@dataclass(frozen=True)
class Outcome:
    """One way a packet can go, with its probability."""
    probability: float
    verdict: str                     # "ACCEPT" (accepted or fell through), "DROP" or "REJECT"
    dnat: str | None                 # "ip:port" the destination was rewritten to
    masquerade: bool                 # MASQUERADE hit in nat POSTROUTING
    mark: int
    rules: tuple[str, ...]           # "table CHAIN: rule" of every rule the packet matched
    recent_set: tuple[str, ...] = ()

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
class _State:
    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    proto: str
    dport: int
    probability: float = 1.0
    mark: int = 0
    dnat: str | None = None
    masquerade: bool = False
    ctstate: frozenset[str] = frozenset({"NEW"})
    rules: tuple[str, ...] = ()
    recent_set: tuple[str, ...] = ()


@dataclass
class FakeIptables:
    """Tables -> chains -> rules, with iptables-restore semantics (atomic per COMMIT)."""
    tables: dict[str, dict[str, list[Rule]]] = field(default_factory=lambda: {
        t: {c: [] for c in chains} for t, chains in BUILTIN_CHAINS.items()})
    restores: list[str] = field(default_factory=list)

    # -- loading ------------------------------------------------------------------------------

    def restore(self, text: str, *, noflush: bool = True) -> None:
        self.restores.append(text)
        table: str | None = None
        work: dict[str, list[Rule]] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                if line.startswith("*"):
                    table = line[1:]
                    if table not in self.tables:
                        raise FakeIptablesError(f"unknown table {table}")
                    work = copy.deepcopy(self.tables[table])
                    if not noflush:
                        work = {c: [] for c in BUILTIN_CHAINS[table]}
                elif table is None:
                    raise FakeIptablesError("rule outside a table")
                elif line == "COMMIT":
                    self._check_targets(table, work)
                    self.tables[table] = work
                    table = None
                elif line.startswith(":"):
                    name = line[1:].split()[0]
                    if name not in BUILTIN_CHAINS[table]:
                        work[name] = []  # create, or flush an existing chain
                else:
                    self._command(table, work, line)
            except FakeIptablesError as error:
                raise FakeIptablesError(f"line {number}: {raw!r}: {error}") from None
        if table is not None:
            raise FakeIptablesError(f"table {table} has no COMMIT")

    def _command(self, table: str, work: dict[str, list[Rule]], line: str) -> None:
        op, chain, *rest = line.split(" ", 2)
        spec = rest[0] if rest else ""
        if chain not in work:
            raise FakeIptablesError(f"no chain {chain} in {table}")
        if op == "-A":
            work[chain].append(self._checked(table, work, spec))
        elif op == "-I":
            position = 1
            first, _, remainder = spec.partition(" ")
            if first.isdigit():
                position, spec = int(first), remainder
            work[chain].insert(position - 1, self._checked(table, work, spec))
        elif op == "-D":
            wanted = shlex.split(spec)
            for index, rule in enumerate(work[chain]):
                if shlex.split(rule.text) == wanted:
                    del work[chain][index]
                    return
            raise FakeIptablesError(f"no such rule in {chain}: {spec}")
        elif op == "-X":
            if chain in BUILTIN_CHAINS[table]:
                raise FakeIptablesError(f"cannot delete built-in chain {chain}")
            if work[chain]:
                raise FakeIptablesError(f"chain {chain} is not empty")
            users = [c for c, rules in work.items() if any(r.target == chain for r in rules)]
            if users:
                raise FakeIptablesError(f"chain {chain} is referenced by {users}")
            del work[chain]
        elif op == "-F":
            work[chain] = []
        else:
            raise FakeIptablesError(f"unknown command {op}")

    def _checked(self, table: str, work: dict[str, list[Rule]], spec: str) -> Rule:
        rule = parse_rule(spec)
        if rule.target is not None and rule.target not in work and rule.target not in TERMINAL_TARGETS | {"MARK"}:
            raise FakeIptablesError(f"jump to unknown chain {rule.target}")
        if rule.target in ("DNAT", "MASQUERADE") and table != "nat":
            raise FakeIptablesError(f"{rule.target} only in the nat table")
        return rule

    @staticmethod
    def _check_targets(table: str, work: dict[str, list[Rule]]) -> None:
        for chain, rules in work.items():
            for rule in rules:
                if rule.target and rule.target not in work and rule.target not in TERMINAL_TARGETS | {"MARK"}:
                    raise FakeIptablesError(f"{chain} jumps to deleted chain {rule.target}")

    def save(self) -> str:
        """iptables-save-like text (user chains sorted by name, rules as written)."""
        out: list[str] = []
        for table, chains in self.tables.items():
            out.append(f"*{table}")
            out += [f":{c} ACCEPT [0:0]" for c in BUILTIN_CHAINS[table]]
            out += [f":{c} - [0:0]" for c in sorted(chains) if c not in BUILTIN_CHAINS[table]]
            for chain in (*BUILTIN_CHAINS[table], *sorted(c for c in chains if c not in BUILTIN_CHAINS[table])):
                out += [f"-A {chain} {rule.text}" for rule in chains[chain]]
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    def chains(self, table: str) -> set[str]:
        return set(self.tables[table])

    def rules(self, table: str, chain: str) -> list[str]:
        return [r.text for r in self.tables[table][chain]]

    # -- tracing ------------------------------------------------------------------------------

    def trace(self, src: str, dst: str, *, dport: int, proto: str = "tcp", hook: str = "PREROUTING",
              local_addresses: Iterable[str] = (), recent: Iterable[tuple[str, str]] = ()) -> Trace:
        if hook not in ("PREROUTING", "OUTPUT"):
            raise ValueError("hook must be PREROUTING or OUTPUT")
        local = frozenset(ipaddress.ip_address(a) for a in local_addresses)
        self._local, self._recent = local, frozenset(recent)
        start = _State(ipaddress.ip_address(src), ipaddress.ip_address(dst), proto.lower(), dport)
        outcomes: list[Outcome] = []
        for state, verdict in self._walk("nat", hook, start, 0):
            if verdict in ("DROP", "REJECT"):
                outcomes.append(self._outcome(state, verdict))
                continue
            delivered_locally = hook == "PREROUTING" and state.dst in local
            filter_chain = "OUTPUT" if hook == "OUTPUT" else ("INPUT" if delivered_locally else "FORWARD")
            filtered = replace(state, ctstate=state.ctstate | ({"DNAT"} if state.dnat else set()))
            for state2, verdict2 in self._walk("filter", filter_chain, filtered, 0):
                if verdict2 in ("DROP", "REJECT"):
                    outcomes.append(self._outcome(state2, verdict2))
                elif delivered_locally:
                    outcomes.append(self._outcome(state2, "ACCEPT"))
                else:
                    for state3, _ in self._walk("nat", "POSTROUTING", state2, 0):
                        outcomes.append(self._outcome(state3, "ACCEPT"))
        return Trace(tuple(outcomes))

    @staticmethod
    def _outcome(state: _State, verdict: str) -> Outcome:
        return Outcome(state.probability, verdict, state.dnat, state.masquerade, state.mark,
                       state.rules, state.recent_set)

    def _walk(self, table: str, chain: str, state: _State, start: int, depth: int = 0) -> list[tuple[_State, str | None]]:
        """All branches through `chain` from rule `start`: (state, verdict), verdict None = returned."""
        if depth > 32:
            raise FakeIptablesError(f"chain loop through {chain}")
        rules = self.tables[table][chain]
        for index in range(start, len(rules)):
            rule = rules[index]
            branches = self._match(rule, state)
            if len(branches) == 2:  # statistic: fork
                (p_yes, _), (p_no, _) = branches
                return (self._apply(table, chain, index, rule, replace(state, probability=state.probability * p_yes), depth)
                        + self._walk(table, chain, replace(state, probability=state.probability * p_no), index + 1, depth))
            if branches[0][1]:
                return self._apply(table, chain, index, rule, state, depth)
        return [(state, None)]

    def _apply(self, table: str, chain: str, index: int, rule: Rule, state: _State, depth: int):
        state = replace(state, rules=state.rules + (f"{table} {chain}: {rule.text}",))
        recent = [m.value for m in rule.matches if m.kind == "recent-set"]
        if recent:
            state = replace(state, recent_set=state.recent_set + tuple(recent))
        target = rule.target
        if target is None:
            return self._walk(table, chain, state, index + 1, depth)
        if target == "RETURN":
            return [(state, None)]
        if target in ("ACCEPT", "DROP", "REJECT"):
            return [(state, target)]
        if target == "MARK":
            return self._walk(table, chain, replace(state, mark=self._marked(state.mark, rule)), index + 1, depth)
        if target == "DNAT":
            address = rule.arg("--to-destination")
            ip, _, port = address.rpartition(":")
            return [(replace(state, dst=ipaddress.ip_address(ip), dport=int(port), dnat=address), "DNAT")]
        if target == "MASQUERADE":
            return [(replace(state, masquerade=True), "MASQUERADE")]
        results: list[tuple[_State, str | None]] = []
        for sub_state, verdict in self._walk(table, target, state, 0, depth + 1):
            if verdict is None:
                results += self._walk(table, chain, sub_state, index + 1, depth)
            else:
                results.append((sub_state, verdict))
        return results

    @staticmethod
    def _marked(mark: int, rule: Rule) -> int:
        for option, value in rule.target_args:
            if option == "--or-mark":
                mark |= _int(value)
            elif option == "--xor-mark":
                mark ^= _int(value)
            elif option in ("--set-xmark", "--set-mark"):
                bits, _, mask = value.partition("/")
                keep = ~(_int(mask) if mask else 0xFFFFFFFF) & 0xFFFFFFFF
                mark = (mark & keep) ^ _int(bits) if option == "--set-xmark" else (mark & keep) | _int(bits)
        return mark

    def _match(self, rule: Rule, state: _State) -> list[tuple[float, bool]]:
        """[(1.0, matched)] or, for a statistic rule that otherwise matches, [(p, True), (1-p, False)]."""
        fork = None
        for m in rule.matches:
            if m.kind == "statistic":
                fork = m.value
                continue
            if self._test(m, state) == m.negated:
                return [(1.0, False)]
        if fork is None:
            return [(1.0, True)]
        return [(fork, True), (1.0 - fork, False)]

    def _test(self, m: Match, state: _State) -> bool:
        if m.kind == "proto":
            return state.proto == m.value
        if m.kind == "src":
            return state.src in m.value
        if m.kind == "dst":
            return state.dst in m.value
        if m.kind == "dport":
            return state.dport == m.value
        if m.kind == "addrtype-dst":
            return state.dst in self._local
        if m.kind == "addrtype-src":
            return state.src in self._local
        if m.kind == "mark":
            value, mask = m.value
            return state.mark & mask == value
        if m.kind == "ctstate":
            return bool(state.ctstate & m.value)
        if m.kind == "recent-check":
            return (m.value, str(state.src)) in self._recent
        if m.kind in ("recent-set", "comment"):
            return True
        raise FakeIptablesError(f"match {m.kind} not modelled")


class FakeIptablesRunner:
    """Stands in for a NamespaceRunner: iptables-restore/-save commands act on a FakeIptables."""

    def __init__(self, fake: FakeIptables | None = None):
        self.fake = fake or FakeIptables()
        self.calls: list[tuple[list[str], str | None]] = []

    def run(self, args: list[str], input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        self.calls.append((list(args), input))
        program = args[0]
        if program.endswith("-restore"):
            self.fake.restore(input or "", noflush="--noflush" in args)
            return subprocess.CompletedProcess(args, 0, "", "")
        if program.endswith("-save"):
            return subprocess.CompletedProcess(args, 0, self.fake.save(), "")
        raise FakeIptablesError(f"FakeIptablesRunner cannot run {args}")

    def restore_inputs(self) -> list[str]:
        return [text for args, text in self.calls if args[0].endswith("-restore")]
