"""The desired state of a node's `ip kube-proxy` table, as kube-proxy's nftables proxier builds it.

Pure: names (proxier.go hashAndTruncate, servicePortChainNameBase, servicePortEndpointChainNameBase),
the fixed objects of setupNFTables, one Service port's chains, affinity sets and map elements (one
iteration of syncProxyRules' loop, writeServiceToEndpointRules), and the whole table as knftables'
Fake.Dump() writes it. testbed/backends/nftables.py explains the layout and the choices made.
"""
from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

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
class Context:
    """What every rule of a node depends on besides its Service: the node and the masquerade mark."""
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
def static_containers() -> tuple[Container, ...]:
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


STATIC_CONTAINERS = static_containers()
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


def static_chains(ctx: Context) -> tuple[Chain, ...]:
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


def static_elements(ctx: Context) -> tuple[Element, ...]:
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


def service_port_state(port: ServicePort, ctx: Context) -> ServicePortState:
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


def port_key(port: ServicePort) -> tuple[str, str, str, str]:
    return (port.namespace, port.name, port.port_name, port.protocol)


def proxied(ports: Iterable[ServicePort]) -> list[ServicePort]:
    """The ports that get rules (not headless), in name order."""
    return sorted((p for p in ports if p.cluster_ip), key=port_key)


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
    ctx = Context(node, masquerade_mark(masquerade_bit))
    return NftablesRuleset(node, ctx.mark, static_chains(ctx), static_elements(ctx),
                           tuple(service_port_state(p, ctx) for p in proxied(ports)))


def render_nftables(ports: Sequence[ServicePort], node: NodeInfo, *, masquerade_bit: int = 14) -> str:
    """What `testbed render nftables` prints: the table as knftables' Fake.Dump() shows it."""
    return build_ruleset(ports, node, masquerade_bit=masquerade_bit).dump()
