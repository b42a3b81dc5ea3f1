"""kube-proxy's iptables mode: the rules its proxier writes, and an applier for a node namespace.

The rendering follows pkg/proxy/iptables/proxier.go of Kubernetes 1.29-1.31 line by line (chain
names, rule order, argument order, comments, probabilities), so that `iptables-save` inside an
emulated node reads like it does on a real node. Where the packets go:

    pod/external packet ─► nat PREROUTING ─┐                      ┌─► filter INPUT (dst is local)
    node's own packet ───► nat OUTPUT ─────┤                      │     KUBE-FIREWALL, KUBE-PROXY-FIREWALL,
                                           ▼                      │     KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES
       KUBE-SERVICES: ClusterIP / external IP / LB IP ─► KUBE-SVC-/KUBE-SVL-/KUBE-EXT-/KUBE-FW-
         last rule: -d <node IP> ─► KUBE-NODEPORTS ─► KUBE-EXT-                │
       KUBE-SVC-/SVL-: -m statistic (1/n, 1/(n-1), ..., last unconditional) ─► KUBE-SEP-: DNAT
                                           │                      ├─► filter FORWARD (routed on)
                                           └──── DNAT done ───────┘     KUBE-PROXY-FIREWALL, KUBE-FORWARD,
                                                                         KUBE-SERVICES, KUBE-EXTERNAL-SERVICES
    nat POSTROUTING ─► KUBE-POSTROUTING: packets with the KUBE-MARK-MASQ bit ─► MASQUERADE --random-fully

The filter table only rejects or drops: Service ports without endpoints (REJECT), Local traffic
policies without local endpoints (DROP), LoadBalancer traffic refused by loadBalancerSourceRanges.

Choices where kube-proxy has options, fixed here the way the emulated cluster runs it:
- `--nodeport-addresses primary` (the 1.29+ recommended setting): NodePorts answer on the node's
  InternalIP only, so KUBE-SERVICES ends with `-d <node IP> -j KUBE-NODEPORTS` rather than
  `-m addrtype --dst-type LOCAL`. Consequently localhost NodePorts are off and, as in kube-proxy,
  KUBE-FIREWALL gets no rule (the chain exists because INPUT/OUTPUT jump to it).
- `--detect-local-mode ClusterCIDR`: "from a pod" is `-s <cluster CIDR>`.
- iptables >= 1.6.2, so MASQUERADE gets `--random-fully`; nf_conntrack_tcp_be_liberal is off, so
  KUBE-FORWARD drops ctstate INVALID; no nfacct counters (kube-proxy adds them only for metrics).
- The masquerade mark is written as kube-proxy's NewProxier formats it (`%#08x`: 0x00004000);
  iptables-save shows it as 0x4000. kube-proxy writes hairpin sources as `-s <ip>` (saved as /32).
- Endpoint order: by "ip:port", as kube-proxy's endpoints cache keeps it; services in name order
  (kube-proxy walks a Go map, so its order varies; ours must be byte-identical run to run).

Not modelled: IPv6, topology-aware hints (no zones in the emulation), KUBE-PROXY-CANARY (kube-proxy's
monitor for external flushes), `--masquerade-all`. The lb-algorithm/lb-weights annotations do not
apply: kube-proxy's iptables mode has only the uniform random choice.

The jump rules from the built-in chains are not part of kube-proxy's iptables-restore input (it
adds them one by one with `iptables -I`); here they are `-I` lines in the same restore input, in
kube-proxy's order, so one restore builds the whole node. `IptablesProxier` includes only the ones
that are missing, as kube-proxy's EnsureRule does.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from testbed.net.runner import NamespaceRunner
from testbed.proxy.backend import Backend, BackendOption, ServiceKey, SyncResult, register
from testbed.proxy.model import Endpoint, NodeInfo, ServicePort
from testbed.proxy.topology import (EndpointCategories, categorize_endpoints, externally_accessible,
                                    uses_cluster_endpoints, uses_local_endpoints)

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_FIREWALL = "KUBE-FIREWALL"

SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, FW_PREFIX, SEP_PREFIX = (
    "KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")
SERVICE_CHAIN_PREFIXES = (SVC_PREFIX, SVL_PREFIX, SEP_PREFIX, FW_PREFIX, EXT_PREFIX)

FILTER_TOP_CHAINS = (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS,
                     KUBE_PROXY_FIREWALL, KUBE_FIREWALL)
NAT_TOP_CHAINS = (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ)

# Above this many endpoints kube-proxy drops the per-endpoint comments to keep the ruleset small.
LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000
NODEPORTS_COMMENT = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"'


# ---------------------------------------------------------------------------------------------
# Names


def port_proto_hash(service_port_name: str, protocol: str, endpoint: str = "") -> str:
    """First 16 characters of base32(sha256(...)): chain names must stay within 28 characters."""
    digest = hashlib.sha256((service_port_name + protocol + endpoint).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


@dataclass(frozen=True)
class ServiceChainNames:
    cluster: str   # KUBE-SVC-: endpoints for Cluster traffic policy
    local: str     # KUBE-SVL-: endpoints on this node, for Local traffic policy
    external: str  # KUBE-EXT-: NodePort / external IP / LB traffic, before the policy chain
    firewall: str  # KUBE-FW-: loadBalancerSourceRanges


def service_chain_names(port: ServicePort) -> ServiceChainNames:
    suffix = port_proto_hash(port.service_port_name, port.protocol.lower())
    return ServiceChainNames(SVC_PREFIX + suffix, SVL_PREFIX + suffix, EXT_PREFIX + suffix,
                             FW_PREFIX + suffix)


def endpoint_chain_name(port: ServicePort, endpoint: Endpoint) -> str:
    return SEP_PREFIX + port_proto_hash(port.service_port_name, port.protocol.lower(), endpoint.address)


def is_service_chain_name(chain: str) -> bool:
    return chain.startswith(SERVICE_CHAIN_PREFIXES)


def probability(n: int) -> str:
    """kube-proxy's computeProbability: rule i of n matches with 1/(n-i), printed "%0.10f"."""
    return f"{1.0 / n:0.10f}"


