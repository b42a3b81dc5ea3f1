"""The controller's state and decisions, without I/O (the OS-Ken app only sends what this says).

kube-proxy's change tracker turns object updates into "what changed"; here a message (full state,
Service upsert/delete, pod add/remove) turns into the set of *owners* whose flows changed on each
bridge (a Service, a pod, an address, a host, the base pipeline). Only those owners' flows are
recomputed and compared with what the bridge has, by flow identity and cookie (the cookie holds a
content fingerprint, see flows.py), giving a Plan:

    add/modify groups -> add flows -> delete stale flows (filtered by their exact cookie) -> delete groups

Adds go first: an added flow replaces a stale one with the same identity in place, and the cookie
filter then leaves it alone, so a change never opens a gap for packets.

Reactive algorithms: `ReactiveSelector` answers a packet-in with the per-connection flow to install
and the packet-out actions, and keeps connection counts from installs and flow-removed messages.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from testbed.proxy.model import ServicePort
from testbed.sdn import algorithms
from testbed.sdn.flows import (
    ETH_IP, KIND_ADDRESS, KIND_AFFINITY, KIND_BASE, KIND_CONNECTION, KIND_HOST, KIND_POD, KIND_SERVICE,
    L4_FIELDS, OWNER_MASK, FinTimeout, Flow, FlowSet, Resubmit, SetField, cookie_kind,
    cookie_owner, match, owner_cookie, owner_hash, service_owner)
from testbed.sdn.pipeline import (
    FLAG_REACTIVE, REG_EP_IP, REG_EP_PORT, REG_FLAGS, REG_INSTANCE, T_CONNECTIONS, T_ENDPOINT,
    BridgePipeline, Instance, InstanceIds, allocate_ids, group_services, ip_int, service_addresses,
    service_instance_keys)
from testbed.sdn.wiring import Pod, Wiring

CONNECTION_IDLE_TIMEOUT = 60     # seconds without packets before a reactive connection counts as gone
FIN_IDLE_TIMEOUT = 1             # ... once a FIN or RST has been seen
PENDING_SECONDS = 5              # packet-ins of one new connection within this reuse the first choice

ServiceKey = tuple[str, str]


@dataclass
class OwnerFlows:
    flows: dict = field(default_factory=dict)      # identity -> Flow
    groups: dict = field(default_factory=dict)     # group id -> SelectGroup

    @classmethod
    def of(cls, flowset: FlowSet) -> "OwnerFlows":
        return cls({f.identity: f for f in flowset.flows}, {g.group_id: g for g in flowset.groups})


@dataclass
class Plan:
    """Changes for one bridge, in the order they must be sent."""
    add_groups: list = field(default_factory=list)
    modify_groups: list = field(default_factory=list)
    add_flows: list = field(default_factory=list)
    delete_flows: list = field(default_factory=list)    # strict, with their exact cookie
    delete_groups: list = field(default_factory=list)   # ids
    delete_cookies: list = field(default_factory=list)  # (cookie, mask): reactive flows of removed Services

    def __len__(self) -> int:
        return (len(self.add_groups) + len(self.modify_groups) + len(self.add_flows)
                + len(self.delete_flows) + len(self.delete_groups) + len(self.delete_cookies))

    def summary(self) -> dict:
        return {"flows_added": len(self.add_flows), "flows_deleted": len(self.delete_flows),
                "reactive_owners_cleared": len(self.delete_cookies) // 2,
                "groups_added": len(self.add_groups), "groups_modified": len(self.modify_groups),
                "groups_deleted": len(self.delete_groups)}


def diff_owner(old: OwnerFlows | None, new: OwnerFlows, plan: Plan) -> None:
    old = old or OwnerFlows()
    for identity, flow in new.flows.items():
        previous = old.flows.get(identity)
        if previous is None or previous.cookie != flow.cookie:
            plan.add_flows.append(flow)
    for identity, flow in old.flows.items():
        replacement = new.flows.get(identity)
        if replacement is None or replacement.cookie != flow.cookie:
            plan.delete_flows.append(flow)
    for group_id, group in new.groups.items():
        previous = old.groups.get(group_id)
        if previous is None:
            plan.add_groups.append(group)
        elif previous != group:
            plan.modify_groups.append(group)
    plan.delete_groups += [g for g in old.groups if g not in new.groups]


class ClusterState:
    """Desired state of every bridge, kept per owner, and what each bridge was last given."""

    def __init__(self, topology: Wiring | None = None, ports: Iterable[ServicePort] = ()):
        self.topology = topology or Wiring(bridges=())
        self.services: dict[ServiceKey, tuple[ServicePort, ...]] = {}
        self.service_keys: dict[int, ServiceKey] = {}             # Service owner cookie -> key
        self.address_users: Counter = Counter()                   # LB/external IP -> Services using it
        self.ids = InstanceIds()
        self.desired: dict[str, dict[int, OwnerFlows]] = {}       # node -> owner cookie -> flows
        self.installed: dict[str, dict[int, OwnerFlows]] = {}     # node -> what the bridge was given
        self.dirty: dict[str, set[int]] = {}                      # node -> owners changed since
        self.instances: dict[str, dict[int, Instance]] = {}       # node -> instance id -> instance
        self._owned_instances: dict[str, dict[int, set[int]]] = {}   # node -> Service owner -> instance ids
        self.removed_services: dict[str, set[int]] = {}           # node -> Services whose reactive flows go
        self.set_state(self.topology, ports)

    # --- messages ------------------------------------------------------------------------------
    def set_state(self, topology: Wiring, ports: Iterable[ServicePort]) -> None:
        ports = tuple(ports)
        previous = set(self.service_keys)
        self.topology = topology
        self.services = dict(group_services(ports))
        self.service_keys = {owner_cookie(KIND_SERVICE, service_owner(*k)): k for k in self.services}
        for bridge in topology.bridges:
            self.removed_services.setdefault(bridge.node, set()).update(
                cookie_owner(owner) for owner in previous - set(self.service_keys))
        self.address_users = Counter(ip for p in self.services.values() for ip in service_addresses(p))
        self.ids = allocate_ids(ports)
        self.desired, self.instances, self._owned_instances = {}, {}, {}   # computed again on demand
        nodes = {b.node for b in topology.bridges}
        for node in [n for n in self.installed if n not in nodes]:
            del self.installed[node]
            self.dirty.pop(node, None)

    def upsert_service(self, namespace: str, name: str, ports: Sequence[ServicePort],
                       announcements: Mapping[str, str] | None = None) -> None:
        key = (namespace, name)
        owner = owner_cookie(KIND_SERVICE, service_owner(namespace, name))
        old_ports = self.services.get(key, ())
        old_addresses, new_addresses = service_addresses(old_ports), service_addresses(ports)
        dropped = [ip for ip in old_addresses - new_addresses if self.address_users[ip] <= 1]
        if announcements is not None or dropped:
            self.topology = self.topology.with_announcements(announcements or {}, drop=dropped)
        self.address_users.subtract(old_addresses)
        self.address_users.update(new_addresses)
        self.ids.release(set(service_instance_keys(old_ports)) - set(service_instance_keys(ports)))
        allocate_ids(ports, self.ids)
        if ports:
            self.services[key], self.service_keys[owner] = tuple(ports), key
        else:
            self.services.pop(key, None)
            self.service_keys.pop(owner, None)
            for bridge in self.topology.bridges:
                self.removed_services.setdefault(bridge.node, set()).add(cookie_owner(owner))
        self._recompute({owner} | {owner_cookie(KIND_ADDRESS, ip_int(ip)) for ip in old_addresses | new_addresses})

    def delete_service(self, namespace: str, name: str) -> None:
        self.upsert_service(namespace, name, ())

    def add_pod(self, pod: Pod) -> None:
        self.topology = self.topology.with_pod(pod)
        self._recompute({pod_owner(pod)})

    def remove_pod(self, namespace: str, name: str) -> None:
        pod = self.topology.pod(namespace, name)
        if pod is None:
            return
        self.topology = self.topology.without_pod(namespace, name)
        self._recompute({pod_owner(pod)})

    # --- desired state ---------------------------------------------------------------------------
    def desired_for(self, node: str) -> dict[int, OwnerFlows]:
        """The desired flows of a bridge by owner, computed the first time a bridge needs them
        (a bridge that never connects costs nothing)."""
        if node not in self.desired:
            self.desired[node] = self._compute_all(node)
            self.dirty[node] = set(self.desired[node]) | set(self.installed.get(node, {}))
        return self.desired[node]

    def instances_for(self, node: str) -> dict[int, Instance]:
        """Service instances on a bridge by id (what a packet-in's reg4 names)."""
        self.desired_for(node)
        return self.instances.get(node, {})

    def _pipeline(self, node: str) -> BridgePipeline:
        return BridgePipeline(self.topology, self.topology.bridge(node), self.ids)

    def _owner_flowset(self, node: str, owner: int) -> FlowSet:
        pipeline, kind = self._pipeline(node), cookie_kind(owner)
        if kind == KIND_BASE:
            return pipeline.base()
        if kind == KIND_POD:
            pod = next((p for p in self.topology.pods_on(node) if pod_owner(p) == owner), None)
            return pipeline.pod(pod) if pod else FlowSet()
        if kind == KIND_HOST:
            host = next((h for h in self.topology.hosts if host_owner(h.name) == owner), None)
            return pipeline.host(host) if host else FlowSet()
        if kind == KIND_ADDRESS:
            ip = str_ip(cookie_owner(owner))
            return pipeline.address(ip) if self.address_users[ip] > 0 else FlowSet()
        if kind == KIND_SERVICE:
            return self._service_flowset(node, owner, pipeline)
        raise ValueError(f"unknown owner kind {kind:#x}")

    def _service_flowset(self, node: str, owner: int, pipeline: BridgePipeline) -> FlowSet:
        instances = self.instances.setdefault(node, {})
        owned = self._owned_instances.setdefault(node, {})
        for stale in owned.pop(owner, ()):
            instances.pop(stale, None)
        key = self.service_keys.get(owner)
        if key is None:
            return FlowSet()
        for port in self.services[key]:
            if port.protocol in ("TCP", "UDP") and port.cluster_ip:
                for instance in pipeline.instances(port):
                    if instance is not None:
                        instances[instance.id] = instance
                        owned.setdefault(owner, set()).add(instance.id)
        return pipeline.service(self.services[key])

    def _owners(self, node: str) -> set[int]:
        owners = {owner_cookie(KIND_BASE, 0)}
        owners |= {pod_owner(p) for p in self.topology.pods_on(node)}
        owners |= {host_owner(h.name) for h in self.topology.hosts}
        owners |= {owner_cookie(KIND_ADDRESS, ip_int(ip)) for ip, users in self.address_users.items() if users > 0}
        owners |= set(self.service_keys)
        return owners

    def _compute_all(self, node: str) -> dict[int, OwnerFlows]:
        owners = {owner: self._owner_flows(node, owner) for owner in sorted(self._owners(node))}
        return {owner: flows for owner, flows in owners.items() if flows.flows or flows.groups}

    def _owner_flows(self, node: str, owner: int) -> OwnerFlows:
        flowset = self._owner_flowset(node, owner)
        flowset.flows = [f.fingerprinted() for f in flowset.flows]
        return OwnerFlows.of(flowset)

    def _recompute(self, owners: set[int]) -> None:
        for bridge in self.topology.bridges:
            desired = self.desired.get(bridge.node)
            if desired is None:          # not computed yet: it will be, whole, when needed
                continue
            for owner in owners:
                flows = self._owner_flows(bridge.node, owner)
                if flows.flows or flows.groups:
                    desired[owner] = flows
                else:
                    desired.pop(owner, None)
            self.dirty.setdefault(bridge.node, set()).update(owners)

    # --- plans -----------------------------------------------------------------------------------
    def take_plan(self, node: str) -> Plan:
        """What `node`'s bridge needs since it was last given something; counts it as given."""
        plan = Plan()
        desired = self.desired_for(node)
        installed = self.installed.setdefault(node, {})
        for service in sorted(self.removed_services.pop(node, set())):
            if owner_cookie(KIND_SERVICE, service) not in self.service_keys:
                plan.delete_cookies += [(owner_cookie(kind, service), OWNER_MASK) for kind in (KIND_AFFINITY, KIND_CONNECTION)]
        for owner in sorted(self.dirty.pop(node, set())):
            new, old = desired.get(owner), installed.get(owner)
            if new is not old:
                diff_owner(old, new or OwnerFlows(), plan)
            if new is None:
                installed.pop(owner, None)
            else:
                installed[owner] = new
        return plan

    def resync_plan(self, node: str, switch_cookies: Iterable[int], switch_groups: Iterable[int]) -> tuple[Plan, list[int]]:
        """Plan for a (re)connected bridge from the cookies of the flows it has and its group ids;
        counts the desired state as given.

        Returns the plan (every desired group is added or modified, missing flows added) and the
        positions (in `switch_cookies`) of the switch's flows to delete; reactive flows (affinity, connections) of
        Services that still exist are kept."""
        plan = Plan()
        desired = self.desired_for(node)
        wanted = Counter(f.cookie for owner in desired.values() for f in owner.flows.values())
        live_services = {cookie_owner(owner) for owner in self.service_keys}
        stale: list[int] = []
        present: Counter = Counter()
        for index, cookie in enumerate(switch_cookies):
            kind = cookie_kind(cookie)
            if kind in (KIND_AFFINITY, KIND_CONNECTION):
                if cookie_owner(cookie) not in live_services:
                    stale.append(index)
            elif present[cookie] < wanted[cookie]:
                present[cookie] += 1
            else:
                stale.append(index)
        for owner in desired.values():
            for flow in owner.flows.values():
                if present[flow.cookie] > 0:
                    present[flow.cookie] -= 1
                else:
                    plan.add_flows.append(flow)
        existing = set(switch_groups)
        for owner in desired.values():
            for group_id, group in owner.groups.items():
                (plan.modify_groups if group_id in existing else plan.add_groups).append(group)
        desired_groups = {g for owner in desired.values() for g in owner.groups}
        plan.delete_groups = sorted(existing - desired_groups)
        self.installed[node] = dict(desired)
        self.dirty.pop(node, None)
        self.removed_services.pop(node, None)
        return plan, stale

    def forget_installed(self, node: str) -> None:
        """A bridge went away: what it has is unknown until it reconnects and is resynced."""
        self.installed.pop(node, None)

    def flow_count(self, node: str) -> int | None:
        """Desired flows of a bridge (None: not computed, the bridge has not connected)."""
        if node not in self.desired:
            return None
        return sum(len(o.flows) for o in self.desired[node].values())

    def group_count(self, node: str) -> int | None:
        if node not in self.desired:
            return None
        return sum(len(o.groups) for o in self.desired[node].values())


def pod_owner(pod: Pod) -> int:
    return owner_cookie(KIND_POD, owner_hash(f"pod:{pod.key}"))


def host_owner(name: str) -> int:
    return owner_cookie(KIND_HOST, owner_hash(f"host:{name}"))


def str_ip(value: int) -> str:
    return ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0))


