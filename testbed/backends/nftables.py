"""kube-proxy's nftables mode: the table its proxier builds, and an applier for a node namespace.

The rendering follows pkg/proxy/nftables/proxier.go of Kubernetes 1.31-1.33 (`setupNFTables`,
`syncProxyRules`, `writeServiceToEndpointRules`; the layout with `filter-output-post-dnat` and the
`cluster-ips` set, and the element-diffing `nftElementStorage`), so that `nft list table ip
kube-proxy` inside an emulated node reads like it does on a real node: chain, set and map names,
hooks and priorities, rule text, element keys and comments. Where the packets go (kube-proxy's
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
- Like the iptables module, partial syncs do not list the kernel's table (kube-proxy lists its
  chains and sets every sync): this proxier knows what it wrote, the namespace is the testbed's own.
  Full syncs (the first, after a failure) list it, to find what an earlier proxier left.
- When an affinity timeout changes, the affinity sets are deleted and re-created: an `add set` with
  another timeout is silently ignored by the kernel (kube-proxy re-adds and keeps the old timeout).
  A map element whose value or comment changes is deleted and added (kube-proxy compares values
  only; the kernel keeps an old comment).
- The setup part of a full sync creates the same objects as setupNFTables, written declaration
  first (table, chains, sets and maps, then rules and elements) rather than interleaved.

Not modelled: IPv6 (the emulation is IPv4-only), topology-aware hints (no zones), `--masquerade-all`,
health-check servers (kube-proxy's nftables mode writes no rules for them either), the conntrack
clean-up of stale UDP entries that kube-proxy does after a sync, metrics. The lb-algorithm
annotations do not apply: kube-proxy's nftables mode has only `numgen random`.

`testbed render nftables` prints the desired state the way kube-proxy's unit tests compare it:
knftables' `Fake.Dump()` (add table, add chain, add set, add map, add rule, add element lines,
objects sorted by name). That text loads into an empty namespace with `nft -f`.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from testbed.net.runner import CommandError, NamespaceRunner
from testbed.proxy.backend import Backend, ServiceKey, SyncResult, register
from testbed.proxy.model import Endpoint, NodeInfo, ServicePort
from testbed.proxy.topology import categorize_endpoints, externally_accessible

FAMILY = "ip"
TABLE = "kube-proxy"
TABLE_REF = f"{FAMILY} {TABLE}"      # how every command names the table
TABLE_COMMENT = "rules for kube-proxy"

# Chain, set and map names (proxier.go's constants; no "kube-" prefix: the table is ours).
FILTER_PREROUTING = "filter-prerouting"
FILTER_INPUT = "filter-input"
FILTER_FORWARD = "filter-forward"
FILTER_OUTPUT = "filter-output"
FILTER_OUTPUT_POST_DNAT = "filter-output-post-dnat"
NAT_PREROUTING = "nat-prerouting"
NAT_OUTPUT = "nat-output"
NAT_POSTROUTING = "nat-postrouting"
SERVICES = "services"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NODEPORT_IPS = "nodeport-ips"
CLUSTER_IPS = "cluster-ips"
SERVICE_ENDPOINTS_CHECK = "service-endpoints-check"
NODEPORT_ENDPOINTS_CHECK = "nodeport-endpoints-check"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
REJECT_CHAIN = "reject-chain"
CLUSTER_IPS_CHECK = "cluster-ips-check"
FIREWALL_IPS = "firewall-ips"
FIREWALL_CHECK = "firewall-check"
MARK_MASQ = "mark-for-masquerade"
MASQUERADING = "masquerading"

SERVICE_PREFIX, LOCAL_PREFIX, EXTERNAL_PREFIX, FIREWALL_PREFIX = "service-", "local-", "external-", "firewall-"
ENDPOINT_PREFIX, AFFINITY_PREFIX = "endpoint-", "affinity-"

# knftables.NameLengthMax (NFT_NAME_MAXLEN) minus chainNamePrefixLengthMax (16).
CHAIN_NAME_BASE_LENGTH_MAX = 256 - 16

# knftables.ParsePriority for the ip family: "dstnat" is -100, "srcnat" 100.
DSTNAT, SRCNAT = -100, 100

# kube-proxy deletes a stale chain only once it has been unused for a second.
STALE_CHAIN_DELAY = 1.0


# ---------------------------------------------------------------------------------------------
# Names


_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"   # RFC 4648, Go's base32.StdEncoding


def _base32_of_40_bits(data: bytes) -> str:
    """base32 of exactly 5 bytes (8 characters, no padding), without base64's slow Python loop."""
    n = int.from_bytes(data, "big")
    return "".join(_BASE32[(n >> shift) & 31] for shift in (35, 30, 25, 20, 15, 10, 5, 0))