def masquerade_mark(bit: int) -> str:
    """Go's fmt.Sprintf("%#08x", 1<<bit): zero padding to 8 digits after the 0x."""
    return f"0x{1 << bit:08x}"


# ---------------------------------------------------------------------------------------------
# Jumps from the built-in chains


@dataclass(frozen=True)
class JumpRule:
    """One of kube-proxy's iptablesJumpChains (or kubelet's KUBE-FIREWALL jumps)."""
    table: str
    target: str
    source: str
    comment: str = ""
    extra_args: tuple[str, ...] = ()

    def spec(self) -> str:
        args = list(self.extra_args)
        if self.comment:
            args += ["-m", "comment", "--comment", f'"{self.comment}"']
        return " ".join([*args, "-j", self.target])

    def insert_line(self) -> str:
        """kube-proxy's EnsureRule(Prepend, ...): insert at the top of the built-in chain."""
        return f"-I {self.source} {self.spec()}"


_NEW = ("-m", "conntrack", "--ctstate", "NEW")
JUMP_RULES: tuple[JumpRule, ...] = (
    JumpRule("filter", KUBE_EXTERNAL_SERVICES, "INPUT", "kubernetes externally-visible service portals", _NEW),
    JumpRule("filter", KUBE_EXTERNAL_SERVICES, "FORWARD", "kubernetes externally-visible service portals", _NEW),
    JumpRule("filter", KUBE_NODEPORTS, "INPUT", "kubernetes health check service ports"),
    JumpRule("filter", KUBE_SERVICES, "FORWARD", "kubernetes service portals", _NEW),
    JumpRule("filter", KUBE_SERVICES, "OUTPUT", "kubernetes service portals", _NEW),
    JumpRule("filter", KUBE_FORWARD, "FORWARD", "kubernetes forwarding rules"),
    JumpRule("filter", KUBE_PROXY_FIREWALL, "INPUT", "kubernetes load balancer firewall", _NEW),
    JumpRule("filter", KUBE_PROXY_FIREWALL, "OUTPUT", "kubernetes load balancer firewall", _NEW),
    JumpRule("filter", KUBE_PROXY_FIREWALL, "FORWARD", "kubernetes load balancer firewall", _NEW),
    JumpRule("nat", KUBE_SERVICES, "OUTPUT", "kubernetes service portals"),
    JumpRule("nat", KUBE_SERVICES, "PREROUTING", "kubernetes service portals"),
    JumpRule("nat", KUBE_POSTROUTING, "POSTROUTING", "kubernetes postrouting rules"),
    # kubelet's duplicates (iptablesKubeletJumpChains), ensured by kube-proxy too
    JumpRule("filter", KUBE_FIREWALL, "INPUT"),
    JumpRule("filter", KUBE_FIREWALL, "OUTPUT"),
)


