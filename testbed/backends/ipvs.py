"""kube-proxy's IPVS mode: virtual servers in the kernel's IP Virtual Server, ipsets, and the few
iptables rules it still needs, as pkg/proxy/ipvs/proxier.go (Kubernetes 1.29-1.31) writes them.

Where the packets go (in a node's namespace):

    pod/external packet ─► nat PREROUTING ─► KUBE-SERVICES: ipset matches decide the masquerade mark
      (KUBE-CLUSTER-IP from outside the cluster CIDR, KUBE-EXTERNAL-IP, KUBE-LOAD-BALANCER ─►
       KUBE-LOAD-BALANCER (-LOCAL: RETURN), dst LOCAL ─► KUBE-NODE-PORT (-LOCAL-TCP: RETURN,
       KUBE-NODE-PORT-TCP ─► KUBE-MARK-MASQ)); nothing is DNATed by iptables
           │ the VIP is a local address (bound on the dummy kube-ipvs0, which stays DOWN as in
           ▼ kube-proxy), so routing delivers the packet locally
    filter INPUT: KUBE-IPVS-FILTER (NEW to a kube-ipvs0 address but not a Service port: REJECT),
                  KUBE-PROXY-FIREWALL (loadBalancerSourceRanges via KUBE-SOURCE-RANGES-FIREWALL)
           ▼
    IPVS (LOCAL_IN): the virtual server's scheduler picks a real server; masquerading forwarding
      (-m) rewrites the destination; net.ipv4.vs.conntrack=1 keeps conntrack entries so that
           ▼
    nat POSTROUTING ─► KUBE-POSTROUTING: KUBE-LOOP-BACK (hairpin) and marked packets MASQUERADE

A Service port without endpoints is a virtual server without real servers: IPVS answers with ICMP
port unreachable (ip_vs_leave), so clients see "connection refused" as in iptables mode.

The state comes in four parts, each applied by one program per sync:
- `ipvsadm-restore` (`ipvsadm -R`): `-A/-E/-D` virtual servers, `-a/-e/-d` real servers, with
  the scheduler (`-s`), persistence for ClientIP affinity (`-p <timeout>`), `-b mh-port` for mh
  (kube-proxy's FlagSourceHash) and masquerading real servers (`-m -w <weight>`);
- `ipset restore`: kube-proxy's sets (ipsetInfo in proxier.go) and their entries;
- `ip -batch`: the dummy interface kube-ipvs0 and the Service addresses bound on it;
- `iptables-restore --noflush`: writeIptablesRules() and the jumps of iptablesJumpChain.

Choices where kube-proxy has options, as the iptables module makes them: `--nodeport-addresses
primary` (NodePort virtual servers on the node IP only), `--detect-local-mode ClusterCIDR`,
masquerade bit 14, `--random-fully`, and `strictARP: true` (arp_ignore=1, arp_announce=2), which
MetalLB's installation asks for with IPVS: every node binds every LoadBalancer IP on kube-ipvs0, and
with the kernel's default arp_ignore=0 every node would answer ARP for it, so that the external
host's neighbour entry named whichever node replied last (with externalTrafficPolicy Local often
one without an endpoint). With strict ARP only the announcing node answers: the LoadBalancer
speaker gives it the IP as an address of its node interface (Backend.strict_arp).

Schedulers: kube-proxy's `--ipvs-scheduler` is the backend option `ipvs_scheduler` (default rr);
the testbed extension `testbed.io/lb-algorithm` picks one per Service (rr, wrr, lc, wlc, sh, dh,
sed, nq, mh), and `testbed.io/lb-weights` sets real server weights (kube-proxy always writes 1).

Graceful deletion (graceful_termination.go): a real server leaving a virtual server is deleted at
once when it has no connections, else set to weight 0 (no new connections; existing ones go on)
and deleted by a later check (kube-proxy's rsCheckDeleteInterval, 1 minute) once its connections
are gone. A real server that comes back while waiting gets its weight again.

Not modelled: IPv6, SCTP NodePorts' hash sets get entries only for the node IP, health check
servers (the KUBE-HEALTH-CHECK-NODE-PORT set is filled, nothing listens), `--masquerade-all`,
`--ipvs-exclude-cidrs`, IPVS timeouts (`--ipvs-tcp-timeout`, ...: the kernel's defaults stay).
"""
from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence

from testbed.errors import TestbedError
from testbed.net.kernel import kernel_has_ipvs
from testbed.net.runner import NamespaceRunner
from testbed.proxy.backend import Backend, BackendOption, ServiceKey, SyncResult, register
from testbed.proxy.model import Endpoint, NodeInfo, ServicePort
from testbed.proxy.topology import categorize_endpoints
from testbed.timescale import scaled

from .iptables import JumpRule, chain_removal_text, drop_empty_nft_tables, masquerade_mark, parse_save

DUMMY_DEVICE = "kube-ipvs0"
DEFAULT_SCHEDULER = "rr"
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "sh", "dh", "sed", "nq", "mh")
RS_CHECK_DELETE_INTERVAL = 60.0   # graceful_termination.go rsCheckDeleteInterval

# --- iptables chains (proxier.go constants) ---------------------------------------------------
KUBE_SERVICES = "KUBE-SERVICES"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_SOURCE_RANGES_FIREWALL = "KUBE-SOURCE-RANGES-FIREWALL"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_NODE_PORT = "KUBE-NODE-PORT"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_LOAD_BALANCER = "KUBE-LOAD-BALANCER"
KUBE_IPVS_FILTER = "KUBE-IPVS-FILTER"
KUBE_IPVS_OUT_FILTER = "KUBE-IPVS-OUT-FILTER"

# iptablesChains: (table, chain), in kube-proxy's order
IPTABLES_CHAINS: tuple[tuple[str, str], ...] = (
    ("nat", KUBE_SERVICES), ("nat", KUBE_POSTROUTING), ("nat", KUBE_NODE_PORT), ("nat", KUBE_LOAD_BALANCER),
    ("nat", KUBE_MARK_MASQ), ("filter", KUBE_FORWARD), ("filter", KUBE_NODE_PORT), ("filter", KUBE_PROXY_FIREWALL),
    ("filter", KUBE_SOURCE_RANGES_FIREWALL), ("filter", KUBE_IPVS_FILTER), ("filter", KUBE_IPVS_OUT_FILTER),
)