def hash_and_truncate(name: str) -> str:
    """proxier.go hashAndTruncate: the first 8 characters of base32(sha256(name)), "-", name.
    (8 base32 characters are exactly the first 5 bytes of the digest.)"""
    name = _base32_of_40_bits(hashlib.sha256(name.encode()).digest()[:5]) + "-" + name
    if len(name) > CHAIN_NAME_BASE_LENGTH_MAX:
        name = name[:CHAIN_NAME_BASE_LENGTH_MAX - 3] + "..."
    return name


def service_chain_base(port: ServicePort) -> str:
    """servicePortChainNameBase: "HASH-namespace/name/protocol/portname" (port name may be empty)."""
    return hash_and_truncate(f"{port.namespace}/{port.name}/{port.protocol.lower()}/{port.port_name}")


def endpoint_chain_base(port: ServicePort, endpoint: Endpoint) -> str:
    """servicePortEndpointChainNameBase: "HASH-namespace/name/protocol/portname__ip/port"."""
    return hash_and_truncate(f"{port.namespace}/{port.name}/{port.protocol.lower()}/{port.port_name}"
                             f"__{endpoint.ip}/{endpoint.port}")


@dataclass(frozen=True)
class ServiceChainNames:
    cluster: str    # service-: Cluster traffic policy endpoints
    local: str      # local-: this node's endpoints, for Local traffic policy
    external: str   # external-: NodePort / external IP / LB traffic, before the policy chain
    firewall: str   # firewall-: loadBalancerSourceRanges


def service_chain_names(port: ServicePort) -> ServiceChainNames:
    base = service_chain_base(port)
    return ServiceChainNames(SERVICE_PREFIX + base, LOCAL_PREFIX + base, EXTERNAL_PREFIX + base,
                             FIREWALL_PREFIX + base)


def endpoint_chain_name(port: ServicePort, endpoint: Endpoint) -> str:
    return ENDPOINT_PREFIX + endpoint_chain_base(port, endpoint)


def affinity_set_name(port: ServicePort, endpoint: Endpoint) -> str:
    return AFFINITY_PREFIX + endpoint_chain_base(port, endpoint)


def is_service_chain_name(chain: str) -> bool:
    """isServiceChainName: the derived names, and only they, contain a "/"."""
    return "/" in chain


def is_affinity_set_name(name: str) -> bool:
    return name.startswith(AFFINITY_PREFIX)


def masquerade_mark(bit: int) -> str:
    """NewProxier's fmt.Sprintf("%#08x", 1<<bit)."""
    return f"0x{1 << bit:08x}"


# ---------------------------------------------------------------------------------------------
# Objects, as knftables writes them


def _comment(text: str | None) -> str:
    return f' comment "{text}"' if text is not None else ""