# ---------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class ServicePortRules:
    """What one Service port contributes; `chains`/`chain_rules` are what a partial sync skips."""
    service: str                    # "ns/name": kube-proxy tracks changes per Service
    filter_rules: tuple[str, ...]
    entry_rules: tuple[str, ...]    # nat KUBE-SERVICES / KUBE-NODEPORTS rules, always rewritten
    chains: tuple[str, ...]         # nat KUBE-EXT/FW/SVC/SVL/SEP chains of this port
    chain_rules: tuple[str, ...]


@dataclass(frozen=True)
class _Context:
    node: NodeInfo
    mark: str
    large_cluster: bool

    def comment(self, text: str) -> list[str]:
        """appendServiceCommentLocked: per-endpoint comments vanish in large clusters."""
        return [] if self.large_cluster else ["-m", "comment", "--comment", text]


def _line(*parts: str | Sequence[str]) -> str:
    words: list[str] = []
    for part in parts:
        words.extend([part] if isinstance(part, str) else part)
    return " ".join(words)


@dataclass(frozen=True)
class _PortPlan:
    """The decisions syncProxyRules makes for one Service port before writing any rule."""
    names: ServiceChainNames
    endpoints: EndpointCategories
    internal_chain: str          # where ClusterIP traffic goes (SVC, or SVL for internal Local)
    external_policy_chain: str   # where KUBE-EXT ends (SVC, or SVL for external Local)
    has_internal: bool
    has_external: bool
    uses_external_chain: bool
    uses_fw_chain: bool
    internal_verdict: tuple[str, str] = ("", "")  # (target, comment) in filter when not has_internal
    external_verdict: tuple[str, str] = ("", "")

    @property
    def has_endpoints(self) -> bool:
        return self.endpoints.has_any

    @property
    def load_balancer_chain(self) -> str:
        return self.names.firewall if self.uses_fw_chain else self.names.external


def _plan(port: ServicePort, node_name: str) -> _PortPlan:
    names, cats = service_chain_names(port), categorize_endpoints(port, node_name)
    has_endpoints, has_local = cats.has_any, bool(cats.local)
    has_internal = has_endpoints and (has_local or not port.internal_policy_local)
    has_external = has_endpoints and (has_local or not port.external_policy_local)
    if not has_endpoints:
        no_endpoints = ("REJECT", f'"{port.service_port_name} has no endpoints"')
        internal_verdict = external_verdict = no_endpoints
    else:
        no_local = ("DROP", f'"{port.service_port_name} has no local endpoints"')
        internal_verdict = ("", "") if has_internal else no_local
        external_verdict = ("", "") if has_external else no_local
    return _PortPlan(
        names, cats,
        internal_chain=names.local if port.internal_policy_local else names.cluster,
        external_policy_chain=names.local if port.external_policy_local else names.cluster,
        has_internal=has_internal, has_external=has_external,
        uses_external_chain=has_endpoints and externally_accessible(port),
        uses_fw_chain=has_endpoints and bool(port.load_balancer_ips) and bool(port.load_balancer_source_ranges),
        internal_verdict=internal_verdict, external_verdict=external_verdict)


def _service_port_rules(port: ServicePort, ctx: _Context) -> ServicePortRules:
    """One iteration of syncProxyRules' per-service loop."""
    plan = _plan(port, ctx.node.name)
    filter_rules, entry_rules = _capture_rules(port, plan)
    chains, chain_rules = _chain_rules(port, plan, ctx)
    return ServicePortRules(f"{port.namespace}/{port.name}", tuple(filter_rules), tuple(entry_rules),
                            tuple(chains), tuple(chain_rules))


