"""Syncs of kube-proxy's nftables table: what is in the kernel, and the one transaction per sync.

Pure bookkeeping, as syncProxyRules keeps it (nftElementStorage, activeChains/staleChains, the
affinity sets): `SyncPlanner.plan(ports, changed, now, kernel)` returns the `nft -f -` input of a
full or partial sync; the applier (testbed/backends/nftables.py) only runs it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from testbed.proxy.backend import ServiceKey
from testbed.proxy.model import NodeInfo, ServicePort

from .ruleset import (BASE_CHAINS, STALE_CHAIN_DELAY, STATIC_CONTAINERS, TABLE_COMMENT, TABLE_REF, Element,
                      ServicePortState, Context, port_key, static_chains, static_elements, is_affinity_set_name,
                      is_service_chain_name, masquerade_mark, service_port_state)

@dataclass(frozen=True)
class KernelTable:
    """What `nft -j -t list table ip kube-proxy` says (a full sync reads it for leftovers)."""
    chains: frozenset[str] = frozenset()
    sets: Mapping[str, int | None] = field(default_factory=dict)   # set name -> timeout (s)

    @classmethod
    def from_json(cls, text: str) -> "KernelTable":
        chains, sets = set(), {}
        for item in json.loads(text).get("nftables", ()):
            if "chain" in item:
                chains.add(item["chain"]["name"])
            elif "set" in item:
                sets[item["set"]["name"]] = item["set"].get("timeout")
        return cls(frozenset(chains), sets)


@dataclass(frozen=True)
class Transaction:
    """One sync's `nft -f -` input and what it does."""
    text: str
    full: bool
    rewritten: tuple[str, ...]      # "ns/name" of the Services whose chains were (re)written
    operations: int
    rules_written: int
    elements_written: int           # element adds and deletes
    chains_flushed_stale: int
    chains_deleted: int

    @property
    def empty(self) -> bool:
        return self.operations == 0