@dataclass(frozen=True)
class Chain:
    """A chain with its rules (each rule's text as it follows `add rule ip kube-proxy CHAIN`)."""
    name: str
    rules: tuple[str, ...] = ()
    spec: str = ""     # " { type filter hook input priority -110 ; }" for base chains, or a comment

    def add(self) -> str:
        return f"add chain {TABLE_REF} {self.name}{self.spec}"

    def flush(self) -> str:
        return f"flush chain {TABLE_REF} {self.name}"

    def rule_lines(self) -> list[str]:
        head = f"add rule {TABLE_REF} {self.name} "
        return [head + rule for rule in self.rules]


def _base_chain(name: str, chain_type: str, hook: str, priority: int, rules: tuple[str, ...]) -> Chain:
    return Chain(name, rules, f" {{ type {chain_type} hook {hook} priority {priority} ; }}")


@dataclass(frozen=True)
class Container:
    """A named set or map."""
    kind: str          # "set" or "map"
    name: str
    spec: str          # what goes between the braces

    def add(self) -> str:
        return f"add {self.kind} {TABLE_REF} {self.name} {{ {self.spec} }}"

    def flush(self) -> str:
        return f"flush {self.kind} {TABLE_REF} {self.name}"

    def delete(self) -> str:
        return f"delete {self.kind} {TABLE_REF} {self.name}"


@dataclass(frozen=True)
class AffinitySet:
    """The per-endpoint ClientIP affinity set: the data path adds client addresses to it
    (`update @set { ip saddr }`), each for `timeout` seconds. "dynamic" because the kernel adds it
    anyway and a later `add set` without it would then fail (proxier.go's comment)."""
    name: str
    timeout: int
    kind = "set"

    def add(self) -> str:
        return f"add set {TABLE_REF} {self.name} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {self.timeout}s ; }}"

    def delete(self) -> str:
        return f"delete set {TABLE_REF} {self.name}"


@dataclass(frozen=True)
class Element:
    """One element of a set or map. `key` is the nft key ("10.96.0.10 . udp . 53")."""
    container: str
    key: str
    value: str = ""            # a map element's verdict ("goto service-..."); "" in sets
    comment: str | None = None

    @property
    def slot(self) -> tuple[str, str]:
        return self.container, self.key

    def add(self) -> str:
        value = f" : {self.value}" if self.value else ""
        return f"add element {TABLE_REF} {self.container} {{ {self.key}{_comment(self.comment)}{value} }}"

    def delete(self) -> str:
        return f"delete element {TABLE_REF} {self.container} {{ {self.key} }}"


# ---------------------------------------------------------------------------------------------
# The fixed part: setupNFTables


@dataclass(frozen=True)
class _Context:
    node: NodeInfo
    mark: str

    @property
    def local_source(self) -> str:
        """LocalTrafficDetector (ClusterCIDR mode) IfLocalNFT."""
        return f"ip saddr {self.node.cluster_cidr}"

    @property
    def non_local_source(self) -> str:
        return f"ip saddr != {self.node.cluster_cidr}"


# The containers setupNFTables declares, in its order. The six that it resets on every full sync
# (nftElementStorage.reset) are what syncProxyRules fills; nodeport-ips holds the node IP.
def _static_containers() -> tuple[Container, ...]:
    dest = "ipv4_addr . inet_proto . inet_service : verdict"
    return (
        Container("set", CLUSTER_IPS, 'type ipv4_addr ; comment "Active ClusterIPs" ;'),
        Container("set", NODEPORT_IPS, 'type ipv4_addr ; comment "IPs that accept NodePort traffic" ;'),
        Container("map", NO_ENDPOINT_SERVICES,
                  f'type {dest} ; comment "vmap to drop or reject packets to services with no endpoints" ;'),
        Container("map", NO_ENDPOINT_NODEPORTS, 'type inet_proto . inet_service : verdict ; '
                  'comment "vmap to drop or reject packets to service nodeports with no endpoints" ;'),
        Container("map", FIREWALL_IPS,
                  f'type {dest} ; comment "destinations that are subject to LoadBalancerSourceRanges" ;'),
        Container("map", SERVICE_IPS, f'type {dest} ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ;'),
        Container("map", SERVICE_NODEPORTS, 'type inet_proto . inet_service : verdict ; comment "NodePort traffic" ;'),
    )