def _capture_rules(port: ServicePort, plan: _PortPlan) -> tuple[list[str], list[str]]:
    """Filter-table verdicts, and the nat KUBE-SERVICES / KUBE-NODEPORTS rules that capture the
    Service's addresses, in kube-proxy's order."""
    name, proto, names = port.service_port_name, port.protocol.lower(), plan.names
    match = ["-m", proto, "-p", proto]
    internal_target, internal_comment = plan.internal_verdict
    external_target, external_comment = plan.external_verdict
    filter_rules: list[str] = []
    entry: list[str] = []
    cluster_ip = [*match, "-d", port.cluster_ip, "--dport", str(port.port)]
    if plan.has_internal:
        entry.append(_line("-A", KUBE_SERVICES, "-m", "comment", "--comment", f'"{name} cluster IP"',
                           cluster_ip, "-j", plan.internal_chain))
    else:
        filter_rules.append(_line("-A", KUBE_SERVICES, "-m", "comment", "--comment", internal_comment,
                                  cluster_ip, "-j", internal_target))
    for ip in port.external_ips:
        dest = [*match, "-d", ip, "--dport", str(port.port)]
        if plan.has_endpoints:
            entry.append(_line("-A", KUBE_SERVICES, "-m", "comment", "--comment", f'"{name} external IP"',
                               dest, "-j", names.external))
        if not plan.has_external:
            filter_rules.append(_line("-A", KUBE_EXTERNAL_SERVICES, "-m", "comment", "--comment",
                                      external_comment, dest, "-j", external_target))
    for ip in port.load_balancer_ips:
        dest = [*match, "-d", ip, "--dport", str(port.port)]
        if plan.has_endpoints:
            entry.append(_line("-A", KUBE_SERVICES, "-m", "comment", "--comment", f'"{name} loadbalancer IP"',
                               dest, "-j", plan.load_balancer_chain))
        if plan.uses_fw_chain:
            filter_rules.append(_line("-A", KUBE_PROXY_FIREWALL, "-m", "comment", "--comment",
                                      f'"{name} traffic not accepted by {names.firewall}"', dest, "-j", "DROP"))
    if not plan.has_external:
        for ip in port.load_balancer_ips:
            filter_rules.append(_line("-A", KUBE_EXTERNAL_SERVICES, "-m", "comment", "--comment",
                                      external_comment, match, "-d", ip, "--dport", str(port.port),
                                      "-j", external_target))
    if port.node_port:
        if plan.has_endpoints:
            entry.append(_line("-A", KUBE_NODEPORTS, "-m", "comment", "--comment", name, match,
                               "--dport", str(port.node_port), "-j", names.external))
        if not plan.has_external:
            filter_rules.append(_line("-A", KUBE_EXTERNAL_SERVICES, "-m", "comment", "--comment",
                                      external_comment, "-m", "addrtype", "--dst-type", "LOCAL", match,
                                      "--dport", str(port.node_port), "-j", external_target))
    if port.health_check_node_port:
        filter_rules.append(_line("-A", KUBE_NODEPORTS, "-m", "comment", "--comment",
                                  f'"{name} health check node port"', "-m", "tcp", "-p", "tcp",
                                  "--dport", str(port.health_check_node_port), "-j", "ACCEPT"))
    return filter_rules, entry


def _chain_rules(port: ServicePort, plan: _PortPlan, ctx: _Context) -> tuple[list[str], list[str]]:
    """The Service's own nat chains (what a partial sync skips when the Service is unchanged)."""
    name, proto, names, cats = port.service_port_name, port.protocol.lower(), plan.names, plan.endpoints
    match = ["-m", proto, "-p", proto]
    chains: list[str] = []
    rules: list[str] = []
    if plan.has_internal:
        # Masquerade off-cluster traffic to the VIP: it may have been routed here from outside.
        rules.append(_line("-A", plan.internal_chain, "-m", "comment", "--comment", f'"{name} cluster IP"',
                           match, "-d", port.cluster_ip, "--dport", str(port.port),
                           "!", "-s", ctx.node.cluster_cidr, "-j", KUBE_MARK_MASQ))
    if plan.uses_external_chain:
        chains.append(names.external)
        rules += _external_chain_rules(port, names, plan.external_policy_chain, plan.has_external, ctx)
    if plan.uses_fw_chain:
        chains.append(names.firewall)
        rules += _firewall_chain_rules(port, names, ctx)
    if cats.cluster and uses_cluster_endpoints(port):
        chains.append(names.cluster)
        rules += _dispatch_rules(port, names.cluster, cats.cluster, ctx)
    if cats.local and uses_local_endpoints(port):
        chains.append(names.local)
        rules += _dispatch_rules(port, names.local, cats.local, ctx)
    for endpoint in cats.reachable:
        chain = endpoint_chain_name(port, endpoint)
        chains.append(chain)
        head = ["-A", chain, *ctx.comment(name)]
        rules.append(_line(head, "-s", endpoint.ip, "-j", KUBE_MARK_MASQ))  # hairpin
        affinity = ["-m", "recent", "--name", chain, "--set"] if port.affinity_timeout is not None else []
        rules.append(_line(head, affinity, match, "-j", "DNAT", "--to-destination", endpoint.address))
    return chains, rules


