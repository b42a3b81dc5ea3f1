"""What the SDN controller must know about the emulated wiring, as plain values.

The controller never looks at Mininet: the testbed tells it which bridges exist, which pod sits on
which port, which hosts live on the node network and which node announces which LoadBalancer IP.
Everything here round-trips through JSON (the control socket carries it) and can be built from
testbed/net/addressing.py without root (`Wiring.for_nodes`), for `testbed render openflow` and
for unit tests.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Iterable, Mapping, Sequence

from testbed.net import addressing

# The MAC the pipeline uses as a router: it answers ARP for Service addresses asked by the node
# itself, and is the source MAC of packets the pipeline delivers to the node's namespace.
PIPELINE_MAC = "0e:74:62:00:00:01"
DEFAULT_ZONE_BASE = 1000


@dataclass(frozen=True)
class Bridge:
    """One node's OVS bridge and the node namespace behind its port 2."""
    node: str
    index: int                  # node index i: node IP 172.18.0.(10+i), pod CIDR 10.244.i.0/24
    name: str
    dpid: int
    node_ip: str
    node_mac: str
    pod_cidr: str
    gateway_ip: str
    uplink_port: int = addressing.UPLINK_PORT
    node_port: int = addressing.NODE_PORT
    zone_base: int = DEFAULT_ZONE_BASE

    @property
    def dnat_zone(self) -> int:
        """Conntrack zone of this bridge's Service DNAT. All netdev bridges share one datapath and
        so one conntrack table: per-node zones keep each node's connections apart, as separate
        machines would (and another zone_base keeps a second emulation apart)."""
        return self.zone_base + self.index

    @property
    def snat_zone(self) -> int:
        """Conntrack zone of this bridge's SNAT (masquerade, hairpin): a second zone, because one
        OVS ct action can apply only one NAT direction."""
        return self.zone_base + 500 + self.index


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    node: str
    ip: str
    mac: str
    ofport: int

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Host:
    """An interface on the node network (a node's eth0 or the external host)."""
    name: str
    ip: str
    mac: str


@dataclass(frozen=True)
class Wiring:
    bridges: tuple[Bridge, ...]
    pods: tuple[Pod, ...] = ()
    hosts: tuple[Host, ...] = ()
    cluster_cidr: str = str(addressing.CLUSTER_CIDR)
    service_cidr: str = str(addressing.SERVICE_CIDR)
    node_network: str = str(addressing.NODE_NETWORK)
    announcements: Mapping[str, str] = field(default_factory=dict, hash=False, compare=True)
    """LoadBalancer (or external) IP -> the node that answers ARP for it on the node network."""

    @classmethod
    def for_nodes(cls, nodes: int | Sequence[str], pods: Iterable[Pod] = (), external: bool = True,
                  announcements: Mapping[str, str] | None = None, zone_base: int = DEFAULT_ZONE_BASE) -> "Wiring":
        """The wiring of testbed/net/addressing.py for N nodes (names node0.. unless given)."""
        names = [f"node{i}" for i in range(nodes)] if isinstance(nodes, int) else list(nodes)
        bridges = tuple(node_bridge(i, name, zone_base) for i, name in enumerate(names))
        hosts = tuple(Host(b.node, b.node_ip, b.node_mac) for b in bridges)
        if external:
            hosts += (Host("external", addressing.EXTERNAL_IP, addressing.host_mac(addressing.EXTERNAL_IP)),)
        return cls(bridges=bridges, pods=tuple(pods), hosts=hosts,
                   announcements=dict(announcements or {}))

    # --- lookups -------------------------------------------------------------------------------
    def bridge(self, node: str) -> Bridge:
        for bridge in self.bridges:
            if bridge.node == node:
                return bridge
        raise KeyError(f"no bridge for node {node!r}")

    def bridge_by_dpid(self, dpid: int) -> Bridge | None:
        return next((b for b in self.bridges if b.dpid == dpid), None)

    def pods_on(self, node: str) -> tuple[Pod, ...]:
        return tuple(p for p in self.pods if p.node == node)

    def pod(self, namespace: str, name: str) -> Pod | None:
        return next((p for p in self.pods if p.namespace == namespace and p.name == name), None)

    # --- changes (new values; a Wiring is immutable) --------------------------------------------
    def with_pod(self, pod: Pod) -> "Wiring":
        others = tuple(p for p in self.pods if p.key != pod.key)
        return replace(self, pods=others + (pod,))

    def without_pod(self, namespace: str, name: str) -> "Wiring":
        return replace(self, pods=tuple(p for p in self.pods if (p.namespace, p.name) != (namespace, name)))

    def with_announcements(self, announcements: Mapping[str, str], drop: Iterable[str] = ()) -> "Wiring":
        merged = {ip: node for ip, node in self.announcements.items() if ip not in set(drop)}
        merged.update(announcements)
        return replace(self, announcements=merged)

    # --- JSON ----------------------------------------------------------------------------------
    def to_json(self) -> dict:
        data = asdict(self)
        data["announcements"] = dict(self.announcements)
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> "Wiring":
        return cls(bridges=tuple(Bridge(**b) for b in data["bridges"]),
                   pods=tuple(Pod(**p) for p in data.get("pods", ())),
                   hosts=tuple(Host(**h) for h in data.get("hosts", ())),
                   cluster_cidr=data.get("cluster_cidr", str(addressing.CLUSTER_CIDR)),
                   service_cidr=data.get("service_cidr", str(addressing.SERVICE_CIDR)),
                   node_network=data.get("node_network", str(addressing.NODE_NETWORK)),
                   announcements=dict(data.get("announcements") or {}))


def node_bridge(index: int, node: str, zone_base: int = DEFAULT_ZONE_BASE) -> Bridge:
    if index >= 500:
        raise ValueError("at most 500 nodes (conntrack zones are zone_base + index and + 500 + index)")
    ip = addressing.node_ip(index)
    pod_cidr = addressing.node_pod_cidr(index)
    return Bridge(node=node, index=index, name=addressing.bridge_name(node), dpid=addressing.dpid_for(index),
                  node_ip=ip, node_mac=addressing.host_mac(ip), pod_cidr=pod_cidr,
                  gateway_ip=addressing.gateway_ip(pod_cidr), zone_base=zone_base)