STATIC_CONTAINERS = _static_containers()
SERVICE_CONTAINERS = (CLUSTER_IPS, SERVICE_IPS, FIREWALL_IPS, NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS,
                      SERVICE_NODEPORTS)

# nftablesJumpChains: (destination, source base chain, extra match), in kube-proxy's order.
JUMP_CHAINS: tuple[tuple[str, str, str], ...] = (
    (NODEPORT_ENDPOINTS_CHECK, FILTER_INPUT, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_INPUT, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_FORWARD, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_OUTPUT, "ct state new"),
    (FIREWALL_CHECK, FILTER_PREROUTING, "ct state new"),
    (FIREWALL_CHECK, FILTER_OUTPUT, "ct state new"),
    (SERVICES, NAT_OUTPUT, ""),
    (SERVICES, NAT_PREROUTING, ""),
    (MASQUERADING, NAT_POSTROUTING, ""),
    (CLUSTER_IPS_CHECK, FILTER_FORWARD, "ct state new"),
    (CLUSTER_IPS_CHECK, FILTER_OUTPUT_POST_DNAT, "ct state new"),
)

# nftablesBaseChains: (name, type, hook, priority).
BASE_CHAINS: tuple[tuple[str, str, str, int], ...] = (
    (FILTER_PREROUTING, "filter", "prerouting", DSTNAT - 10),
    (FILTER_INPUT, "filter", "input", DSTNAT - 10),
    (FILTER_FORWARD, "filter", "forward", DSTNAT - 10),
    (FILTER_OUTPUT, "filter", "output", DSTNAT - 10),
    (FILTER_OUTPUT_POST_DNAT, "filter", "output", DSTNAT + 10),
    (NAT_PREROUTING, "nat", "prerouting", DSTNAT),
    (NAT_OUTPUT, "nat", "output", DSTNAT),
    (NAT_POSTROUTING, "nat", "postrouting", SRCNAT),
)


def _static_chains(ctx: _Context) -> tuple[Chain, ...]:
    """Base chains with their jumps, then the top-level regular chains with setupNFTables' rules."""
    jumps: dict[str, list[str]] = {}
    for destination, source, extra in JUMP_CHAINS:
        jumps.setdefault(source, []).append(f"{extra} jump {destination}".strip())
    base = tuple(_base_chain(name, kind, hook, priority, tuple(jumps.get(name, ())))
                 for name, kind, hook, priority in BASE_CHAINS)
    mark = ctx.mark
    dispatch = "ip daddr . meta l4proto . th dport vmap"
    nodeports = f"ip daddr @{NODEPORT_IPS} meta l4proto . th dport vmap"
    regular = (
        Chain(NODEPORT_ENDPOINTS_CHECK, (f"{nodeports} @{NO_ENDPOINT_NODEPORTS}",)),
        Chain(SERVICE_ENDPOINTS_CHECK, (f"{dispatch} @{NO_ENDPOINT_SERVICES}",)),
        Chain(FIREWALL_CHECK, (f"{dispatch} @{FIREWALL_IPS}",)),
        Chain(SERVICES, (f"{dispatch} @{SERVICE_IPS}", f"{nodeports} @{SERVICE_NODEPORTS}")),
        Chain(MASQUERADING, (f"mark and {mark} == 0 return", f"mark set mark xor {mark}", "masquerade fully-random")),
        Chain(CLUSTER_IPS_CHECK, (
            f'ip daddr @{CLUSTER_IPS} reject comment "Reject traffic to invalid ports of ClusterIPs"',
            f'ip daddr {{ {ctx.node.service_cidr} }} drop comment "Drop traffic to unallocated ClusterIPs"')),
        Chain(MARK_MASQ, (f"mark set mark or {mark}",)),
        Chain(REJECT_CHAIN, ("reject",), ' { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }'),
    )
    return base + regular