def _external_chain_rules(port: ServicePort, names: ServiceChainNames, policy_chain: str,
                          has_external: bool, ctx: _Context) -> list[str]:
    name, ext = port.service_port_name, names.external
    rules: list[str] = []
    if not port.external_policy_local:
        rules.append(_line("-A", ext, "-m", "comment", "--comment",
                           f'"masquerade traffic for {name} external destinations"', "-j", KUBE_MARK_MASQ))
    else:
        # Pods reaching an external address short-circuit to all endpoints, as if they had
        # gone out to the load balancer and come back; the node itself must be masqueraded.
        rules.append(_line("-A", ext, "-m", "comment", "--comment",
                           f'"pod traffic for {name} external destinations"',
                           "-s", ctx.node.cluster_cidr, "-j", names.cluster))
        rules.append(_line("-A", ext, "-m", "comment", "--comment",
                           f'"masquerade LOCAL traffic for {name} external destinations"',
                           "-m", "addrtype", "--src-type", "LOCAL", "-j", KUBE_MARK_MASQ))
        rules.append(_line("-A", ext, "-m", "comment", "--comment",
                           f'"route LOCAL traffic for {name} external destinations"',
                           "-m", "addrtype", "--src-type", "LOCAL", "-j", names.cluster))
    if has_external:
        rules.append(_line("-A", ext, "-j", policy_chain))
    return rules


def _firewall_chain_rules(port: ServicePort, names: ServiceChainNames, ctx: _Context) -> list[str]:
    name, fw = port.service_port_name, names.firewall
    head = ["-A", fw, "-m", "comment", "--comment", f'"{name} loadbalancer IP"']
    rules: list[str] = []
    node_ip = ipaddress.ip_address(ctx.node.ip)
    allow_from_node = False
    for cidr in port.load_balancer_source_ranges:
        network = ipaddress.ip_network(cidr.strip(), strict=False)
        rules.append(_line(head, "-s", str(network), "-j", names.external))
        allow_from_node = allow_from_node or node_ip in network
    if allow_from_node:  # the node reaches a local VIP with the VIP as source
        rules += [_line(head, "-s", ip, "-j", names.external) for ip in port.load_balancer_ips]
    rules.append(_line("-A", fw, "-m", "comment", "--comment",
                       f'"other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL"'))
    return rules


def _dispatch_rules(port: ServicePort, chain: str, endpoints: Sequence[Endpoint], ctx: _Context) -> list[str]:
    """writeServiceToEndpointRules: affinity checks first, then the random choice."""
    name = port.service_port_name
    rules: list[str] = []
    if port.affinity_timeout is not None:
        for endpoint in endpoints:
            sep = endpoint_chain_name(port, endpoint)
            rules.append(_line("-A", chain, ctx.comment(f'"{name} -> {endpoint.address}"'),
                               "-m", "recent", "--name", sep, "--rcheck", "--seconds",
                               str(port.affinity_timeout), "--reap", "-j", sep))
    count = len(endpoints)
    for i, endpoint in enumerate(endpoints):
        choice = (["-m", "statistic", "--mode", "random", "--probability", probability(count - i)]
                  if i < count - 1 else [])
        rules.append(_line("-A", chain, ctx.comment(f'"{name} -> {endpoint.address}"'), choice,
                           "-j", endpoint_chain_name(port, endpoint)))
    return rules


