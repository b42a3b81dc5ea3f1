"""The OpenFlow pipeline of one node bridge, computed purely from (topology, Service ports).

docs/sdn-pipeline.md draws the tables; in short, a packet entering a node bridge goes

    0 CLASSIFY -> 1 CONNTRACK -> 2 CT_STATE -> 10 SERVICE -> [11 AFFINITY] -> [12 SELECT] -> [13 SLOT]
      -> 14 ENDPOINT (DNAT commit) -> 20 POST_DNAT -> [21 CONNECTIONS] -> 22 SNAT -> 30 L3 -> 40 OUTPUT
    (ARP: 0 CLASSIFY -> answered there, or 31 L2 -> 40 OUTPUT)

Semantics follow kube-proxy (iptables mode):
- ClusterIP: DNAT to an endpoint (conntrack zone `bridge.dnat_zone`), masquerade when the client is
  outside the cluster CIDR (kube-proxy's `! -s clusterCIDR -j KUBE-MARK-MASQ`).
- NodePort (on the node IP), LoadBalancer IPs, externalIPs: externalTrafficPolicy Cluster always
  masquerades to the node IP (as kube-proxy's KUBE-EXT chains do, whether the endpoint is local
  or not); Local keeps the client address and uses local endpoints only (none: drop). Pods and the
  node itself reaching those addresses are short-circuited to the cluster-wide endpoints, as
  kube-proxy does (the node's own traffic masqueraded).
- internalTrafficPolicy Local: node-local endpoints only (none: drop).
- Hairpin: a pod reaching itself through a Service is SNATed to its gateway IP, so the reply comes
  back through the pipeline.
- No endpoints: the controller answers with a TCP RST or an ICMP port unreachable.
- ClientIP affinity: a `learn` action records client -> endpoint in table 11 with an idle
  timeout of timeoutSeconds (refreshed by each new connection, like iptables' `recent`).
- After DNAT the pipeline routes itself (sets MACs, outputs to the pod, to the uplink with the
  remote node's MAC, or to the node port); replies are un-NATed by conntrack where the NAT was done.
- Every other IPv4 connection is committed (mark 0) so that replies are not `+inv`.
Not implemented: SCTP Services (OVS' userspace conntrack cannot NAT SCTP): they get no flows.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Sequence

from testbed.proxy.model import Endpoint, ServicePort
from testbed.proxy.topology import external_endpoints, internal_endpoints
from testbed.sdn import algorithms
from testbed.sdn.flows import (
    CONTROLLER, ETH_ARP, ETH_IP, FLOOD, IN_PORT, KIND_ADDRESS, KIND_AFFINITY, KIND_BASE, KIND_HOST,
    KIND_POD, KIND_SERVICE, L4_FIELDS, PROTOCOLS, Bucket, Ct, Flow, FlowSet, Group, Learn, Move,
    Multipath, Nat, Output, OutputReg, Resubmit, SelectGroup, SetField, TCP_FIN, TCP_RST, ct_state,
    flow_to_ofctl, group_to_ofctl, match, owner_cookie, owner_hash, service_owner)
from testbed.sdn.wiring import PIPELINE_MAC, Bridge, Host, Pod, Wiring

# Tables
T_CLASSIFY, T_CONNTRACK, T_CT_STATE = 0, 1, 2
T_SERVICE, T_AFFINITY, T_SELECT, T_SLOT, T_ENDPOINT = 10, 11, 12, 13, 14
T_POST_DNAT, T_CONNECTIONS, T_SNAT, T_CLOSING = 20, 21, 22, 23
T_L3, T_L2, T_OUTPUT = 30, 31, 40
TABLE_NAMES = {T_CLASSIFY: "CLASSIFY", T_CONNTRACK: "CONNTRACK", T_CT_STATE: "CT_STATE", T_SERVICE: "SERVICE",
               T_AFFINITY: "AFFINITY", T_SELECT: "SELECT", T_SLOT: "SLOT", T_ENDPOINT: "ENDPOINT",
               T_POST_DNAT: "POST_DNAT", T_CONNECTIONS: "CONNECTIONS", T_SNAT: "SNAT", T_CLOSING: "CLOSING", T_L3: "L3",
               T_L2: "L2", T_OUTPUT: "OUTPUT"}

# Registers
REG_EP_IP = "reg0"        # chosen endpoint's IPv4 address (0: none chosen yet)
REG_SLOT = "reg1"         # hash slot from multipath
REG_FLAGS = "reg2"        # connection flags below; committed into the DNAT zone's ct_mark
REG_OUT = "reg3"          # output port chosen by L3/L2
REG_INSTANCE = "reg4"     # Service instance id (one Service port with one endpoint set)
REG_EP_PORT = "reg5"      # chosen endpoint's port

# Connection flags (reg2, ct_mark of the DNAT zone) and the SNAT zone's mark
FLAG_SERVICE = 0x1        # DNATed by a Service
FLAG_MASQ_ALWAYS = 0x2    # masquerade to the node IP
FLAG_MASQ_OFF_CLUSTER = 0x4   # masquerade unless the client is in the cluster CIDR
FLAG_REACTIVE = 0x8       # the controller chose the endpoint: count the connection
MARK_SNATTED = 0x100      # ct_mark in the SNAT zone: this connection is SNATed

BROADCAST = "ff:ff:ff:ff:ff:ff"
MAX_TIMEOUT = 65535       # OpenFlow timeouts are 16 bits; longer affinity timeouts are capped

# Priorities of Service frontends (table SERVICE)
P_FRONTEND = 200
P_FRONTEND_SOURCE_RANGE = 230
P_FRONTEND_FROM_PODS = 210
P_FRONTEND_FROM_NODE = 211


@lru_cache(maxsize=100_000)
def ip_int(ip: str) -> int:
    return int.from_bytes(socket.inet_aton(ip), "big") if ip.count(".") == 3 else int(ipaddress.IPv4Address(ip))


class InstanceIds:
    """Stable 31-bit ids of Service instances (also their select group ids).

    An id is the hash of the instance's key, so the same Service gets the same id in every
    process (a restarted controller finds its old flows equal); a collision, rare at 10,000
    Services, is resolved by probing, which depends on allocation order."""

    def __init__(self) -> None:
        self._by_key: dict[str, int] = {}
        self._keys: dict[int, str] = {}

    def id_for(self, key: str) -> int:
        known = self._by_key.get(key)
        if known is not None:
            return known
        candidate = owner_hash("instance:" + key) & 0x7FFFFFFF or 1
        while candidate in self._keys:
            candidate = candidate % 0x7FFFFFFF + 1
        self._by_key[key], self._keys[candidate] = candidate, key
        return candidate

    def release(self, keys: Iterable[str]) -> None:
        for key in keys:
            known = self._by_key.pop(key, None)
            if known is not None:
                self._keys.pop(known, None)

    def key_of(self, instance_id: int) -> str | None:
        return self._keys.get(instance_id)


@dataclass(frozen=True)
class Instance:
    """One Service port with one endpoint set, as seen from one bridge (kube-proxy's KUBE-SVC/-SVL)."""
    key: str
    id: int
    port: ServicePort
    algorithm: str
    endpoints: tuple[Endpoint, ...]

    @property
    def reactive(self) -> bool:
        return self.algorithm in algorithms.REACTIVE_ALGORITHMS


def instance_key(port: ServicePort, scope: str) -> str:
    return f"{port.service_port_name}/{port.protocol}/{scope}"


def service_instance_keys(ports: Iterable[ServicePort]) -> list[str]:
    return [instance_key(p, scope) for p in ports for scope in ("internal", "external")]


def arp_reply(mac: str) -> tuple:
    """Turn an ARP request into the reply for its target address, answered with `mac`."""
    return (Move("arp_tpa", REG_EP_IP), Move("arp_spa", "arp_tpa"), Move(REG_EP_IP, "arp_spa"),
            Move("arp_sha", "arp_tha"), SetField("arp_sha", mac), Move("eth_src", "eth_dst"),
            SetField("eth_src", mac), SetField("arp_op", 2), Output(IN_PORT))


@dataclass
class BridgePipeline:
    """Flows and groups of one node bridge; each method returns what one owner contributes."""
    topology: Wiring
    bridge: Bridge
    ids: InstanceIds = field(default_factory=InstanceIds)

    # --- base pipeline -------------------------------------------------------------------------
    def base(self) -> FlowSet:
        b, topo = self.bridge, self.topology
        cookie = owner_cookie(KIND_BASE, 0)
        ip, arp = dict(eth_type=ETH_IP), dict(eth_type=ETH_ARP)
        to_snat_zone = (Ct(zone=b.snat_zone, nat=Nat(), table=T_CONNTRACK),)

        def f(table, priority, actions=(), goto=None, **fields) -> Flow:
            return Flow(table, priority, match(**fields), tuple(actions), cookie, goto)

        flows = [
            # CLASSIFY: ARP answers for ClusterIPs asked by the node; the uplink only brings what is
            # addressed to this node; replies to SNATed connections visit the SNAT zone first.
            f(T_CLASSIFY, 400, arp_reply(PIPELINE_MAC), in_port=b.node_port, arp_op=1,
              arp_tpa=topo.service_cidr, **arp),
            f(T_CLASSIFY, 300, to_snat_zone, in_port=b.uplink_port, eth_dst=b.node_mac, ipv4_dst=b.node_ip, **ip),
            f(T_CLASSIFY, 290, goto=T_CONNTRACK, in_port=b.uplink_port, eth_dst=b.node_mac, **ip),
            f(T_CLASSIFY, 290, goto=T_L2, in_port=b.uplink_port, eth_dst=b.node_mac, **arp),
            f(T_CLASSIFY, 290, goto=T_L2, in_port=b.uplink_port, eth_dst=BROADCAST, **arp),
            f(T_CLASSIFY, 280, in_port=b.uplink_port),
            f(T_CLASSIFY, 200, to_snat_zone, ipv4_dst=b.node_ip, **ip),
            f(T_CLASSIFY, 200, to_snat_zone, ipv4_dst=b.gateway_ip, **ip),
            f(T_CLASSIFY, 100, goto=T_CONNTRACK, **ip),
            f(T_CLASSIFY, 100, goto=T_L2, **arp),
            f(T_CLASSIFY, 0),
            f(T_CONNTRACK, 0, (Ct(zone=b.dnat_zone, nat=Nat(), table=T_CT_STATE),), **ip),
            # CT_STATE: Service connections by their mark; new ones look for a Service.
            f(T_CT_STATE, 300, ct_state=ct_state(inv=True, trk=True)),
            f(T_CT_STATE, 200, goto=T_L3, ct_state=ct_state(trk=True, rpl=True),
              ct_mark=(FLAG_SERVICE, FLAG_SERVICE)),
            f(T_CT_STATE, 200, (Move("ct_mark", REG_FLAGS),), T_POST_DNAT,
              ct_state=ct_state(trk=True, rpl=False), ct_mark=(FLAG_SERVICE, FLAG_SERVICE)),
            f(T_CT_STATE, 100, goto=T_SERVICE, ct_state=ct_state(new=True, trk=True)),
            f(T_CT_STATE, 0, goto=T_L3),
            # SERVICE misses: unknown Service address -> drop; anything else is committed (mark 0).
            f(T_SERVICE, 10, ipv4_dst=topo.service_cidr, **ip),
            f(T_SERVICE, 0, (Ct(zone=b.dnat_zone, commit=True, table=T_L3),), **ip),
            f(T_AFFINITY, 0),                       # miss: no affinity, resubmit returns
            f(T_SELECT, 0, goto=T_ENDPOINT),        # affinity chose already
            f(T_SLOT, 0),
            f(T_ENDPOINT, 0),                       # nothing chosen: drop
            # POST_DNAT: reactive connections refresh their flow and report their closing; then the
            # SNAT zone.
            f(T_POST_DNAT, 100, (Resubmit(T_CONNECTIONS), Resubmit(T_CLOSING),
                                 Ct(zone=b.snat_zone, nat=Nat(), table=T_SNAT)),
              reg2=(FLAG_REACTIVE, FLAG_REACTIVE), **ip),
            f(T_POST_DNAT, 0, (Ct(zone=b.snat_zone, nat=Nat(), table=T_SNAT),), **ip),
            f(T_CONNECTIONS, 0),
            # CLOSING: a FIN or RST from the client of a reactive connection tells the controller
            # (a copy; the packet goes on): the connection leaves ESTABLISHED and counts as
            # inactive, as IPVS counts it, until its flow idles out.
            Flow(T_CLOSING, 110, match(eth_type=ETH_IP, ip_proto=6, tcp_flags=(TCP_RST, TCP_RST)),
                 (Output(CONTROLLER),), cookie),
            Flow(T_CLOSING, 100, match(eth_type=ETH_IP, ip_proto=6, tcp_flags=(TCP_FIN, TCP_FIN)),
                 (Output(CONTROLLER),), cookie),
            f(T_CLOSING, 0),
            # SNAT: established SNATed connections pass; new ones are masqueraded as flagged.
            f(T_SNAT, 300, goto=T_L3, ct_mark=(MARK_SNATTED, MARK_SNATTED), **ip),
            f(T_SNAT, 200, (self._masquerade(b.node_ip),), reg2=(FLAG_MASQ_ALWAYS, FLAG_MASQ_ALWAYS), **ip),
            f(T_SNAT, 190, goto=T_L3, reg2=(FLAG_MASQ_OFF_CLUSTER, FLAG_MASQ_OFF_CLUSTER),
              ipv4_src=topo.cluster_cidr, **ip),
            f(T_SNAT, 180, (self._masquerade(b.node_ip),),
              reg2=(FLAG_MASQ_OFF_CLUSTER, FLAG_MASQ_OFF_CLUSTER), **ip),
            f(T_SNAT, 0, goto=T_L3),
            # L3: this node's own addresses go to its namespace; unknown Service addresses drop;
            # the node gets what nobody else claims (it routes or rejects), except its own packets.
            f(T_L3, 110, self._to_port(PIPELINE_MAC, b.node_mac, b.node_port), T_OUTPUT,
              ipv4_dst=b.gateway_ip, **ip),
            f(T_L3, 50, ipv4_dst=topo.service_cidr, **ip),
            f(T_L3, 10, in_port=b.node_port, **ip),
            f(T_L3, 10, in_port=b.uplink_port, **ip),
            f(T_L3, 0, self._to_port(PIPELINE_MAC, b.node_mac, b.node_port), T_OUTPUT, **ip),
            # L2 (ARP): by destination MAC; broadcasts from pods go to the node only.
            f(T_L2, 100, (SetField(REG_OUT, b.node_port),), T_OUTPUT, eth_dst=b.node_mac),
            f(T_L2, 50, (Output(FLOOD),), in_port=b.node_port, eth_dst=BROADCAST),
            f(T_L2, 50, (Output(FLOOD),), in_port=b.uplink_port, eth_dst=BROADCAST),
            f(T_L2, 40, (Output(b.node_port),), eth_dst=BROADCAST),
            f(T_L2, 10, in_port=b.uplink_port),
            f(T_L2, 0, (SetField(REG_OUT, b.uplink_port),), T_OUTPUT),
            # OUTPUT: OpenFlow drops output to the input port unless it is named IN_PORT.
            f(T_OUTPUT, 100, (Output(IN_PORT),), in_port=b.uplink_port, reg3=b.uplink_port),
            f(T_OUTPUT, 100, (Output(IN_PORT),), in_port=b.node_port, reg3=b.node_port),
            f(T_OUTPUT, 0, (OutputReg(REG_OUT),)),
        ]
        return FlowSet(flows)

    def _masquerade(self, source_ip: str) -> Ct:
        return Ct(zone=self.bridge.snat_zone, commit=True, nat=Nat("src", source_ip),
                  exec_=(SetField("ct_mark", MARK_SNATTED),), table=T_L3)

    @staticmethod
    def _to_port(eth_src: str, eth_dst: str, port: int) -> tuple:
        return SetField("eth_src", eth_src), SetField("eth_dst", eth_dst), SetField(REG_OUT, port)

    # --- pods and hosts ------------------------------------------------------------------------
    def pod(self, pod: Pod) -> FlowSet:
        """Delivery to a local pod (L3 and ARP), its hairpin SNAT and its output guard."""
        if pod.node != self.bridge.node:
            return FlowSet()
        b = self.bridge
        cookie = owner_cookie(KIND_POD, owner_hash(f"pod:{pod.key}"))
        return FlowSet([
            Flow(T_SNAT, 250, match(eth_type=ETH_IP, ipv4_src=pod.ip, ipv4_dst=pod.ip),
                 (self._masquerade(b.gateway_ip),), cookie),
            Flow(T_L3, 100, match(eth_type=ETH_IP, ipv4_dst=pod.ip),
                 self._to_port(b.node_mac, pod.mac, pod.ofport), cookie, T_OUTPUT),
            Flow(T_L2, 100, match(eth_dst=pod.mac), (SetField(REG_OUT, pod.ofport),), cookie, T_OUTPUT),
            Flow(T_OUTPUT, 100, match(in_port=pod.ofport, reg3=pod.ofport), (Output(IN_PORT),), cookie),
        ])

    def host(self, host: Host) -> FlowSet:
        """Routes to a host on the node network and, for another node, to its pod CIDR."""
        b = self.bridge
        cookie = owner_cookie(KIND_HOST, owner_hash(f"host:{host.name}"))
        if host.ip == b.node_ip:
            return FlowSet([Flow(T_L3, 110, match(eth_type=ETH_IP, ipv4_dst=host.ip),
                                 self._to_port(PIPELINE_MAC, b.node_mac, b.node_port), cookie, T_OUTPUT)])
        to_uplink = self._to_port(b.node_mac, host.mac, b.uplink_port)
        flows = [Flow(T_L3, 110, match(eth_type=ETH_IP, ipv4_dst=host.ip), to_uplink, cookie, T_OUTPUT)]
        remote = next((r for r in self.topology.bridges if r.node_ip == host.ip), None)
        if remote is not None:
            flows.append(Flow(T_L3, 100, match(eth_type=ETH_IP, ipv4_dst=remote.pod_cidr), to_uplink, cookie, T_OUTPUT))
        return FlowSet(flows)

    def address(self, ip: str) -> FlowSet:
        """ARP answers for a LoadBalancer or external IP: to the node itself always (the pipeline
        handles its traffic), on the uplink only where this node announces it."""
        b = self.bridge
        cookie = owner_cookie(KIND_ADDRESS, ip_int(ip))
        flows = [Flow(T_CLASSIFY, 400, match(in_port=b.node_port, eth_type=ETH_ARP, arp_op=1, arp_tpa=ip),
                      arp_reply(PIPELINE_MAC), cookie)]
        if self.topology.announcements.get(ip) == b.node:
            flows.append(Flow(T_CLASSIFY, 400, match(in_port=b.uplink_port, eth_type=ETH_ARP, arp_op=1, arp_tpa=ip),
                              arp_reply(b.node_mac), cookie))
        return FlowSet(flows)

    # --- Services ------------------------------------------------------------------------------
    def service(self, ports: Sequence[ServicePort]) -> FlowSet:
        """All flows and groups of one Service (all its ports), under the Service's cookie."""
        result = FlowSet()
        for port in ports:
            if port.protocol not in ("TCP", "UDP") or not port.cluster_ip:
                continue
            result.extend(self.service_port(port))
        return result

    def instances(self, port: ServicePort) -> tuple[Instance, Instance | None]:
        node = self.bridge.node
        algorithm = algorithms.algorithm_name(port.lb_algorithm)
        internal = self._instance(port, "internal", algorithm, internal_endpoints(port, node))
        if not port.has_external_addresses:
            return internal, None
        external = external_endpoints(port, node)
        if external == internal.endpoints:
            return internal, internal
        return internal, self._instance(port, "external", algorithm, external)

    def _instance(self, port, scope, algorithm, endpoints) -> Instance:
        key = instance_key(port, scope)
        return Instance(key, self.ids.id_for(key), port, algorithm, tuple(endpoints))

    def service_port(self, port: ServicePort) -> FlowSet:
        cookie = owner_cookie(KIND_SERVICE, service_owner(port.namespace, port.name))
        internal, external = self.instances(port)
        result = FlowSet()
        for instance in {internal.key: internal, **({external.key: external} if external else {})}.values():
            result.extend(self._selection(instance, cookie))
        result.add(*self._frontends(port, internal, external, cookie))
        return result

    def _frontends(self, port: ServicePort, internal: Instance, external: Instance | None, cookie: int) -> list[Flow]:
        b, topo = self.bridge, self.topology
        proto = PROTOCOLS[port.protocol]
        l4_dst = L4_FIELDS[proto][1]
        # kube-proxy rejects when the Service has no usable endpoint anywhere, and drops when only a
        # Local policy leaves none on this node.
        any_endpoints = any(e.ready or (e.serving and e.terminating) for e in port.endpoints)

        def frontend(address: str, priority: int, instance: Instance, flags: int, port_number: int, **extra) -> Flow:
            m = match(eth_type=ETH_IP, ip_proto=proto, ipv4_dst=address, **{l4_dst: port_number}, **extra)
            return Flow(T_SERVICE, priority, m, self._dispatch(instance, flags, any_endpoints), cookie)

        flows = [frontend(port.cluster_ip, P_FRONTEND, internal, FLAG_SERVICE | FLAG_MASQ_OFF_CLUSTER, port.port)]
        if external is None:
            return flows
        addresses = [(a, port.port, ()) for a in port.external_ips]
        addresses += [(a, port.port, port.load_balancer_source_ranges) for a in port.load_balancer_ips]
        if port.node_port:
            addresses.append((b.node_ip, port.node_port, ()))
        for address, number, source_ranges in addresses:
            if port.external_policy_local:
                external_flags = FLAG_SERVICE
                flows.append(frontend(address, P_FRONTEND_FROM_PODS, internal, FLAG_SERVICE | FLAG_MASQ_OFF_CLUSTER,
                                      number, ipv4_src=topo.cluster_cidr))
                flows.append(frontend(address, P_FRONTEND_FROM_NODE, internal, FLAG_SERVICE | FLAG_MASQ_ALWAYS,
                                      number, in_port=b.node_port))
            else:
                external_flags = FLAG_SERVICE | FLAG_MASQ_ALWAYS
            if source_ranges:
                flows += [frontend(address, P_FRONTEND_SOURCE_RANGE, external, external_flags, number, ipv4_src=r)
                          for r in source_ranges]
                proto_match = match(eth_type=ETH_IP, ip_proto=proto, ipv4_dst=address, **{l4_dst: number})
                flows.append(Flow(T_SERVICE, P_FRONTEND_SOURCE_RANGE - 1, proto_match, (), cookie))
            else:
                flows.append(frontend(address, P_FRONTEND, external, external_flags, number))
        return flows

    def _dispatch(self, instance: Instance, flags: int, any_endpoints: bool) -> tuple:
        """Actions of a frontend: reject when the Service has no endpoint at all, drop when this
        instance has none (a Local policy), else tag the packet and choose an endpoint."""
        if not instance.endpoints:
            return (Output(CONTROLLER),) if not any_endpoints else ()
        if instance.reactive:
            flags |= FLAG_REACTIVE
        tag = (SetField(REG_INSTANCE, instance.id), SetField(REG_FLAGS, flags))
        if instance.port.affinity_timeout:
            return tag + (Resubmit(T_AFFINITY), Resubmit(T_SELECT))
        return tag + self._algorithm_actions(instance)

    def _algorithm_actions(self, instance: Instance) -> tuple:
        if instance.algorithm in algorithms.GROUP_ALGORITHMS:
            return (Group(instance.id),)
        if instance.algorithm in algorithms.HASH_ALGORITHMS:
            slots = len(algorithms.slot_table(instance.algorithm, instance.endpoints))
            return (Multipath(algorithms.HASH_FIELDS[instance.algorithm], slots, REG_SLOT),
                    Resubmit(T_SLOT), Resubmit(T_ENDPOINT))
        return (Output(CONTROLLER),)

    def _selection(self, instance: Instance, cookie: int) -> FlowSet:
        """Endpoint choice of one instance: group or slot table, then the DNAT commit per endpoint."""
        if not instance.endpoints:
            return FlowSet()
        result = FlowSet()
        port, instance_match = instance.port, dict(eth_type=ETH_IP, reg4=instance.id)
        if instance.algorithm in algorithms.GROUP_ALGORITHMS:
            buckets = tuple(Bucket(self._choose(e) + (Resubmit(T_ENDPOINT),)) for e in instance.endpoints)
            result.groups.append(SelectGroup(instance.id, buckets, cookie))
        elif instance.algorithm in algorithms.HASH_ALGORITHMS:
            table = algorithms.slot_table(instance.algorithm, instance.endpoints)
            result.add(*(Flow(T_SLOT, 100, match(reg1=slot, reg4=instance.id), self._choose(instance.endpoints[k]), cookie)
                         for slot, k in enumerate(table)))
        if port.affinity_timeout:
            result.add(Flow(T_SELECT, 100, match(reg0=0, **instance_match), self._algorithm_actions(instance), cookie))
            # An affinity entry whose endpoint is gone falls back to a fresh choice.
            result.add(Flow(T_ENDPOINT, 10, match(**instance_match),
                            (SetField(REG_EP_IP, 0), SetField(REG_EP_PORT, 0)) + self._algorithm_actions(instance),
                            cookie))
        for endpoint in instance.endpoints:
            actions = (self._learn_affinity(instance, endpoint),) if port.affinity_timeout else ()
            actions += (Ct(zone=self.bridge.dnat_zone, commit=True, nat=Nat("dst", endpoint.ip, endpoint.port),
                           exec_=(Move(REG_FLAGS, "ct_mark"),), table=T_POST_DNAT),)
            m = match(reg0=ip_int(endpoint.ip), reg5=endpoint.port, **instance_match)
            result.add(Flow(T_ENDPOINT, 100, m, actions, cookie))
        return result

    @staticmethod
    def _choose(endpoint: Endpoint) -> tuple:
        return SetField(REG_EP_IP, ip_int(endpoint.ip)), SetField(REG_EP_PORT, endpoint.port)

    def _learn_affinity(self, instance: Instance, endpoint: Endpoint) -> Learn:
        owner = owner_cookie(KIND_AFFINITY, service_owner(instance.port.namespace, instance.port.name))
        return Learn(table=T_AFFINITY, priority=100, cookie=owner,
                     idle_timeout=min(instance.port.affinity_timeout, MAX_TIMEOUT),
                     fixed=(("eth_type", ETH_IP),), copy=(REG_INSTANCE, "ipv4_src"),
                     loads=((ip_int(endpoint.ip), REG_EP_IP), (endpoint.port, REG_EP_PORT)))


# --- whole bridges ---------------------------------------------------------------------------------
def group_services(ports: Iterable[ServicePort]) -> dict[tuple[str, str], tuple[ServicePort, ...]]:
    grouped: dict[tuple[str, str], list[ServicePort]] = {}
    for port in ports:
        grouped.setdefault((port.namespace, port.name), []).append(port)
    return {key: tuple(value) for key, value in sorted(grouped.items())}


def service_addresses(ports: Iterable[ServicePort]) -> set[str]:
    """LoadBalancer and external IPs in use (each gets ARP answers)."""
    return {a for p in ports if p.cluster_ip for a in (*p.load_balancer_ips, *p.external_ips)}


def allocate_ids(ports: Iterable[ServicePort], ids: InstanceIds | None = None) -> InstanceIds:
    """Instance ids in sorted key order, so that a fresh render and a fresh controller agree."""
    ids = ids or InstanceIds()
    for key in sorted(service_instance_keys(ports)):
        ids.id_for(key)
    return ids


def bridge_flows(topology: Wiring, node: str, ports: Sequence[ServicePort],
                 ids: InstanceIds | None = None) -> FlowSet:
    """Everything one node bridge gets: base, pods, hosts, addresses, Services. Cookies carry
    their content fingerprint."""
    ids = ids or allocate_ids(ports)
    pipeline = BridgePipeline(topology, topology.bridge(node), ids)
    result = pipeline.base()
    for pod in topology.pods_on(node):
        result.extend(pipeline.pod(pod))
    for host in topology.hosts:
        result.extend(pipeline.host(host))
    for ip in sorted(service_addresses(ports), key=ip_int):
        result.extend(pipeline.address(ip))
    for service_ports in group_services(ports).values():
        result.extend(pipeline.service(service_ports))
    result.flows = [f.fingerprinted() for f in result.flows]
    return result


@dataclass(frozen=True)
class OpenFlowText:
    """ovs-ofctl input: `ovs-ofctl -O OpenFlow13 add-groups BRIDGE groups` before `add-flows BRIDGE flows`."""
    flows: str
    groups: str


def render_openflow_text(ports: Sequence[ServicePort], topology: Wiring, node: str) -> OpenFlowText:
    state = bridge_flows(topology, node, ports)
    flows = sorted(state.flows, key=lambda f: (f.table, -f.priority, flow_to_ofctl(f)))
    groups = sorted(state.groups, key=lambda g: g.group_id)
    return OpenFlowText(flows="".join(flow_to_ofctl(f) + "\n" for f in flows),
                        groups="".join(group_to_ofctl(g) + "\n" for g in groups))


def render_openflow(ports: Sequence[ServicePort], topology: Wiring, node: str) -> str:
    """What `testbed render openflow` prints for a node: its groups, then its flows. The header
    says how to load them (groups first: flows point at them; ovs-ofctl skips `#` lines)."""
    text = render_openflow_text(ports, topology, node)
    bridge = topology.bridge(node).name
    return (f"# OpenFlow 1.3 pipeline of {bridge} (docs/sdn-pipeline.md). To load this text (FILE):\n"
            f"#   grep ^group_id= FILE | ovs-ofctl -O OpenFlow13 add-groups {bridge} -\n"
            f"#   grep ^table= FILE | ovs-ofctl -O OpenFlow13 add-flows {bridge} -\n"
            f"# groups (select groups of the random algorithm)\n"
            f"{text.groups}"
            f"# flows\n"
            f"{text.flows}")