def _static_elements(ctx: _Context) -> tuple[Element, ...]:
    return (Element(NODEPORT_IPS, ctx.node.ip),)


# ---------------------------------------------------------------------------------------------
# One Service port: one iteration of syncProxyRules' loop


@dataclass(frozen=True)
class ServicePortState:
    """What one Service port puts into the table. `chains` (with their rules) and `affinity_sets`
    are what a partial sync leaves alone when the Service is unchanged; `elements` go into the
    shared maps and sets."""
    service: str                        # "ns/name": kube-proxy tracks changes per Service
    chains: tuple[Chain, ...]           # in ensureChain order
    affinity_sets: tuple[AffinitySet, ...]
    elements: tuple[Element, ...]

    @property
    def rule_count(self) -> int:
        return sum(len(c.rules) for c in self.chains)


def service_port_state(port: ServicePort, ctx: _Context) -> ServicePortState:
    """syncProxyRules for one Service port: its chains, affinity sets and map/set elements."""
    proto = port.protocol.lower()
    name = port.service_port_name
    names = service_chain_names(port)
    cats = categorize_endpoints(port, ctx.node.name)
    has_endpoints = cats.has_any
    affinity = port.affinity_timeout is not None

    uses_cluster_chain = bool(cats.cluster)       # CategorizeEndpoints left it empty if unused
    uses_local_chain = bool(cats.local)
    internal_chain, has_internal = names.cluster, has_endpoints
    if port.internal_policy_local:
        internal_chain, has_internal = names.local, has_endpoints and bool(cats.local)
    external_policy_chain, has_external = names.cluster, has_endpoints
    if port.external_policy_local:
        external_policy_chain, has_external = names.local, has_endpoints and bool(cats.local)
    uses_external_chain = has_endpoints and externally_accessible(port)
    uses_firewall_chain = bool(port.load_balancer_ips) and bool(port.load_balancer_source_ranges)

    if not has_endpoints:
        internal_verdict = external_verdict = f"goto {REJECT_CHAIN}"
    else:
        internal_verdict = "" if has_internal else "drop"
        external_verdict = "" if has_external else "drop"

    # -- elements, in the order syncProxyRules ensures them
    elements: list[Element] = [Element(CLUSTER_IPS, port.cluster_ip)]

    def dest(ip: str) -> str:
        return f"{ip} . {proto} . {port.port}"

    if has_internal:
        elements.append(Element(SERVICE_IPS, dest(port.cluster_ip), f"goto {internal_chain}"))
    else:
        elements.append(Element(NO_ENDPOINT_SERVICES, dest(port.cluster_ip), internal_verdict, name))
    for ip in port.external_ips:
        if has_endpoints:
            elements.append(Element(SERVICE_IPS, dest(ip), f"goto {names.external}"))
        if not has_external:
            elements.append(Element(NO_ENDPOINT_SERVICES, dest(ip), external_verdict, name))
    for ip in port.load_balancer_ips:
        if has_endpoints:
            elements.append(Element(SERVICE_IPS, dest(ip), f"goto {names.external}"))
        if uses_firewall_chain:
            elements.append(Element(FIREWALL_IPS, dest(ip), f"goto {names.firewall}"))
    if not has_external:
        elements += [Element(NO_ENDPOINT_SERVICES, dest(ip), external_verdict, name) for ip in port.load_balancer_ips]
    if port.node_port:
        # NodePorts are not subject to loadBalancerSourceRanges (kube-proxy: "for better or worse").
        if has_endpoints:
            elements.append(Element(SERVICE_NODEPORTS, f"{proto} . {port.node_port}", f"goto {names.external}"))
        if not has_external:
            elements.append(Element(NO_ENDPOINT_NODEPORTS, f"{proto} . {port.node_port}", external_verdict, name))

    # -- chains, in ensureChain order, and their rules
    endpoint_bases = {e.address: endpoint_chain_base(port, e) for e in cats.reachable}   # one hash each
    rules: dict[str, list[str]] = {}
    for endpoint in cats.reachable:
        rules[ENDPOINT_PREFIX + endpoint_bases[endpoint.address]] = []
    if uses_cluster_chain:
        rules[names.cluster] = []
    if uses_local_chain:
        rules[names.local] = []
    if uses_external_chain:
        rules[names.external] = []
    if uses_firewall_chain:
        rules[names.firewall] = []

    if has_internal:
        # Masquerade off-cluster traffic to the VIP: it may have been routed here from outside.
        rules[internal_chain].append(f"ip daddr {port.cluster_ip} {proto} dport {port.port} "
                                     f"{ctx.non_local_source} jump {MARK_MASQ}")
    if uses_external_chain:
        external = rules[names.external]
        if not port.external_policy_local:
            external.append(f"jump {MARK_MASQ}")      # Cluster policy may cross nodes
        else:
            # Pods reaching an external address short-circuit to all endpoints, as if they had
            # gone out to the load balancer and come back; the node itself must be masqueraded.
            external.append(f'{ctx.local_source} goto {names.cluster} comment "short-circuit pod traffic"')
            external.append(f'fib saddr type local jump {MARK_MASQ} comment "masquerade local traffic"')
            external.append(f'fib saddr type local goto {names.cluster} comment "short-circuit local traffic"')
        if has_external:
            external.append(f"goto {external_policy_chain}")
    if uses_firewall_chain:
        node_ip = ipaddress.ip_address(ctx.node.ip)
        sources: list[str] = []
        allow_from_node = False
        for cidr in port.load_balancer_source_ranges:
            network = ipaddress.ip_network(cidr.strip(), strict=False)
            sources.append(str(network))
            allow_from_node = allow_from_node or node_ip in network
        if allow_from_node:  # the node reaches a local VIP with the VIP as its source
            sources += list(port.load_balancer_ips)
        rules[names.firewall].append(f"ip saddr != {{ {' , '.join(sources)} }} drop")

    affinity_sets: tuple[AffinitySet, ...] = ()
    if affinity:
        affinity_sets = tuple(AffinitySet(AFFINITY_PREFIX + endpoint_bases[e.address], port.affinity_timeout)
                              for e in cats.reachable)
    if uses_cluster_chain:
        rules[names.cluster] += _dispatch_rules(port, cats.cluster, endpoint_bases)
    if uses_local_chain:
        rules[names.local] += _dispatch_rules(port, cats.local, endpoint_bases)
    for endpoint in cats.reachable:
        base = endpoint_bases[endpoint.address]
        chain = rules[ENDPOINT_PREFIX + base]
        chain.append(f"ip saddr {endpoint.ip} jump {MARK_MASQ}")   # hairpin
        if affinity:
            chain.append(f"update @{AFFINITY_PREFIX + base} {{ ip saddr }}")
        chain.append(f"meta l4proto {proto} dnat to {endpoint.address}")

    return ServicePortState(f"{port.namespace}/{port.name}",
                            tuple(Chain(chain, tuple(chain_rules)) for chain, chain_rules in rules.items()),
                            affinity_sets, tuple(elements))