@dataclass(frozen=True)
class IptablesRuleset:
    """The whole desired state of one node; `restore_text` turns it into iptables-restore input."""
    node: NodeInfo
    mark: str
    large_cluster: bool
    ports: tuple[ServicePortRules, ...]

    @property
    def active_nat_chains(self) -> frozenset[str]:
        return frozenset(NAT_TOP_CHAINS).union(*(p.chains for p in self.ports))

    @property
    def chain_count(self) -> int:
        return len(FILTER_TOP_CHAINS) + len(NAT_TOP_CHAINS) + sum(len(p.chains) for p in self.ports)

    @property
    def rule_count(self) -> int:
        """Rules installed when the ruleset is in place, jumps from the built-in chains included."""
        return (len(self._filter_tail()) + len(self._nat_head())
                + len(self._nat_tail()) + len(JUMP_RULES)
                + sum(len(p.filter_rules) + len(p.entry_rules) + len(p.chain_rules) for p in self.ports))

    def restore_text(self, *, rewrite: Callable[[str], bool] | None = None,
                     stale_chains: Iterable[str] = (), jumps: Iterable[JumpRule] = JUMP_RULES) -> str:
        """iptables-restore input (for `--noflush`).

        `rewrite(service)` says whether a Service's own chains are written (None: all, a full
        sync); skipped chains stay as they are in the kernel. `stale_chains` are flushed and
        deleted. `jumps` are the built-in-chain jumps to insert (those not yet present)."""
        jumps = tuple(jumps)
        written = [p for p in self.ports if rewrite is None or rewrite(p.service)]
        out = ["*filter"]
        out += [f":{c} - [0:0]" for c in FILTER_TOP_CHAINS]
        out += [j.insert_line() for j in jumps if j.table == "filter"]
        for p in self.ports:
            out += p.filter_rules
        out += self._filter_tail()
        out += ["COMMIT", "*nat"]
        out += [f":{c} - [0:0]" for c in NAT_TOP_CHAINS]
        out += [f":{c} - [0:0]" for p in written for c in p.chains]
        stale = sorted(stale_chains)
        out += [f":{c} - [0:0]" for c in stale]
        out += [j.insert_line() for j in jumps if j.table == "nat"]
        out += self._nat_head()
        for p in self.ports:
            out += p.entry_rules
            if rewrite is None or rewrite(p.service):
                out += p.chain_rules
        out += [f"-X {c}" for c in stale]
        out += self._nat_tail()
        out.append("COMMIT")
        return "\n".join(out) + "\n"

    def _filter_tail(self) -> list[str]:
        masq = f"{self.mark}/{self.mark}"
        return [
            f"-A {KUBE_FORWARD} -m conntrack --ctstate INVALID -j DROP",
            f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" -m mark --mark {masq} -j ACCEPT',
            f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack rule"'
            " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        ]

    def _nat_head(self) -> list[str]:
        return [
            f"-A {KUBE_POSTROUTING} -m mark ! --mark {self.mark}/{self.mark} -j RETURN",
            f"-A {KUBE_POSTROUTING} -j MARK --xor-mark {self.mark}",  # re-traversals are not re-masqueraded
            f'-A {KUBE_POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT"'
            " -j MASQUERADE --random-fully",
            f"-A {KUBE_MARK_MASQ} -j MARK --or-mark {self.mark}",
        ]

    def _nat_tail(self) -> list[str]:
        return [f"-A {KUBE_SERVICES} -m comment --comment {NODEPORTS_COMMENT} -d {self.node.ip} -j {KUBE_NODEPORTS}"]


def _port_key(port: ServicePort) -> tuple[str, str, str, str]:
    return (port.namespace, port.name, port.port_name, port.protocol)


def build_ruleset(ports: Sequence[ServicePort], node: NodeInfo, *, masquerade_bit: int = 14,
                  memo: dict | None = None) -> IptablesRuleset:
    """The desired iptables state of `node` (pure: no root, no I/O).

    `memo` (a dict the caller keeps between calls) remembers each port's rules: rules are a pure
    function of (port, context), so an unchanged Service is not rendered again - at 10,000 Services
    that is most of a sync's Python time. Entries of ports no longer present are dropped."""
    proxied = sorted((p for p in ports if p.cluster_ip), key=_port_key)
    large = sum(len(p.endpoints) for p in proxied) > LARGE_CLUSTER_ENDPOINTS_THRESHOLD
    ctx = _Context(node, masquerade_mark(masquerade_bit), large)
    if memo is None:
        rules = tuple(_service_port_rules(p, ctx) for p in proxied)
    else:
        previous = dict(memo)
        memo.clear()
        for port in proxied:
            key = (port, ctx)
            memo[key] = previous.get(key) or _service_port_rules(port, ctx)
        rules = tuple(memo[(port, ctx)] for port in proxied)
    return IptablesRuleset(node, ctx.mark, large, rules)


def render_iptables(ports: Sequence[ServicePort], node: NodeInfo, *, masquerade_bit: int = 14) -> str:
    """The iptables-restore input kube-proxy's full sync writes for `node`, jumps included."""
    return build_ruleset(ports, node, masquerade_bit=masquerade_bit).restore_text()


# ---------------------------------------------------------------------------------------------
# Reading iptables-save


@dataclass(frozen=True)
class SavedState:
    """What an applier needs to know from iptables-save: chains per table, built-in jumps."""
    chains: Mapping[str, frozenset[str]]             # table -> chain names
    builtin_rules: Mapping[str, tuple[str, ...]]     # table -> "-A <BUILTIN> ..." lines

    def has_jump(self, jump: JumpRule) -> bool:
        return any(_jumps_to(line, jump.source, jump.target) for line in self.builtin_rules.get(jump.table, ()))


_BUILTIN_CHAINS = {"filter": ("INPUT", "FORWARD", "OUTPUT"),
                   "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
                   "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")}