# --- reactive algorithms -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Choice:
    """The controller's answer to one packet-in of a reactive Service."""
    endpoint: str                 # "ip:port"
    tracking_flow: Flow | None    # per-connection flow (None when the choice was already made)
    packet_out_actions: tuple


@dataclass
class _Tracked:
    node: str
    instance: int
    address: str
    active: bool = True           # IPVS' active (ESTABLISHED) or inactive count


class ReactiveSelector:
    """Choices and connection counts of reactive algorithms, per bridge, as one IPVS per node."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.choosers: dict[tuple[str, int], algorithms.ReactiveChooser] = {}
        self.connections: dict[tuple[str, tuple], _Tracked] = {}     # (node, post-NAT 5-tuple)
        self.pending: dict[tuple[str, int, tuple], tuple[str, float]] = {}

    def chooser(self, node: str, instance: Instance) -> algorithms.ReactiveChooser:
        chooser = self.choosers.setdefault((node, instance.id), algorithms.ReactiveChooser(instance.algorithm))
        chooser.algorithm = instance.algorithm
        weights = algorithms.endpoint_weights(instance.endpoints, instance.port.lb_weights)
        chooser.update([e.address for e in instance.endpoints], weights)
        return chooser

    def on_packet_in(self, node: str, instance: Instance, flags: int, packet: Mapping) -> Choice | None:
        """`packet` holds ipv4_src/dst, ip_proto and the L4 ports of the first packet (pre-NAT)."""
        proto = packet["ip_proto"]
        sport_field, dport_field = L4_FIELDS[proto]
        key = (packet["ipv4_src"], packet[sport_field], packet["ipv4_dst"], packet[dport_field], proto)
        now = self.clock()
        self.pending = {k: v for k, v in self.pending.items() if now - v[1] < PENDING_SECONDS}
        chooser = self.chooser(node, instance)
        pending = self.pending.get((node, instance.id, key))
        tracking = None
        if pending is not None:
            address = pending[0]
        else:
            index = chooser.choose()
            if index is None:
                return None
            address = chooser.endpoints[index]
            self.pending[(node, instance.id, key)] = (address, now)
            ip, port = address.rsplit(":", 1)
            post_nat = (packet["ipv4_src"], packet[sport_field], ip, int(port), proto)
            tracking = tracking_flow(instance, post_nat)
            active = proto == 6      # IPVS counts UDP "connections" as inactive
            previous = self.connections.get((node, post_nat))
            if previous is None:
                chooser.opened(address, active)
            self.connections[(node, post_nat)] = _Tracked(node, instance.id, address,
                                                          previous.active if previous else active)
        ip, port = address.rsplit(":", 1)
        actions = (SetField(REG_INSTANCE, instance.id), SetField(REG_FLAGS, flags | FLAG_REACTIVE),
                   SetField(REG_EP_IP, ip_int(ip)), SetField(REG_EP_PORT, int(port)), Resubmit(T_ENDPOINT))
        return Choice(address, tracking, actions)

    def on_flow_removed(self, node: str, post_nat: tuple) -> None:
        tracked = self.connections.pop((node, post_nat), None)
        if tracked is None:
            return
        chooser = self.choosers.get((node, tracked.instance))
        if chooser is not None:
            chooser.closed(tracked.address, tracked.active)

    def on_closing(self, node: str, post_nat: tuple) -> None:
        """The client of a connection sent FIN or RST (a CLOSING packet-in)."""
        tracked = self.connections.get((node, post_nat))
        if tracked is None or not tracked.active:
            return
        tracked.active = False
        chooser = self.choosers.get((node, tracked.instance))
        if chooser is not None:
            chooser.closing(tracked.address)

    def adopt(self, node: str, instance: Instance, post_nat: tuple) -> None:
        """Count a connection flow found on a switch after a controller restart."""
        address = f"{post_nat[2]}:{post_nat[3]}"
        if (node, post_nat) in self.connections:
            return
        chooser = self.chooser(node, instance)
        chooser.opened(address)
        self.connections[(node, post_nat)] = _Tracked(node, instance.id, address)

    def forget_node(self, node: str) -> None:
        for key in [k for k in self.connections if k[0] == node]:
            del self.connections[key]
        for key in [k for k in self.choosers if k[0] == node]:
            del self.choosers[key]

    def active(self, node: str, instance_id: int) -> dict[str, int]:
        chooser = self.choosers.get((node, instance_id))
        return dict(chooser.active) if chooser else {}

    def inactive(self, node: str, instance_id: int) -> dict[str, int]:
        chooser = self.choosers.get((node, instance_id))
        return dict(chooser.inactive) if chooser else {}


def tracking_flow(instance: Instance, post_nat: tuple) -> Flow:
    src, sport, dst, dport, proto = post_nat
    sport_field, dport_field = L4_FIELDS[proto]
    m = match(eth_type=ETH_IP, ip_proto=proto, ipv4_src=src, ipv4_dst=dst, **{sport_field: sport, dport_field: dport})
    actions = (FinTimeout(FIN_IDLE_TIMEOUT),) if proto == 6 else ()
    cookie = owner_cookie(KIND_CONNECTION, service_owner(instance.port.namespace, instance.port.name))
    return Flow(T_CONNECTIONS, 100, m, actions, cookie, idle_timeout=CONNECTION_IDLE_TIMEOUT, send_flow_removed=True)


def instance_for_connection(instances: Mapping[int, Instance], owner: int, endpoint: str) -> Instance | None:
    """The instance of Service `owner` that has `endpoint` (for adopting connection flows)."""
    for instance in instances.values():
        if service_owner(instance.port.namespace, instance.port.name) == owner and \
                any(e.address == endpoint for e in instance.endpoints):
            return instance
    return None