class SyncPlanner:
    """Keeps track of what this proxier has written and plans each sync's transaction (pure).

    This is the bookkeeping of syncProxyRules: kube-proxy's nftElementStorage (the map and set
    elements in the kernel, so that a sync writes only the difference), activeChains/staleChains,
    and the affinity sets. A full sync (`changed` None, the first sync, the first after `failed()`)
    re-creates the fixed objects and every Service's chains and empties the maps and sets before
    refilling them; a partial sync rewrites only the chains of the changed Services.

    The transaction, in order: (1) delete chains stale for a second or more, (2) full syncs: the
    fixed objects, (3) add and flush the chains of the rewritten Services, (4) flush chains no longer
    used, (5) element additions and deletions, (6) affinity sets, (7) the rewritten chains' rules,
    (8) delete affinity sets no longer used. Every reference a command needs exists by then, and
    everything a deletion needs unreferenced has been flushed before it.

    An element key that two Services claim (two Services may list the same externalIP and port)
    goes to the first in name order, in partial syncs as in full ones.
    """

    def __init__(self, node: NodeInfo, *, masquerade_bit: int = 14):
        self.ctx = Context(node, masquerade_mark(masquerade_bit))
        self.static_chains = static_chains(self.ctx)
        self.static_elements = static_elements(self.ctx)
        self.static_rules = sum(len(c.rules) for c in self.static_chains)
        self.base_chains_recreated = False     # kube-proxy's `flushed`: once per proxier lifetime
        self.port_states: dict[tuple, tuple[ServicePort, ServicePortState]] = {}   # memo, kept
        self._forget()

    def _forget(self) -> None:
        self.in_sync = False
        self.services: dict[ServiceKey, tuple[ServicePortState, ...]] = {}
        self.installed: dict[tuple[str, str], Element] = {}        # what the kernel's containers hold
        self.claims: dict[tuple[str, str], set[ServiceKey]] = {}    # element slot -> Services wanting it
        self.service_elements: dict[ServiceKey, dict[tuple[str, str], Element]] = {}
        self.affinity: dict[str, int | None] = {}                   # affinity set -> timeout, in the kernel
        self.stale: dict[str, float] = {}                           # flushed chain -> when
        self.rule_total = 0                                          # rules in the Services' chains
        self.chain_total = 0                                         # the Services' chains

    def failed(self) -> None:
        """The transaction did not apply, so nothing planned is true: forget it all (kube-proxy
        sets needFullSync and clears staleChains)."""
        self._forget()

    def applied(self, transaction: Transaction) -> None:
        self.in_sync = True
        self.base_chains_recreated = self.base_chains_recreated or transaction.full

    def needs_full_sync(self, changed: frozenset[ServiceKey] | None) -> bool:
        return not self.in_sync or changed is None

    # -- planning -----------------------------------------------------------------------------

    def plan(self, ports: Sequence[ServicePort], changed: frozenset[ServiceKey] | None, now: float,
             kernel: KernelTable | None = None) -> Transaction:
        """This sync's transaction; the bookkeeping assumes that it applies (else call failed()).
        A full sync needs `kernel`, what the table holds now. A partial sync looks only at the
        Services in `changed` (and at any it has never seen), so its cost does not grow with the
        number of unchanged Services."""
        full = self.needs_full_sync(changed)
        if full and kernel is None:
            raise ValueError("a full sync needs the kernel's table listing")
        groups: dict[ServiceKey, list[ServicePort]] = {}
        for port in ports:
            key = (port.namespace, port.name)
            if port.cluster_ip and (full or key in changed or key not in self.services):
                groups.setdefault(key, []).append(port)
        rewrite = sorted(groups)
        if full:
            recreate = not self.base_chains_recreated
            stale = {c: t for c, t in self.stale.items() if c in kernel.chains} if self.in_sync else {}
            self._forget()
            self.stale = stale
            self.affinity = {n: t for n, t in kernel.sets.items() if is_affinity_set_name(n)}
            gone: list[ServiceKey] = []
            chains_before = {c for c in kernel.chains if is_service_chain_name(c)}
            sets_before = set(self.affinity)
        else:
            recreate = False
            gone = sorted(k for k in changed if k not in groups and k in self.services)
            before = [p for k in (*rewrite, *gone) for p in self.services.get(k, ())]
            chains_before = {c.name for p in before for c in p.chains}
            sets_before = {a.name for p in before for a in p.affinity_sets}

        new_states = {k: tuple(self._port_state(p) for p in sorted(groups[k], key=port_key)) for k in rewrite}
        self._prune_memo(groups, gone, full)
        for key in gone:
            self._account(self.services.pop(key), ())
        for key, states in new_states.items():
            self._account(self.services.get(key, ()), states)
            self.services[key] = states
        chains = [c for k in rewrite for p in new_states[k] for c in p.chains]
        chain_names = {c.name for c in chains}
        wanted_sets = [a for k in rewrite for p in new_states[k] for a in p.affinity_sets]

        out: list[str] = []
        # (1) chains stale for long enough are deleted (kube-proxy does it in a transaction of its own)
        expired = sorted(c for c, flushed in self.stale.items()
                         if flushed <= now - STALE_CHAIN_DELAY and c not in chain_names)
        out += [f"delete chain {TABLE_REF} {c}" for c in expired]
        for chain in (*expired, *(chain_names & self.stale.keys())):
            del self.stale[chain]
        # (2) the fixed objects: setupNFTables
        if full:
            out += self._setup_commands(recreate)
        # (3) the rewritten Services' chains exist and are empty (ensureChain)
        for chain in chains:
            out += [chain.add(), chain.flush()]
        # (4) chains no longer used: flushed now, deleted by a later sync
        newly_stale = sorted(chains_before - chain_names - self.stale.keys() - set(expired))
        out += [f"flush chain {TABLE_REF} {c}" for c in newly_stale]
        self.stale.update(dict.fromkeys(newly_stale, now))
        # (5) map and set elements: the difference only
        element_lines = self._element_operations(rewrite, gone, new_states)
        out += element_lines
        # (6) affinity sets of the rewritten Services
        for wanted in wanted_sets:
            if self.affinity.get(wanted.name, wanted.timeout) not in (None, wanted.timeout):
                out.append(wanted.delete())   # the kernel ignores `add set` with another timeout
            out.append(wanted.add())
            self.affinity[wanted.name] = wanted.timeout
        # (7) the rewritten chains' rules
        rule_lines = [line for chain in chains for line in chain.rule_lines()]
        out += rule_lines
        # (8) affinity sets no longer used are deleted at once
        unused = sorted(sets_before - {a.name for a in wanted_sets})
        out += [f"delete set {TABLE_REF} {name}" for name in unused]
        for name in unused:
            self.affinity.pop(name, None)

        return Transaction("".join(line + "\n" for line in out), full,
                           tuple(f"{ns}/{name}" for ns, name in (*rewrite, *gone)), len(out),
                           len(rule_lines) + (self.static_rules if full else 0), len(element_lines),
                           len(newly_stale), len(expired))

    def _account(self, old: Sequence[ServicePortState], new: Sequence[ServicePortState]) -> None:
        self.rule_total += sum(p.rule_count for p in new) - sum(p.rule_count for p in old)
        self.chain_total += sum(len(p.chains) for p in new) - sum(len(p.chains) for p in old)

    def _port_state(self, port: ServicePort) -> ServicePortState:
        """Memoised service_port_state: a port that did not change keeps its state."""
        key = port_key(port)
        cached = self.port_states.get(key)
        if cached is not None and cached[0] == port:
            return cached[1]
        state = service_port_state(port, self.ctx)
        self.port_states[key] = (port, state)
        return state

    def _prune_memo(self, groups: Mapping[ServiceKey, list[ServicePort]], gone: Sequence[ServiceKey], full: bool) -> None:
        """Forget the states of ports that no longer exist (Services churn; the memo must not grow)."""
        current = {port_key(p) for ports in groups.values() for p in ports}
        dropped = [k for k in self.port_states
                   if (full or (k[0], k[1]) in groups or (k[0], k[1]) in gone) and k not in current]
        for key in dropped:
            del self.port_states[key]

    def _setup_commands(self, recreate_base_chains: bool) -> list[str]:
        out = [f'add table {TABLE_REF} {{ comment "{TABLE_COMMENT}" ; }}']
        if recreate_base_chains:
            # Once per proxier: re-create the base chains, so that a changed priority applies.
            for name, *_ in BASE_CHAINS:
                out += [f"add chain {TABLE_REF} {name}", f"delete chain {TABLE_REF} {name}"]
        for chain in self.static_chains:
            out += [chain.add(), chain.flush()]
        out += [c.add() for c in STATIC_CONTAINERS]
        out += [c.flush() for c in STATIC_CONTAINERS]     # reset: every element is written again
        for chain in self.static_chains:
            out += chain.rule_lines()
        out += [e.add() for e in self.static_elements]
        return out

    def _element_operations(self, rewrite: Sequence[ServiceKey], gone: Sequence[ServiceKey],
                            new_states: Mapping[ServiceKey, tuple[ServicePortState, ...]]) -> list[str]:
        """nftElementStorage.ensureElem and cleanupLeftoverKeys, for the Services being rewritten:
        elements that appear are added, those whose value changes deleted and added, those no
        Service wants any more deleted."""
        affected: dict[tuple[str, str], None] = {}      # ordered: each Service's new elements, then released
        for service in (*rewrite, *gone):
            wanted: dict[tuple[str, str], Element] = {}
            for state in new_states.get(service, ()):
                for element in state.elements:
                    wanted.setdefault(element.slot, element)
            affected.update(dict.fromkeys(wanted))
            affected.update(dict.fromkeys(sorted(self._claim(service, wanted))))
        lines: list[str] = []
        for slot in affected:
            owners = self.claims.get(slot)
            want = self.service_elements[min(owners)][slot] if owners else None
            have = self.installed.get(slot)
            if want == have:
                continue
            if have is not None:
                lines.append(have.delete())
            if want is not None:
                lines.append(want.add())
                self.installed[slot] = want
            else:
                del self.installed[slot]
        return lines

    def _claim(self, service: ServiceKey, wanted: dict[tuple[str, str], Element]) -> set[tuple[str, str]]:
        """Record the elements `service` wants now; returns the slots it no longer wants."""
        released = self.service_elements.pop(service, {}).keys() - wanted.keys()
        for slot in released:
            self.claims[slot].discard(service)
            if not self.claims[slot]:
                del self.claims[slot]
        for slot in wanted:
            self.claims.setdefault(slot, set()).add(service)
        if wanted:
            self.service_elements[service] = wanted
        return set(released)

    # -- what is there ------------------------------------------------------------------------

    @property
    def rule_count(self) -> int:
        return self.static_rules + self.rule_total

    @property
    def chain_count(self) -> int:
        return len(self.static_chains) + self.chain_total + len(self.stale)

    @property
    def element_count(self) -> int:
        return len(self.installed) + len(self.static_elements)