# iptablesJumpChain (each is EnsureRule(Prepend, ...)): -I lines in this order give kube-proxy's result
JUMP_RULES: tuple[JumpRule, ...] = (
    JumpRule("nat", KUBE_SERVICES, "OUTPUT", "kubernetes service portals"),
    JumpRule("nat", KUBE_SERVICES, "PREROUTING", "kubernetes service portals"),
    JumpRule("nat", KUBE_POSTROUTING, "POSTROUTING", "kubernetes postrouting rules"),
    JumpRule("filter", KUBE_FORWARD, "FORWARD", "kubernetes forwarding rules"),
    JumpRule("filter", KUBE_NODE_PORT, "INPUT", "kubernetes health check rules"),
    JumpRule("filter", KUBE_PROXY_FIREWALL, "INPUT", "kube-proxy firewall rules"),
    JumpRule("filter", KUBE_PROXY_FIREWALL, "FORWARD", "kube-proxy firewall rules"),
    JumpRule("filter", KUBE_IPVS_FILTER, "INPUT", "kubernetes ipvs access filter"),
    JumpRule("filter", KUBE_IPVS_OUT_FILTER, "OUTPUT", "kubernetes ipvs access filter"),
)

# --- ipsets (ipset.go) -------------------------------------------------------------------------
LOOP_BACK = "KUBE-LOOP-BACK"
CLUSTER_IP = "KUBE-CLUSTER-IP"
EXTERNAL_IP = "KUBE-EXTERNAL-IP"
EXTERNAL_IP_LOCAL = "KUBE-EXTERNAL-IP-LOCAL"
LOAD_BALANCER = "KUBE-LOAD-BALANCER"
LOAD_BALANCER_FW = "KUBE-LOAD-BALANCER-FW"
LOAD_BALANCER_LOCAL = "KUBE-LOAD-BALANCER-LOCAL"
LOAD_BALANCER_SOURCE_IP = "KUBE-LOAD-BALANCER-SOURCE-IP"
LOAD_BALANCER_SOURCE_CIDR = "KUBE-LOAD-BALANCER-SOURCE-CIDR"
NODE_PORT_TCP = "KUBE-NODE-PORT-TCP"
NODE_PORT_LOCAL_TCP = "KUBE-NODE-PORT-LOCAL-TCP"
NODE_PORT_UDP = "KUBE-NODE-PORT-UDP"
NODE_PORT_LOCAL_UDP = "KUBE-NODE-PORT-LOCAL-UDP"
NODE_PORT_SCTP = "KUBE-NODE-PORT-SCTP-HASH"
NODE_PORT_LOCAL_SCTP = "KUBE-NODE-PORT-LOCAL-SCTP-HASH"
HEALTH_CHECK_NODE_PORT = "KUBE-HEALTH-CHECK-NODE-PORT"
IPVS_IPS = "KUBE-IPVS-IPS"


@dataclass(frozen=True)
class IPSetInfo:
    name: str
    set_type: str
    comment: str

    def create_line(self) -> str:
        """What kube-proxy's util/ipset createSet passes: hash sets get family, hashsize and
        maxelem, bitmap:port sets the whole port range."""
        if self.set_type == "bitmap:port":
            return f"create {self.name} {self.set_type} range 0-65535"
        return f"create {self.name} {self.set_type} family inet hashsize 1024 maxelem 65536"


IPSETS: tuple[IPSetInfo, ...] = (
    IPSetInfo(LOOP_BACK, "hash:ip,port,ip", "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"),
    IPSetInfo(CLUSTER_IP, "hash:ip,port", "Kubernetes service cluster ip + port for masquerade purpose"),
    IPSetInfo(EXTERNAL_IP, "hash:ip,port", "Kubernetes service external ip + port for masquerade and filter purpose"),
    IPSetInfo(EXTERNAL_IP_LOCAL, "hash:ip,port", "Kubernetes service external ip + port with externalTrafficPolicy=local"),
    IPSetInfo(LOAD_BALANCER, "hash:ip,port", "Kubernetes service lb portal"),
    IPSetInfo(LOAD_BALANCER_FW, "hash:ip,port", "Kubernetes service load balancer ip + port for load balancer with sourceRange"),
    IPSetInfo(LOAD_BALANCER_LOCAL, "hash:ip,port",
              "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"),
    IPSetInfo(LOAD_BALANCER_SOURCE_IP, "hash:ip,port,ip",
              "Kubernetes service load balancer ip + port + source IP for packet filter purpose"),
    IPSetInfo(LOAD_BALANCER_SOURCE_CIDR, "hash:ip,port,net",
              "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"),
    IPSetInfo(NODE_PORT_TCP, "bitmap:port", "Kubernetes nodeport TCP port for masquerade purpose"),
    IPSetInfo(NODE_PORT_LOCAL_TCP, "bitmap:port", "Kubernetes nodeport TCP port with externalTrafficPolicy=local"),
    IPSetInfo(NODE_PORT_UDP, "bitmap:port", "Kubernetes nodeport UDP port for masquerade purpose"),
    IPSetInfo(NODE_PORT_LOCAL_UDP, "bitmap:port", "Kubernetes nodeport UDP port with externalTrafficPolicy=local"),
    IPSetInfo(NODE_PORT_SCTP, "hash:ip,port", "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"),
    IPSetInfo(NODE_PORT_LOCAL_SCTP, "hash:ip,port",
              "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"),
    IPSetInfo(HEALTH_CHECK_NODE_PORT, "bitmap:port", "Kubernetes health check node port"),
    IPSetInfo(IPVS_IPS, "hash:ip", "Addresses on the ipvs interface"),
)
IPSET_BY_NAME = {s.name: s for s in IPSETS}


@dataclass(frozen=True)
class IPSetJump:
    """ipsetWithIptablesChain: `-A <from> [-p proto] -m comment -m set --match-set <set> <match> -j <to>`
    written when the set is not empty."""
    set_name: str
    table: str
    source: str
    target: str
    match: str
    protocol: str = ""