def _jumps_to(line: str, source: str, target: str) -> bool:
    return line.startswith(f"-A {source} ") and re.search(rf"(^| )-j {re.escape(target)}( |$)", line) is not None


def parse_save(text: str) -> SavedState:
    chains: dict[str, set[str]] = {}
    builtin: dict[str, list[str]] = {}
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            chains.setdefault(table, set())
        elif line.startswith(":"):
            chains[table].add(line[1:].split()[0])
        elif line.startswith("-A ") and line.split()[1] in _BUILTIN_CHAINS.get(table, ()):
            builtin.setdefault(table, []).append(line)
    return SavedState({t: frozenset(c) for t, c in chains.items()},
                      {t: tuple(r) for t, r in builtin.items()})


def empty_tables(save_text: str) -> list[str]:
    """Tables of iptables-save output with no rule, no chain of their own and only ACCEPT policies."""
    tables: dict[str, bool] = {}
    table = ""
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            tables[table] = True
        elif line.startswith(":") and table:
            name, policy = (line[1:].split() + ["-"])[:2]
            if name not in _BUILTIN_CHAINS.get(table, ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")) \
                    or policy != "ACCEPT":
                tables[table] = False
        elif line.startswith("-A ") and table:
            tables[table] = False
    return [name for name, empty in tables.items() if empty]


def drop_empty_nft_tables(runner: NamespaceRunner, save_command: str) -> None:
    """iptables-nft creates a table (nat, filter, mangle) on first use and leaves it behind, empty,
    when its chains go; a cleaned-up node must look like a fresh one, so those tables go too.
    (iptables-legacy's tables are the kernel's own and always there.)"""
    if "nf_tables" in runner.run([save_command, "--version"], check=False).stdout:
        for table in empty_tables(runner.run([save_command]).stdout):
            runner.run(["nft", "delete", "table", "ip", table], check=False)


def chain_removal_text(saved: SavedState, ours_by_table: Mapping[str, Sequence[str]]) -> str:
    """Restore input that deletes, per table, the built-in chains' jumps to the given chains and then
    the chains themselves (flushed first: a chain must be empty and unreferenced to go). Shared by
    every mode that keeps iptables chains (iptables, ipvs, userspace: kube-proxy's CleanupLeftovers)."""
    out: list[str] = []
    for table, ours in ours_by_table.items():
        jumps = [line for line in saved.builtin_rules.get(table, ())
                 if any(_jumps_to(line, line.split()[1], c) for c in ours)]
        if not ours and not jumps:
            continue
        out.append(f"*{table}")
        out += [f":{c} - [0:0]" for c in ours]
        out += ["-D " + line[3:] for line in jumps]
        out += [f"-X {c}" for c in ours]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def cleanup_text(saved: SavedState) -> str:
    """Restore input that removes every jump to, and every chain of, this proxier."""
    owned = {"filter": set(FILTER_TOP_CHAINS), "nat": set(NAT_TOP_CHAINS)}
    return chain_removal_text(saved, {
        table: sorted(c for c in saved.chains[table] if c in chains or (table == "nat" and is_service_chain_name(c)))
        for table, chains in owned.items() if table in saved.chains})


# ---------------------------------------------------------------------------------------------
# The applier


class IptablesProxier:
    """Keeps a node namespace's iptables in kube-proxy's layout, one iptables-restore per sync.

    The first sync (and the first after a failure, or when the large-cluster mode flips) is a
    full one: it reads iptables-save to find missing jumps and leftover chains. Later syncs
    rewrite only the chains of Services that changed, as kube-proxy's partial syncs do; the
    top-level chains are always rewritten whole, and chains no longer used are deleted. Unlike
    kube-proxy, partial syncs skip iptables-save: the stale chains are those this proxier
    installed and no longer needs (the namespace is the testbed's own, nobody else edits it)."""

    def __init__(self, runner: NamespaceRunner, node: NodeInfo, restore_command: str = "iptables-restore",
                 *, masquerade_bit: int = 14):
        if not restore_command.endswith("-restore"):
            raise ValueError(f"{restore_command!r} is not an iptables-restore command")
        self.runner = runner
        self.node = node
        self.restore_command = restore_command
        self.save_command = restore_command[: -len("-restore")] + "-save"
        self.masquerade_bit = masquerade_bit
        self._in_sync = False    # False: the next sync is a full one (first, after a failure, cleanup)
        self._installed_chains: frozenset[str] = frozenset()
        self._large_cluster: bool | None = None
        self._memo: dict = {}    # (port, context) -> rendered rules, for unchanged Services

    def sync(self, ports: Sequence[ServicePort], changed: frozenset[ServiceKey] | None = None) -> SyncResult:
        started = time.perf_counter()
        ruleset = build_ruleset(ports, self.node, masquerade_bit=self.masquerade_bit, memo=self._memo)
        full = not self._in_sync or changed is None or ruleset.large_cluster != self._large_cluster
        seconds_save = 0.0
        if full:
            save_started = time.perf_counter()
            saved = self.read_state()
            seconds_save = time.perf_counter() - save_started
            existing = saved.chains.get("nat", frozenset())
            stale = sorted(c for c in existing - ruleset.active_nat_chains if is_service_chain_name(c))
            jumps = [j for j in JUMP_RULES if not saved.has_jump(j)]
            rewritten = frozenset(p.service for p in ruleset.ports)
            text = ruleset.restore_text(stale_chains=stale, jumps=jumps)
        else:
            rewritten = frozenset(f"{namespace}/{name}" for namespace, name in changed)
            stale = sorted(self._installed_chains - ruleset.active_nat_chains)
            text = ruleset.restore_text(rewrite=rewritten.__contains__, stale_chains=stale, jumps=())
        seconds_render = time.perf_counter() - started - seconds_save
        apply_started = time.perf_counter()
        self._in_sync = False  # if the restore fails, the next sync must be a full one
        # No timeout: kube-proxy waits for iptables-restore however long it takes (iptables-nft
        # needs minutes for 10,000 Services with --noflush); a killed restore would only retry.
        self.runner.run([self.restore_command, "-w", "5", "--noflush", "--counters"], input=text, timeout=None)
        seconds_apply = time.perf_counter() - apply_started + seconds_save
        self._in_sync, self._large_cluster = True, ruleset.large_cluster
        self._installed_chains = ruleset.active_nat_chains
        written = sum(1 for line in text.splitlines() if line.startswith(("-A ", "-I ")))
        return SyncResult(seconds_render, seconds_apply, ruleset.rule_count, tuple(sorted(rewritten)), full,
                          written, {"chains": ruleset.chain_count})

    def read_state(self) -> SavedState:
        return parse_save(self.runner.run([self.save_command]).stdout)

    def cleanup(self) -> None:
        """Remove the jumps and every chain this proxier (or an earlier one) installed, and, with
        iptables-nft, the tables it left empty (they are nft tables that did not exist before: a
        node switched to another mode must look like a fresh one; iptables-legacy's tables cannot
        be removed and are invisible to the nft tools)."""
        text = cleanup_text(self.read_state())
        if text:
            self.runner.run([self.restore_command, "-w", "5", "--noflush"], input=text)
        drop_empty_nft_tables(self.runner, self.save_command)
        self._in_sync, self._installed_chains, self._large_cluster = False, frozenset(), None

    def stop(self) -> None:
        pass  # nothing runs: the rules stay in the node's namespace (and go with it)


# ---------------------------------------------------------------------------------------------
# Registration

RESTORE_COMMANDS = {"nft": "iptables-restore", "legacy": "iptables-legacy-restore"}


def _restore_command(options: Mapping[str, str]) -> str:
    return RESTORE_COMMANDS[options.get("iptables_backend", "nft")]


def _render(ports: Sequence[ServicePort], node: NodeInfo, layout=None) -> str:
    return render_iptables(ports, node)


register(Backend(
    mode="iptables",
    summary="kube-proxy's iptables mode: KUBE-SERVICES/SVC/SEP/EXT/FW/NODEPORTS chains with hashed names, "
            "`statistic` probabilities, `recent` affinity, masquerade marks, traffic policies, REJECT without "
            "endpoints; one `iptables-restore --noflush` per sync with partial syncs, in each node's namespace",
    render=_render,
    make_proxier=lambda ctx: IptablesProxier(ctx.runner, ctx.node, _restore_command(ctx.options)),
    required_tools=lambda options: (_restore_command(options), _restore_command(options)[:-len("-restore")] + "-save"),
    options=(BackendOption("iptables_backend", ("nft", "legacy"), "nft",
                           "iptables-nft (the default of Debian and most distributions) or iptables-legacy"),),
    variants={"iptables": {"iptables_backend": "nft"}, "iptables-legacy": {"iptables_backend": "legacy"}},
    describe=lambda options: f"iptables ({options['iptables_backend']})",
    state_command="iptables-save -t nat",
))
