"""kube-proxy's nftables mode: the table its proxier builds, and an applier for a node namespace.

The rendering follows pkg/proxy/nftables/proxier.go as of Kubernetes 1.33 (`setupNFTables`,
`syncProxyRules`, `writeServiceToEndpointRules`): the 1.31 layout with `filter-output-post-dnat` and
the `cluster-ips` set, partial syncs (kubernetes PR 126013, 1.31), map elements diffed by
`nftElementStorage` (PR 130119, 1.33) and base chains re-created once per start (PR 123162). So
`nft list table ip kube-proxy` inside an emulated node reads like it does on a real node: chain,
set and map names, hooks and priorities, rule text, element keys and comments; the unit tests
compare the rendering with kube-proxy's own TestOverallNFTablesRules. Where the packets go (kube-proxy's
pkg/proxy/nftables/README.md explains each hook choice; priorities as knftables writes them):

  pod / external packet                                          node's own packet
        │ prerouting                                                   │ output
        ├─ filter-prerouting  filter -110 ─ ct new: firewall-check     ├─ filter-output  filter -110 ─ ct new:
        │    ip daddr . meta l4proto . th dport vmap @firewall-ips     │    service-endpoints-check, firewall-check
        │    └─ firewall-<svc>: ip saddr != { sourceRanges } drop      │
        ├─ nat-prerouting  nat -100 ─ jump services ◄──────────────────┼─ nat-output  nat -100 ─ jump services
        │                                                              ├─ filter-output-post-dnat  filter -90 ─
        │  services: ip daddr . meta l4proto . th dport vmap @service-ips    ct new: cluster-ips-check
        │            ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
        │    ├─ ClusterIP ───────────────► service-<svc> / local-<svc> (internal policy)
        │    └─ NodePort, external IP, LB IP ► external-<svc>: mark or short-circuit ─► service-/local-
        │  service-/local-<svc>: ip saddr @affinity-<ep> goto endpoint-<ep> (ClientIP affinity)
        │                        numgen random mod N vmap { 0 : goto endpoint-<ep> , ... }
        │  endpoint-<ep>: hairpin ─► mark-for-masquerade; update @affinity-<ep> { ip saddr }; dnat to ip:port
        │ routing decision
        ├─ input ─ filter-input  filter -110 ─ ct new: nodeport-endpoints-check (@no-endpoint-nodeports),
        │                                               service-endpoints-check (@no-endpoint-services)
        └─ forward ─ filter-forward  filter -110 ─ ct new: service-endpoints-check,
                       cluster-ips-check: ip daddr @cluster-ips reject (unknown port of a ClusterIP),
                                          ip daddr { service CIDR } drop (unallocated ClusterIP)
  postrouting ─ nat-postrouting  nat 100 ─ jump masquerading: mark and 0x4000 == 0 return;
                                 mark set mark xor 0x4000; masquerade fully-random

The filter chains see destinations before DNAT at prerouting/output (so loadBalancerSourceRanges
can match the LoadBalancer IP) and after it at input/forward (so only packets that found no
endpoint are still addressed to a Service IP). `reject` is in input/forward/output, not prerouting,
because kernels before 5.9 refuse it there. The no-endpoint maps hold `goto reject-chain` (no
endpoints anywhere) or `drop` (a Local traffic policy and no endpoint on this node).

Choices where kube-proxy has options, fixed as the emulated cluster runs it (the same as the
iptables module's):
- `--nodeport-addresses primary`: NodePorts answer on the node's InternalIP only, so the
  `nodeport-ips` set holds the node IP and `services` matches `ip daddr @nodeport-ips` (not
  `fib daddr type local`; localhost NodePorts do not exist in nftables mode at all).
- `--detect-local-mode ClusterCIDR`: "from a pod" is `ip saddr <cluster CIDR>`.
- The masquerade mark as NewProxier formats it (`%#08x` of 1<<14: 0x00004000).
- The "drop traffic to unallocated ClusterIPs" rule is written for the cluster's service CIDR, as
  kube-proxy does once it knows the ServiceCIDRs (MultiCIDRServiceAllocator, GA in 1.33).
- Endpoint order: by "ip:port"; Services in name order (kube-proxy walks Go maps; ours must be
  byte-identical run to run).
- Each sync is ONE `nft -f -` transaction. kube-proxy deletes stale chains in a separate transaction
  at the start of a later sync; here that deletion is the first part of the later sync's only
  transaction. As in kube-proxy, a chain that stops being used is flushed at once and deleted by
  the first sync at least one second later (kernels before 6.2 notice a chain's last map reference
  going away only after a while).
- Like the iptables module, partial syncs do not list the kernel's table (kube-proxy runs
  `nft --json --terse list table` every sync, 13 s here at 10,000 Services; kubernetes issue 139513,
  and PR 139878 proposes the same as here): this proxier knows what it wrote, and the namespace is
  the testbed's own. Full syncs (the first, after a failure) list it, to find an earlier proxier's
  leftovers. A partial sync with nothing to write runs no `nft` at all.
- When an affinity timeout changes, the affinity sets are deleted and re-created: an `add set` with
  another timeout is silently ignored by the kernel (kube-proxy re-adds and keeps the old timeout).
  A map element whose value or comment changes is deleted and added (kube-proxy compares values
  only; the kernel keeps an old comment).
- The setup part of a full sync creates the same objects as setupNFTables, written declaration
  first (table, chains, sets and maps, then rules and elements) rather than interleaved.

At scale this is kube-proxy's ruleset, costs included: every Service chain's `numgen ... vmap { }`
is an anonymous set, and the kernel names each new anonymous set by scanning all sets of the table
(nf_tables_set_alloc_name), so building N Services costs O(N²) in the kernel (about 80 s for 10,000
here); and every `nft -f` of a rule or element loads the table's chains and sets into nft's cache
first, a few tenths of a second at 10,000 Services (kubernetes issues 139328, 139513; PR 140362
proposes fewer maps). The README's measurements and benchmarks/nftables_sync.py show both.

Not modelled: IPv6 (the emulation is IPv4-only), topology-aware hints (no zones), `--masquerade-all`,
health-check servers (kube-proxy's nftables mode writes no rules for them either), the conntrack
clean-up of stale UDP entries that kube-proxy does after a sync, metrics. The lb-algorithm
annotations do not apply: kube-proxy's nftables mode has only `numgen random`.

The parts: testbed/nftables/ruleset.py computes the desired table (pure), testbed/nftables/planner.py
the transaction of each sync (pure); this module runs them in a node's namespace and registers the mode.

`testbed render nftables` prints the desired state the way kube-proxy's unit tests compare it:
knftables' `Fake.Dump()` (add table, add chain, add set, add map, add rule, add element lines,
objects sorted by name). That text loads into an empty namespace with `nft -f`.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

from testbed.net.runner import CommandError, NamespaceRunner
from testbed.nftables.planner import KernelTable, SyncPlanner, Transaction
from testbed.nftables.ruleset import (CHAIN_NAME_BASE_LENGTH_MAX, FAMILY, STALE_CHAIN_DELAY, TABLE, TABLE_REF,
                                      NftablesRuleset, ServicePortState, affinity_set_name, build_ruleset,
                                      endpoint_chain_name, hash_and_truncate, masquerade_mark, render_nftables,
                                      service_chain_names)
from testbed.proxy.backend import Backend, ServiceKey, SyncResult, register
from testbed.proxy.model import NodeInfo, ServicePort

__all__ = ["CHAIN_NAME_BASE_LENGTH_MAX", "STALE_CHAIN_DELAY", "KernelTable", "NftablesProxier", "NftablesRuleset",
           "ServicePortState", "SyncPlanner", "Transaction", "affinity_set_name", "build_ruleset",
           "endpoint_chain_name", "hash_and_truncate", "masquerade_mark", "render_nftables", "service_chain_names"]


# ---------------------------------------------------------------------------------------------
# The applier


class NftablesProxier:
    """Keeps a node namespace's `ip kube-proxy` table in kube-proxy's layout, one `nft -f -` per sync."""

    def __init__(self, runner: NamespaceRunner, node: NodeInfo, *, masquerade_bit: int = 14,
                 clock: Callable[[], float] = time.monotonic, nft: str = "nft"):
        self.runner = runner
        self.node = node
        self.nft = nft
        self.clock = clock
        self.planner = SyncPlanner(node, masquerade_bit=masquerade_bit)

    def sync(self, ports: Sequence[ServicePort], changed: frozenset[ServiceKey] | None = None) -> SyncResult:
        started = time.perf_counter()
        seconds_list = 0.0
        kernel = None
        if self.planner.needs_full_sync(changed):
            list_started = time.perf_counter()
            kernel = self.read_table()
            seconds_list = time.perf_counter() - list_started
        try:
            transaction = self.planner.plan(ports, changed, self.clock(), kernel)
        except Exception:
            self.planner.failed()
            raise
        seconds_render = time.perf_counter() - started - seconds_list
        apply_started = time.perf_counter()
        if not transaction.empty:
            try:
                # No timeout: kube-proxy waits for nft however long a big transaction takes.
                self.runner.run([self.nft, "-f", "-"], input=transaction.text, timeout=None)
            except Exception:
                self.planner.failed()     # the next sync is a full one
                raise
        self.planner.applied(transaction)
        seconds_apply = time.perf_counter() - apply_started + seconds_list
        planner = self.planner
        return SyncResult(seconds_render, seconds_apply, planner.rule_count, transaction.rewritten, transaction.full,
                          transaction.rules_written,
                          {"chains": planner.chain_count, "elements": planner.element_count,
                           "affinity_sets": len(planner.affinity), "operations": transaction.operations,
                           "elements_written": transaction.elements_written,
                           "stale_chains_flushed": transaction.chains_flushed_stale,
                           "stale_chains_deleted": transaction.chains_deleted})

    def read_table(self) -> KernelTable:
        try:
            listing = self.runner.run([self.nft, "-j", "-t", "list", "table", FAMILY, TABLE])
        except CommandError as error:
            if "No such file or directory" in str(error):
                return KernelTable()
            raise
        return KernelTable.from_json(listing.stdout)

    def cleanup(self) -> None:
        """kube-proxy's CleanupLeftovers: delete the table (add first, so that it cannot fail)."""
        self.runner.run([self.nft, "-f", "-"], input=f"add table {TABLE_REF}\ndelete table {TABLE_REF}\n")
        self.planner.failed()

    def stop(self) -> None:
        pass  # nothing runs: the table stays in the node's namespace (and goes with it)


# ---------------------------------------------------------------------------------------------
# Registration


def _render(ports: Sequence[ServicePort], node: NodeInfo, layout=None) -> str:
    return render_nftables(ports, node)


register(Backend(
    mode="nftables",
    summary="kube-proxy's nftables mode (Kubernetes 1.31+): table `ip kube-proxy` with base chains at "
            "dstnat-10/dstnat/dstnat+10/srcnat, `service-ips`/`service-nodeports` verdict maps, hashed "
            "`service-`/`external-`/`endpoint-` chains, `numgen random mod N vmap`, per-endpoint affinity sets, "
            "masquerade mark and `masquerade fully-random`, traffic policies, no-endpoint reject, "
            "loadBalancerSourceRanges; one `nft -f -` transaction per sync with partial syncs (map elements "
            "diffed, stale chains flushed then deleted), in each node's namespace",
    render=_render,
    make_proxier=lambda ctx: NftablesProxier(ctx.runner, ctx.node),
    required_tools=("nft",),
    describe=lambda options: "nftables",
    state_command="nft list table ip kube-proxy",
))