IPSET_JUMPS: tuple[IPSetJump, ...] = (
    IPSetJump(LOOP_BACK, "nat", KUBE_POSTROUTING, "MASQUERADE", "dst,dst,src"),
    IPSetJump(LOAD_BALANCER, "nat", KUBE_SERVICES, KUBE_LOAD_BALANCER, "dst,dst"),
    IPSetJump(LOAD_BALANCER_LOCAL, "nat", KUBE_LOAD_BALANCER, "RETURN", "dst,dst"),
    IPSetJump(NODE_PORT_LOCAL_TCP, "nat", KUBE_NODE_PORT, "RETURN", "dst", "tcp"),
    IPSetJump(NODE_PORT_TCP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst", "tcp"),
    IPSetJump(NODE_PORT_LOCAL_UDP, "nat", KUBE_NODE_PORT, "RETURN", "dst", "udp"),
    IPSetJump(NODE_PORT_UDP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst", "udp"),
    IPSetJump(NODE_PORT_LOCAL_SCTP, "nat", KUBE_NODE_PORT, "RETURN", "dst,dst", "sctp"),
    IPSetJump(NODE_PORT_SCTP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst,dst", "sctp"),
    IPSetJump(LOAD_BALANCER_FW, "filter", KUBE_PROXY_FIREWALL, KUBE_SOURCE_RANGES_FIREWALL, "dst,dst"),
    IPSetJump(LOAD_BALANCER_SOURCE_CIDR, "filter", KUBE_SOURCE_RANGES_FIREWALL, "RETURN", "dst,dst,src"),
    IPSetJump(LOAD_BALANCER_SOURCE_IP, "filter", KUBE_SOURCE_RANGES_FIREWALL, "RETURN", "dst,dst,src"),
)

IPVSADM_PROTOCOL_FLAG = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service"}
FLAG_PROTOCOL = {v: k for k, v in IPVSADM_PROTOCOL_FLAG.items()}


# ---------------------------------------------------------------------------------------------
# The desired state


@dataclass(frozen=True, order=True)
class RealServer:
    ip: str
    port: int
    weight: int = 1

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class VirtualServer:
    """One IPVS service (utilipvs.VirtualServer) and its real servers."""
    protocol: str                        # tcp, udp, sctp
    ip: str
    port: int
    scheduler: str = DEFAULT_SCHEDULER
    persistence: int | None = None       # seconds: ClientIP affinity (FlagPersistent + Timeout)
    flags: tuple[str, ...] = ()          # scheduler flags, e.g. ("mh-port",) (FlagSourceHash)
    real_servers: tuple[RealServer, ...] = ()
    service: str = field(default="", compare=False)   # "ns/name" it belongs to (for partial syncs)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.protocol, self.ip, self.port)

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def spec(self) -> str:
        """`-t VIP:port -s rr [-p T] [-b flags]`, as ipvsadm -S prints a service."""
        words = [IPVSADM_PROTOCOL_FLAG[self.protocol], self.address, "-s", self.scheduler]
        if self.persistence is not None:
            words += ["-p", str(self.persistence)]
        if self.flags:
            words += ["-b", ",".join(self.flags)]
        return " ".join(words)

    def same_service(self, other: "VirtualServer") -> bool:
        """VirtualServer.Equal in kube-proxy: scheduler, flags, timeout (not the real servers)."""
        return (self.scheduler, self.persistence, self.flags) == (other.scheduler, other.persistence, other.flags)

    def dest_line(self, verb: str, rs: RealServer) -> str:
        head = f"{verb} {IPVSADM_PROTOCOL_FLAG[self.protocol]} {self.address} -r {rs.address}"
        return head if verb == "-d" else f"{head} -m -w {rs.weight}"


@dataclass(frozen=True)
class PortState:
    """What one Service port contributes to a node (one iteration of syncProxyRules' loop)."""
    service: str
    virtual_servers: tuple[VirtualServer, ...]
    bind_addresses: tuple[str, ...]                         # on kube-ipvs0
    ipset_entries: tuple[tuple[str, str], ...]              # (set, entry)
    lb_no_node_access: tuple[tuple[str, str, int], ...]     # (ip, proto, port): KUBE-IPVS-OUT-FILTER drops


def scheduler_for(port: ServicePort, default: str) -> str:
    scheduler = port.lb_algorithm or default
    if scheduler not in SCHEDULERS:
        raise TestbedError(f"{port.namespace}/{port.name}: testbed.io/lb-algorithm {scheduler!r} is not an IPVS "
                           f"scheduler (ipvs mode offers {', '.join(SCHEDULERS)})")
    return scheduler


def _weight(port: ServicePort, endpoint: Endpoint) -> int:
    """testbed.io/lb-weights by endpoint IP or pod name (a testbed extension; kube-proxy writes 1)."""
    weights = port.lb_weights
    if endpoint.ip in weights:
        return weights[endpoint.ip]
    if endpoint.pod_name and endpoint.pod_name in weights:
        return weights[endpoint.pod_name]
    return 1


def _real_servers(port: ServicePort, node: NodeInfo, only_local: bool) -> tuple[RealServer, ...]:
    """syncEndpoint: local endpoints when the policy is Local and there are some, else the cluster
    ones (kubernetes PR 97081: pods on a node without local endpoints still reach the Service)."""
    cats = categorize_endpoints(port, node.name)
    endpoints = cats.local if only_local and cats.local else cats.cluster
    return tuple(sorted(RealServer(e.ip, e.port, _weight(port, e)) for e in endpoints))


def port_state(port: ServicePort, node: NodeInfo, default_scheduler: str = DEFAULT_SCHEDULER) -> PortState:
    """The virtual servers, bound addresses and ipset entries of one Service port on `node`."""
    proto = port.protocol.lower()
    scheduler = scheduler_for(port, default_scheduler)
    flags = ("mh-port",) if scheduler == "mh" else ()
    service = f"{port.namespace}/{port.name}"

    def vs(ip: str, vport: int, only_local: bool) -> VirtualServer:
        return VirtualServer(proto, ip, vport, scheduler, port.affinity_timeout, flags,
                             _real_servers(port, node, only_local), service)

    entries: list[tuple[str, str]] = []
    for endpoint in port.endpoints:   # hairpin: local endpoints reaching themselves
        if endpoint.node_name == node.name:
            entries.append((LOOP_BACK, f"{endpoint.ip},{proto}:{endpoint.port},{endpoint.ip}"))
    entries.append((CLUSTER_IP, f"{port.cluster_ip},{proto}:{port.port}"))
    servers = [vs(port.cluster_ip, port.port, port.internal_policy_local)]
    binds = [port.cluster_ip]
    for ip in port.external_ips:
        entries.append((EXTERNAL_IP_LOCAL if port.external_policy_local else EXTERNAL_IP, f"{ip},{proto}:{port.port}"))
        servers.append(vs(ip, port.port, port.external_policy_local))
        if ip != node.ip:   # "must not add the address to the dummy device if it exists on another interface"
            binds.append(ip)
    no_node_access: list[tuple[str, str, int]] = []
    node_ip = ipaddress.ip_address(node.ip)
    for ip in port.load_balancer_ips:
        entry = f"{ip},{proto}:{port.port}"
        entries.append((LOAD_BALANCER, entry))
        if port.external_policy_local:
            entries.append((LOAD_BALANCER_LOCAL, entry))
        if port.load_balancer_source_ranges:
            entries.append((LOAD_BALANCER_FW, entry))
            allow_from_node = False
            for cidr in port.load_balancer_source_ranges:
                network = ipaddress.ip_network(cidr, strict=False)
                entries.append((LOAD_BALANCER_SOURCE_CIDR, f"{entry},{network}"))
                allow_from_node = allow_from_node or node_ip in network
            if allow_from_node:
                entries.append((LOAD_BALANCER_SOURCE_IP, f"{entry},{ip}"))
            else:
                no_node_access.append((ip, proto, port.port))
        servers.append(vs(ip, port.port, port.external_policy_local))
        if ip != node.ip:
            binds.append(ip)
    if port.node_port:
        if proto == "sctp":
            node_port_entries = [f"{node.ip},{proto}:{port.node_port}"]
        else:
            node_port_entries = [str(port.node_port)]
        sets = {"tcp": (NODE_PORT_TCP, NODE_PORT_LOCAL_TCP), "udp": (NODE_PORT_UDP, NODE_PORT_LOCAL_UDP),
                "sctp": (NODE_PORT_SCTP, NODE_PORT_LOCAL_SCTP)}[proto]
        entries += [(sets[0], e) for e in node_port_entries]
        if port.external_policy_local:
            entries += [(sets[1], e) for e in node_port_entries]
        servers.append(vs(node.ip, port.node_port, port.external_policy_local))   # --nodeport-addresses primary
    if port.health_check_node_port:
        entries.append((HEALTH_CHECK_NODE_PORT, str(port.health_check_node_port)))
    return PortState(service, tuple(servers), tuple(binds), tuple(entries), tuple(no_node_access))


def _port_key(port: ServicePort) -> tuple[str, str, str, str]:
    return (port.namespace, port.name, port.port_name, port.protocol)


@dataclass(frozen=True)
class IpvsState:
    """The whole desired state of one node."""
    node: NodeInfo
    mark: str
    ports: tuple[PortState, ...]

    @property
    def virtual_servers(self) -> dict[tuple[str, str, int], VirtualServer]:
        # Two Services cannot share a VIP:port (the API server refuses it); later ones would win.
        return {v.key: v for p in self.ports for v in p.virtual_servers}

    @property
    def bind_addresses(self) -> frozenset[str]:
        return frozenset(a for p in self.ports for a in p.bind_addresses)

    def ipset_entries(self) -> dict[str, frozenset[str]]:
        entries: dict[str, set[str]] = {s.name: set() for s in IPSETS}
        for p in self.ports:
            for name, entry in p.ipset_entries:
                entries[name].add(entry)
        entries[IPVS_IPS] = set(self.bind_addresses)   # "Set the KUBE-IPVS-IPS set to the activeBindAddrs"
        return {name: frozenset(values) for name, values in entries.items()}

    @property
    def real_server_count(self) -> int:
        return sum(len(v.real_servers) for v in self.virtual_servers.values())

    def ipvsadm_text(self) -> str:
        """`ipvsadm -S -n` of the desired state: what `ipvsadm-restore` loads into an empty table."""
        lines = []
        for v in self.virtual_servers.values():
            lines.append(f"-A {v.spec()}")
            lines += [v.dest_line("-a", rs) for rs in v.real_servers]
        return "\n".join(lines) + ("\n" if lines else "")

    def iptables_text(self, jumps: Iterable[JumpRule] = JUMP_RULES, entries: Mapping[str, frozenset[str]] | None = None) -> str:
        return iptables_rules(self, jumps, self.ipset_entries() if entries is None else entries)


def build_state(ports: Sequence[ServicePort], node: NodeInfo, *, scheduler: str = DEFAULT_SCHEDULER,
                masquerade_bit: int = 14, memo: dict | None = None) -> IpvsState:
    """The desired IPVS/ipset/iptables state of `node` (pure). `memo` keeps each port's state
    between calls: unchanged Services are not computed again."""
    proxied = sorted((p for p in ports if p.cluster_ip), key=_port_key)
    if memo is None:
        states = tuple(port_state(p, node, scheduler) for p in proxied)
    else:
        previous = dict(memo)
        memo.clear()
        for port in proxied:
            key = (port, node, scheduler)
            memo[key] = previous.get(key) or port_state(port, node, scheduler)
        states = tuple(memo[(port, node, scheduler)] for port in proxied)
    return IpvsState(node, masquerade_mark(masquerade_bit), states)


# ---------------------------------------------------------------------------------------------
# iptables (writeIptablesRules)


def _comment(set_name: str) -> list[str]:
    return ["-m", "comment", "--comment", f'"{IPSET_BY_NAME[set_name].comment}"']


def iptables_rules(state: IpvsState, jumps: Iterable[JumpRule], entries: Mapping[str, frozenset[str]]) -> str:
    """iptables-restore input (for --noflush) with the chains of iptablesChains, the missing jumps
    and the rules of writeIptablesRules, in kube-proxy's order."""
    nonempty = {name for name, values in entries.items() if values}
    mark = state.mark
    nat: list[str] = [f"-A {KUBE_SERVICES} -s 127.0.0.0/8 -j RETURN"]   # "Dismiss connects to localhost early"
    filt: list[str] = []
    for jump in IPSET_JUMPS:
        if jump.set_name not in nonempty:
            continue
        words = ["-A", jump.source] + (["-p", jump.protocol] if jump.protocol else [])
        words += [*_comment(jump.set_name), "-m", "set", "--match-set", jump.set_name, jump.match, "-j", jump.target]
        (filt if jump.table == "filter" else nat).append(" ".join(words))
    cluster = ["-A", KUBE_SERVICES, *_comment(CLUSTER_IP), "-m", "set", "--match-set", CLUSTER_IP]
    if CLUSTER_IP in nonempty:   # localDetector.IfNotLocal(): masquerade off-cluster traffic to a VIP
        nat.append(" ".join([*cluster, "dst,dst", "!", "-s", state.node.cluster_cidr, "-j", KUBE_MARK_MASQ]))

    def external_ip_rules(args: list[str]) -> None:
        nat.append(" ".join([*args, "-m", "physdev", "!", "--physdev-is-in", "-m", "addrtype", "!", "--src-type",
                             "LOCAL", "-j", "ACCEPT"]))
        nat.append(" ".join([*args, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "ACCEPT"]))

    if EXTERNAL_IP in nonempty:
        args = ["-A", KUBE_SERVICES, *_comment(EXTERNAL_IP), "-m", "set", "--match-set", EXTERNAL_IP, "dst,dst"]
        nat.append(" ".join([*args, "-j", KUBE_MARK_MASQ]))
        external_ip_rules(args)
    if EXTERNAL_IP_LOCAL in nonempty:
        external_ip_rules(["-A", KUBE_SERVICES, *_comment(EXTERNAL_IP_LOCAL), "-m", "set", "--match-set",
                           EXTERNAL_IP_LOCAL, "dst,dst"])
    nat.append(f"-A {KUBE_SERVICES} -m addrtype --dst-type LOCAL -j {KUBE_NODE_PORT}")
    nat.append(f"-A {KUBE_LOAD_BALANCER} -j {KUBE_MARK_MASQ}")
    filt.append(f"-A {KUBE_SOURCE_RANGES_FIREWALL} -j DROP")
    for ip, proto, vport in sorted({e for p in state.ports for e in p.lb_no_node_access}):
        filt.append(f"-A {KUBE_IPVS_OUT_FILTER} -s {ip} -m ipvs --vaddr {ip} --vproto {proto} --vport {vport} -j DROP")
    for name in (CLUSTER_IP, LOAD_BALANCER):   # acceptIPVSTraffic
        if name in nonempty:
            nat.append(f"-A {KUBE_SERVICES} -m set --match-set {name} dst,dst -j ACCEPT")
    filt += [
        f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" -m mark --mark {mark}/{mark} -j ACCEPT',
        f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack '
        "--ctstate RELATED,ESTABLISHED -j ACCEPT",
        " ".join(["-A", KUBE_NODE_PORT, *_comment(HEALTH_CHECK_NODE_PORT), "-m", "set", "--match-set",
                  HEALTH_CHECK_NODE_PORT, "dst", "-j", "ACCEPT"]),
        f"-A {KUBE_IPVS_FILTER} -m set --match-set {LOAD_BALANCER} dst,dst -j RETURN",
        f"-A {KUBE_IPVS_FILTER} -m set --match-set {CLUSTER_IP} dst,dst -j RETURN",
        f"-A {KUBE_IPVS_FILTER} -m set --match-set {EXTERNAL_IP} dst,dst -j RETURN",
        f"-A {KUBE_IPVS_FILTER} -m set --match-set {EXTERNAL_IP_LOCAL} dst,dst -j RETURN",
        f"-A {KUBE_IPVS_FILTER} -m set --match-set {HEALTH_CHECK_NODE_PORT} dst -j RETURN",
        f"-A {KUBE_IPVS_FILTER} -m conntrack --ctstate NEW -m set --match-set {IPVS_IPS} dst -j REJECT",
    ]
    nat += [
        f"-A {KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
        f"-A {KUBE_POSTROUTING} -j MARK --xor-mark {mark}",
        f'-A {KUBE_POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        f"-A {KUBE_MARK_MASQ} -j MARK --or-mark {mark}",
    ]
    jumps = tuple(jumps)
    out = ["*nat"] + [f":{c} - [0:0]" for t, c in IPTABLES_CHAINS if t == "nat"]
    out += [j.insert_line() for j in jumps if j.table == "nat"]
    out += nat + ["COMMIT", "*filter"] + [f":{c} - [0:0]" for t, c in IPTABLES_CHAINS if t == "filter"]
    out += [j.insert_line() for j in jumps if j.table == "filter"]
    out += filt + ["COMMIT"]
    return "\n".join(out) + "\n"


def ipset_text(entries: Mapping[str, frozenset[str]], current: Mapping[str, frozenset[str]] | None = None) -> str:
    """`ipset restore` input: every set created (-exist), then the entries to add and remove
    (syncIPSetEntries); `current=None` means the sets are empty (a render)."""
    lines = [s.create_line() + " -exist" for s in IPSETS]
    for s in IPSETS:
        want, have = entries.get(s.name, frozenset()), (current or {}).get(s.name, frozenset())
        lines += [f"add {s.name} {e} -exist" for e in sorted(want - have)]
        lines += [f"del {s.name} {e} -exist" for e in sorted(have - want)]
    return "\n".join(lines) + "\n"


def address_text(want: Iterable[str], have: Iterable[str] = (), *, create_device: bool = False) -> str:
    """`ip -batch` input: the dummy device (EnsureDummyDevice), binds and unbinds."""
    want, have = set(want), set(have)
    lines = [f"link add {DUMMY_DEVICE} type dummy"] if create_device else []
    lines += [f"address add {a}/32 dev {DUMMY_DEVICE}" for a in sorted(want - have, key=ipaddress.ip_address)]
    lines += [f"address del {a}/32 dev {DUMMY_DEVICE}" for a in sorted(have - want, key=ipaddress.ip_address)]
    return "\n".join(lines) + ("\n" if lines else "")


def render_ipvs(ports: Sequence[ServicePort], node: NodeInfo, *, scheduler: str = DEFAULT_SCHEDULER) -> str:
    """`testbed render ipvs`: ipvsadm-restore text, then the interface, ipset and iptables parts
    of the same full sync as a commented section (ipvsadm-restore skips `#` lines)."""
    state = build_state(ports, node, scheduler=scheduler)
    entries = state.ipset_entries()
    out = [f"# kube-proxy ipvs mode, node {node.name}: ipvsadm-restore input (virtual and real servers)",
           state.ipvsadm_text().rstrip("\n")]
    sections = (("ip -batch (the dummy interface and the addresses bound on it)",
                 address_text(state.bind_addresses, create_device=True)),
                ("ipset restore", ipset_text(entries)),
                ("iptables-restore --noflush", state.iptables_text(JUMP_RULES, entries)))
    for title, text in sections:
        out.append(f"#\n# --- {title} ---")
        out += [f"# {line}" for line in text.splitlines()]
    return "\n".join(line for line in out if line) + "\n"


# ---------------------------------------------------------------------------------------------
# Reading the kernel's state


@dataclass
class InstalledState:
    """What this proxier knows is in the node: virtual servers, bound addresses, ipset entries."""
    virtual_servers: dict[tuple[str, str, int], VirtualServer] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)
    ipsets: dict[str, frozenset[str]] = field(default_factory=dict)


def parse_ipvsadm_save(text: str) -> dict[tuple[str, str, int], VirtualServer]:
    """`ipvsadm -S -n` output -> virtual servers with their real servers."""
    services: dict[tuple[str, str, int], VirtualServer] = {}
    dests: dict[tuple[str, str, int], list[RealServer]] = {}
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] not in ("-A", "-a"):
            continue
        proto, address = FLAG_PROTOCOL[words[1]], words[2]
        ip, _, port = address.rpartition(":")
        key = (proto, ip, int(port))
        opts = dict(zip(words[3::1], words[4::1]))
        if words[0] == "-A":
            services[key] = VirtualServer(proto, ip, int(port), opts.get("-s", DEFAULT_SCHEDULER),
                                          int(opts["-p"]) if "-p" in opts else None,
                                          tuple(opts["-b"].split(",")) if "-b" in opts else ())
            dests.setdefault(key, [])
        else:
            rip, _, rport = opts["-r"].rpartition(":")
            dests.setdefault(key, []).append(RealServer(rip, int(rport), int(opts.get("-w", "1"))))
    return {k: replace(v, real_servers=tuple(sorted(dests.get(k, ())))) for k, v in services.items()}


def parse_connections(text: str) -> dict[tuple[tuple[str, str, int], str], tuple[int, int]]:
    """`ipvsadm -L -n` -> {(vs key, "rip:port"): (ActiveConn, InActConn)}."""
    out: dict[tuple[tuple[str, str, int], str], tuple[int, int]] = {}
    current = None
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] in ("TCP", "UDP", "SCTP"):
            ip, _, port = words[1].rpartition(":")
            current = (words[0].lower(), ip, int(port))
        elif current and len(words) >= 6 and words[0] == "->" and ":" in words[1]:
            out[(current, words[1])] = (int(words[4]), int(words[5]))
    return out