def _dispatch_rules(port: ServicePort, endpoints: Sequence[Endpoint], bases: Mapping[str, str]) -> list[str]:
    """writeServiceToEndpointRules: affinity checks first, then `numgen random mod N vmap`."""
    rules: list[str] = []
    if port.affinity_timeout is not None:
        rules += [f"ip saddr @{AFFINITY_PREFIX}{bases[e.address]} goto {ENDPOINT_PREFIX}{bases[e.address]}"
                  for e in endpoints]
    choices = " , ".join(f"{i} : goto {ENDPOINT_PREFIX}{bases[e.address]}" for i, e in enumerate(endpoints))
    rules.append(f"numgen random mod {len(endpoints)} vmap {{ {choices} }}")
    return rules


# ---------------------------------------------------------------------------------------------
# The whole node


def _port_key(port: ServicePort) -> tuple[str, str, str, str]:
    return (port.namespace, port.name, port.port_name, port.protocol)


def proxied(ports: Iterable[ServicePort]) -> list[ServicePort]:
    """The ports that get rules (not headless), in name order."""
    return sorted((p for p in ports if p.cluster_ip), key=_port_key)


@dataclass(frozen=True)
class NftablesRuleset:
    """The desired state of one node's `ip kube-proxy` table."""
    node: NodeInfo
    mark: str
    static_chains: tuple[Chain, ...]
    static_elements: tuple[Element, ...]
    ports: tuple[ServicePortState, ...]

    @property
    def chains(self) -> list[Chain]:
        return [*self.static_chains, *(c for p in self.ports for c in p.chains)]

    @property
    def rule_count(self) -> int:
        return sum(len(c.rules) for c in self.static_chains) + sum(p.rule_count for p in self.ports)

    def elements(self) -> list[Element]:
        """Every element, one per (container, key): the first claimant wins, as in the proxier."""
        seen: dict[tuple[str, str], Element] = {e.slot: e for e in self.static_elements}
        for port in self.ports:
            for element in port.elements:
                seen.setdefault(element.slot, element)
        return list(seen.values())

    def dump(self) -> str:
        """knftables Fake.Dump(): table; chains, sets, maps by name; rules chain by chain;
        set elements, then map elements, container by container (in insertion order)."""
        chains = sorted(self.chains, key=lambda c: c.name)
        containers = {c.name: c for c in (*STATIC_CONTAINERS, *(s for p in self.ports for s in p.affinity_sets))}
        sets = sorted((c for c in containers.values() if c.kind == "set"), key=lambda c: c.name)
        maps = sorted((c for c in containers.values() if c.kind == "map"), key=lambda c: c.name)
        by_container: dict[str, list[Element]] = {}
        for element in self.elements():
            by_container.setdefault(element.container, []).append(element)
        out = [f'add table {TABLE_REF} {{ comment "{TABLE_COMMENT}" ; }}']
        out += [c.add() for c in chains]
        out += [c.add() for c in sets]
        out += [c.add() for c in maps]
        for chain in chains:
            out += chain.rule_lines()
        for container in (*sets, *maps):
            out += [e.add() for e in by_container.get(container.name, ())]
        return "\n".join(out) + "\n"


def build_ruleset(ports: Sequence[ServicePort], node: NodeInfo, *, masquerade_bit: int = 14) -> NftablesRuleset:
    """The desired nftables state of `node` (pure: no root, no I/O)."""
    ctx = _Context(node, masquerade_mark(masquerade_bit))
    return NftablesRuleset(node, ctx.mark, _static_chains(ctx), _static_elements(ctx),
                           tuple(service_port_state(p, ctx) for p in proxied(ports)))


def render_nftables(ports: Sequence[ServicePort], node: NodeInfo, *, masquerade_bit: int = 14) -> str:
    """What `testbed render nftables` prints: the table as knftables' Fake.Dump() shows it."""
    return build_ruleset(ports, node, masquerade_bit=masquerade_bit).dump()


# ---------------------------------------------------------------------------------------------
# Syncs: what is in the kernel, and the one transaction that brings it to the desired state


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
        self.ctx = _Context(node, masquerade_mark(masquerade_bit))
        self.static_chains = _static_chains(self.ctx)
        self.static_elements = _static_elements(self.ctx)
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

        new_states = {k: tuple(self._port_state(p) for p in sorted(groups[k], key=_port_key)) for k in rewrite}
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
        key = _port_key(port)
        cached = self.port_states.get(key)
        if cached is not None and cached[0] == port:
            return cached[1]
        state = service_port_state(port, self.ctx)
        self.port_states[key] = (port, state)
        return state

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