def parse_ipset_save(text: str) -> dict[str, frozenset[str]]:
    entries: dict[str, set[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "create":
            entries.setdefault(words[1], set())
        elif len(words) >= 3 and words[0] == "add":
            entries.setdefault(words[1], set()).add(words[2])
    return {name: frozenset(values) for name, values in entries.items()}


def parse_addresses(text: str) -> set[str]:
    """`ip -o -4 addr show dev kube-ipvs0` -> the bound addresses."""
    out = set()
    for line in text.splitlines():
        words = line.split()
        if "inet" in words:
            out.add(words[words.index("inet") + 1].split("/")[0])
    return out


# ---------------------------------------------------------------------------------------------
# The diff: what an ipvsadm-restore must do


@dataclass(frozen=True)
class IpvsChanges:
    lines: tuple[str, ...]                             # ipvsadm-restore input
    terminating: frozenset[tuple[tuple[str, str, int], RealServer]]   # set to weight 0, delete later
    services_touched: frozenset[str]


def diff_virtual_servers(want: Mapping[tuple[str, str, int], VirtualServer],
                         have: Mapping[tuple[str, str, int], VirtualServer],
                         connections: Mapping[tuple[tuple[str, str, int], str], tuple[int, int]],
                         terminating: frozenset[tuple[tuple[str, str, int], RealServer]] = frozenset()) -> IpvsChanges:
    """syncService / syncEndpoint / cleanLegacyService as ipvsadm commands. A real server that
    leaves is deleted when it has no connections (ActiveConn + InActConn; UDP: ActiveConn only),
    else set to weight 0 and remembered in `terminating` (GracefulDeleteRS)."""
    lines: list[str] = []
    waiting: set[tuple[tuple[str, str, int], RealServer]] = set()
    touched: set[str] = set()
    for key, vs in want.items():
        old = have.get(key)
        if old is None:
            lines.append(f"-A {vs.spec()}")
            lines += [vs.dest_line("-a", rs) for rs in vs.real_servers]
            touched.add(vs.service)
            continue
        if not vs.same_service(old):
            lines.append(f"-E {vs.spec()}")
            touched.add(vs.service)
        wanted = {rs.address: rs for rs in vs.real_servers}
        present = {rs.address: rs for rs in old.real_servers}
        for address, rs in wanted.items():
            if address not in present:
                lines.append(vs.dest_line("-a", rs))
            elif present[address].weight != rs.weight:   # a weight change, or back from graceful deletion
                lines.append(vs.dest_line("-e", rs))
            else:
                continue
            touched.add(vs.service)
        for address, rs in present.items():
            if address in wanted:
                continue
            active, inactive = connections.get((key, address), (0, 0))
            busy = active if vs.protocol == "udp" else active + inactive
            if busy:
                if rs.weight != 0:
                    lines.append(vs.dest_line("-e", replace(rs, weight=0)))
                    touched.add(vs.service)
                waiting.add((key, replace(rs, weight=0)))
            else:
                lines.append(vs.dest_line("-d", rs))
                touched.add(vs.service)
    for key, vs in have.items():
        if key not in want:
            lines.append(f"-D {IPVSADM_PROTOCOL_FLAG[vs.protocol]} {vs.address}")
            touched.add(vs.service)
    return IpvsChanges(tuple(lines), frozenset(waiting), frozenset(t for t in touched if t))


# ---------------------------------------------------------------------------------------------
# The applier

SYSCTLS = (  # NewProxier's EnsureSysctl calls (conn_reuse_mode is left as-is on kernels >= 5.9)
    ("net.ipv4.vs.conntrack", "1"),
    ("net.ipv4.vs.expire_nodest_conn", "1"),
    ("net.ipv4.vs.expire_quiescent_template", "1"),
    ("net.ipv4.ip_forward", "1"),
    # strictARP (proxier.go: sysctlArpIgnore, sysctlArpAnnounce)
    ("net.ipv4.conf.all.arp_ignore", "1"),
    ("net.ipv4.conf.all.arp_announce", "2"),
)
STRICT_ARP_DEFAULTS = (("net.ipv4.conf.all.arp_ignore", "0"), ("net.ipv4.conf.all.arp_announce", "0"))  # the kernel's


class IpvsProxier:
    """Keeps a node namespace's IPVS table, ipsets, kube-ipvs0 and iptables in kube-proxy's ipvs
    layout: one ipset restore, one ip -batch, one ipvsadm-restore and one iptables-restore per
    sync (each only when it has something to do).

    The first sync (and the first after a failure) is full: it reads the kernel's state
    (ipvsadm -S, ipset save, the addresses on kube-ipvs0, iptables-save) and writes the
    difference. Later syncs diff against what this proxier installed, recomputing only changed
    Services (memoised per port): unchanged Services cost nothing."""

    def __init__(self, runner: NamespaceRunner, node: NodeInfo, *, scheduler: str = DEFAULT_SCHEDULER,
                 restore_command: str = "iptables-restore", masquerade_bit: int = 14,
                 check_interval: float = RS_CHECK_DELETE_INTERVAL):
        self.runner = runner
        self.node = node
        self.scheduler = scheduler
        self.restore_command = restore_command
        self.save_command = restore_command[: -len("-restore")] + "-save"
        self.masquerade_bit = masquerade_bit
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._in_sync = False
        self._installed = InstalledState()
        self._iptables_text = ""
        self._terminating: frozenset[tuple[tuple[str, str, int], RealServer]] = frozenset()
        self._memo: dict = {}
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    # -- sync -----------------------------------------------------------------------------
    def sync(self, ports: Sequence[ServicePort], changed: frozenset[ServiceKey] | None = None) -> SyncResult:
        with self._lock:
            return self._sync(ports, changed)

    def _sync(self, ports, changed) -> SyncResult:
        started = time.perf_counter()
        state = build_state(ports, self.node, scheduler=self.scheduler, masquerade_bit=self.masquerade_bit,
                            memo=self._memo)
        want_vs = state.virtual_servers
        want_sets = state.ipset_entries()
        want_bound = state.bind_addresses
        full = not self._in_sync or changed is None
        seconds_read = 0.0
        self._in_sync = False   # if anything below fails, the next sync is a full one
        if full:
            read_started = time.perf_counter()
            self._prepare_node()
            installed = self.read_state()
            saved = parse_save(self.runner.run([self.save_command]).stdout)
            jumps = [j for j in JUMP_RULES if not saved.has_jump(j)]
            seconds_read = time.perf_counter() - read_started
        else:
            installed, jumps = self._installed, []
        connections = self._connections(want_vs, installed.virtual_servers)
        changes = diff_virtual_servers(want_vs, installed.virtual_servers, connections)
        # Real servers waiting for deletion stay in the table (weight 0) until reaped.
        keep = {key: rs for key, rs in changes.terminating}
        sets_text = ipset_text(want_sets, installed.ipsets)
        addresses = address_text(want_bound, installed.bound)
        iptables = state.iptables_text(jumps, want_sets)
        iptables_rules_only = state.iptables_text((), want_sets) if jumps else iptables
        seconds_render = time.perf_counter() - started - seconds_read
        apply_started = time.perf_counter()
        set_changes = sum(1 for line in sets_text.splitlines() if not line.startswith("create "))
        if full or set_changes:
            self.runner.run(["ipset", "restore"], input=sets_text, timeout=None)
        if changes.lines:
            self._ipvsadm_restore("\n".join(changes.lines) + "\n")
        if addresses:
            self.runner.run(["ip", "-force", "-batch", "-"], input=addresses, timeout=None)
        if full or iptables_rules_only != self._iptables_text:
            self.runner.run([self.restore_command, "-w", "5", "--noflush", "--counters"], input=iptables, timeout=None)
        seconds_apply = time.perf_counter() - apply_started + seconds_read
        installed_vs = dict(want_vs)
        for key, rs in keep.items():
            installed_vs[key] = replace(installed_vs[key], real_servers=tuple(sorted((*installed_vs[key].real_servers, rs))))
        self._installed = InstalledState(installed_vs, set(want_bound), dict(want_sets))
        self._terminating = frozenset(changes.terminating)
        self._iptables_text = iptables_rules_only
        self._in_sync = True
        self._ensure_reaper()
        rewritten = ({p.service for p in state.ports} if full
                     else {f"{n}/{s}" for n, s in changed} | set(changes.services_touched))
        rules = len(want_vs) + state.real_server_count
        return SyncResult(seconds_render, seconds_apply, rules, tuple(sorted(rewritten)), full,
                          len(changes.lines) + set_changes + len(addresses.splitlines()),
                          {"virtual_servers": len(want_vs), "real_servers": state.real_server_count,
                           "ipset_entries": sum(len(v) for v in want_sets.values()),
                           "bound_addresses": len(want_bound), "terminating": len(changes.terminating)})

    def _prepare_node(self) -> None:
        """NewProxier's sysctls and EnsureDummyDevice (kube-ipvs0 stays down, as kube-proxy leaves it)."""
        self.runner.run(["sysctl", "-q", "-w", *[f"{k}={v}" for k, v in SYSCTLS]])
        if self.runner.run(["ip", "link", "show", DUMMY_DEVICE], check=False).returncode != 0:
            self.runner.run(["ip", "link", "add", DUMMY_DEVICE, "type", "dummy"])

    def read_state(self) -> InstalledState:
        vs = parse_ipvsadm_save(self.runner.run(["ipvsadm", "-S", "-n"]).stdout)
        sets = parse_ipset_save(self.runner.run(["ipset", "save"]).stdout)
        bound = parse_addresses(self.runner.run(["ip", "-o", "-4", "addr", "show", "dev", DUMMY_DEVICE], check=False).stdout)
        return InstalledState(vs, bound, {name: sets.get(name, frozenset()) for name in IPSET_BY_NAME})

    def _connections(self, want, have) -> dict:
        """Connection counts, read only when a real server is about to leave a virtual server."""
        leaving = any({r.address for r in vs.real_servers} - {r.address for r in want[key].real_servers}
                      for key, vs in have.items() if key in want)
        return parse_connections(self.runner.run(["ipvsadm", "-L", "-n"]).stdout) if leaving else {}

    def _ipvsadm_restore(self, text: str) -> None:
        # ipvsadm -R reports a failed line on stderr and carries on: any complaint is a failure.
        proc = self.runner.run(["ipvsadm", "-R"], input=text, timeout=None)
        if proc.stderr.strip():
            raise RuntimeError(f"ipvsadm-restore: {proc.stderr.strip()}")

    # -- graceful deletion ----------------------------------------------------------------
    def reap_terminating(self) -> int:
        """tryDeleteRs: delete the weight-0 real servers whose connections are gone."""
        with self._lock:
            if not self._terminating or not self._in_sync:
                return 0
            counts = parse_connections(self.runner.run(["ipvsadm", "-L", "-n"]).stdout)
            done = []
            for key, rs in self._terminating:
                active, inactive = counts.get((key, rs.address), (0, 0))
                if (active if key[0] == "udp" else active + inactive) == 0:
                    done.append((key, rs))
            if not done:
                return 0
            lines = [self._installed.virtual_servers[key].dest_line("-d", rs) for key, rs in done
                     if key in self._installed.virtual_servers]
            try:
                self._ipvsadm_restore("\n".join(lines) + "\n")
            except Exception:
                self._in_sync = False
                raise
            for key, rs in done:
                vs = self._installed.virtual_servers.get(key)
                if vs is not None:
                    self._installed.virtual_servers[key] = replace(
                        vs, real_servers=tuple(r for r in vs.real_servers if r.address != rs.address))
            self._terminating = self._terminating - set(done)
            return len(done)

    def _ensure_reaper(self) -> None:
        if self._terminating and (self._reaper is None or not self._reaper.is_alive()):
            self._reaper = threading.Thread(target=self._reap_loop, name=f"ipvs-graceful-{self.node.name}", daemon=True)
            self._reaper.start()

    def _reap_loop(self) -> None:
        while not self._stop.wait(scaled(self.check_interval)):
            try:
                self.reap_terminating()
            except Exception:
                pass   # the next sync is a full one and re-reads the kernel
            if not self._terminating:
                return

    # -- cleanup ---------------------------------------------------------------------------
    def cleanup(self) -> None:
        """cleanupLeftovers: flush IPVS, delete kube-ipvs0, remove the iptables jumps and chains,
        then destroy the ipsets (they cannot go while iptables rules reference them)."""
        with self._lock:
            self.runner.run(["ipvsadm", "-C"], check=False)
            self.runner.run(["ip", "link", "del", DUMMY_DEVICE], check=False)
            text = cleanup_text(parse_save(self.runner.run([self.save_command]).stdout))
            if text:
                self.runner.run([self.restore_command, "-w", "5", "--noflush"], input=text)
            drop_empty_nft_tables(self.runner, self.save_command)
            present = parse_ipset_save(self.runner.run(["ipset", "save"], check=False).stdout)
            destroy = "".join(f"destroy {s.name}\n" for s in IPSETS if s.name in present)
            if destroy:
                self.runner.run(["ipset", "restore"], input=destroy)
            # kube-proxy leaves its sysctls; here the node must be as fresh for the next mode, and
            # strict ARP would keep its kernel from answering ARP for a local-route announcement.
            self.runner.run(["sysctl", "-q", "-w", *[f"{k}={v}" for k, v in STRICT_ARP_DEFAULTS]], check=False)
            self._in_sync, self._installed, self._iptables_text = False, InstalledState(), ""
            self._terminating, self._memo = frozenset(), {}

    def stop(self) -> None:
        self._stop.set()


def cleanup_text(saved) -> str:
    """Restore input that deletes the jumps to, and the chains of, the ipvs proxier (iptablesCleanupChains)."""
    return chain_removal_text(saved, {table: [c for t, c in IPTABLES_CHAINS if t == table and c in saved.chains[table]]
                                      for table in ("nat", "filter") if table in saved.chains})


# ---------------------------------------------------------------------------------------------
# Registration


def unavailable() -> str | None:
    if kernel_has_ipvs():
        return None
    return ("this kernel has no IPVS (no /proc/net/ip_vs, and the ip_vs module cannot be loaded). Run the "
            "testbed under a kernel that has it with `testbed vm -- testbed up --proxy-mode ipvs ...`, or use "
            "`--proxy-mode nftables`, the hash-based (verdict map) kube-proxy mode this kernel can run")


def _render(ports: Sequence[ServicePort], node: NodeInfo, layout=None) -> str:
    options = (layout.options if layout is not None else {}) or {}
    return render_ipvs(ports, node, scheduler=options.get("ipvs_scheduler", DEFAULT_SCHEDULER))


register(Backend(
    mode="ipvs",
    summary="kube-proxy's IPVS mode: ClusterIPs, external and LoadBalancer IPs bound on the dummy kube-ipvs0, one "
            "virtual server per address and port with masquerading real servers (`ipvsadm-restore`), kube-proxy's "
            "ipsets (KUBE-CLUSTER-IP, KUBE-LOOP-BACK, KUBE-NODE-PORT-TCP, ...) and iptables rules (KUBE-SERVICES, "
            "KUBE-NODE-PORT, KUBE-LOAD-BALANCER, KUBE-POSTROUTING, KUBE-IPVS-FILTER), IPVS sysctls, schedulers "
            "rr/wrr/lc/wlc/sh/dh/sed/nq/mh (`--ipvs-scheduler` and per Service `testbed.io/lb-algorithm`), "
            "ClientIP affinity as persistence, graceful real-server deletion, partial syncs",
    render=_render,
    make_proxier=lambda ctx: IpvsProxier(ctx.runner, ctx.node, scheduler=ctx.options.get("ipvs_scheduler", DEFAULT_SCHEDULER)),
    required_tools=("ipvsadm", "ipset", "ip", "iptables-restore", "iptables-save", "sysctl"),
    algorithms=SCHEDULERS,
    options=(BackendOption("ipvs_scheduler", SCHEDULERS, DEFAULT_SCHEDULER,
                           "kube-proxy's --ipvs-scheduler: the IPVS scheduler of every Service without "
                           "a testbed.io/lb-algorithm annotation"),),
    unavailable=unavailable,
    describe=lambda options: f"ipvs ({options['ipvs_scheduler']})",
    state_command="ipvsadm -Ln; ipset list -t; iptables-save",
    strict_arp=True,
))
