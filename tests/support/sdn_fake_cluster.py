"""A whole emulated cluster on fake OpenFlow switches: the controller's pure state programs one
FakeSwitch per node bridge, a FakeFabric joins their uplinks with the external host, and reactive
packet-ins are answered the way the controller app answers them (state.ReactiveSelector, then the
tracking flow and the packet-out). Tests send packets as pods, nodes or the external host would and
look at where they arrive and how they were rewritten."""
from __future__ import annotations

from dataclasses import dataclass, field

from testbed.net import addressing
from testbed.proxy.model import Endpoint, ServicePort
from testbed.sdn.pipeline import FLAG_REACTIVE, REG_FLAGS, REG_INSTANCE, T_CLOSING
from testbed.sdn.state import ClusterState, ReactiveSelector
from testbed.sdn.wiring import PIPELINE_MAC, Pod, Wiring
from tests.support.sdn_pods import pod_at

from tests.support.fake_openflow import Delivery, FakeFabric, FakeSwitch, reply_to, tcp, udp

EXTERNAL_MAC = addressing.host_mac(addressing.EXTERNAL_IP)


def two_node_topology(pods_per_node: int = 2, announcements=None) -> Wiring:
    """node0 and node1 with pods pod-<node>-<slot> on ports 10.. and the external host."""
    base = Wiring.for_nodes(2)
    pods = [pod_at(b, slot, "default", f"pod-{b.index}-{slot}") for b in base.bridges for slot in range(pods_per_node)]
    return Wiring.for_nodes(2, pods=pods, announcements=announcements)


def endpoints_of(*pods: Pod, port: int = 8080) -> tuple[Endpoint, ...]:
    return tuple(sorted((Endpoint(p.ip, port, p.node, pod_name=p.name) for p in pods), key=lambda e: e.address))


def service(name: str, vip: str, *pods: Pod, protocol: str = "TCP", port: int = 80, **kwargs) -> ServicePort:
    return ServicePort(namespace="default", name=name, port_name="", protocol=protocol, port=port,
                       cluster_ip=vip, endpoints=endpoints_of(*pods), **kwargs)


@dataclass
class Rejection:
    node: str
    packet: dict


@dataclass
class FakeSdnCluster:
    topology: Wiring
    ports: tuple
    state: ClusterState = None
    fabric: FakeFabric = field(default_factory=FakeFabric)
    clock: float = 0.0
    rejections: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = ClusterState(self.topology, self.ports)
        self.selector = ReactiveSelector(clock=lambda: self.clock)
        for bridge in self.topology.bridges:
            ports = {bridge.uplink_port, bridge.node_port} | {p.ofport for p in self.topology.pods_on(bridge.node)}
            self.fabric.add_switch(bridge.node, ports, bridge.uplink_port, [bridge.node_mac])
        self.fabric.add_host(EXTERNAL_MAC, "external")
        self.sync()

    # --- programming -----------------------------------------------------------------------------
    def switch(self, node: str) -> FakeSwitch:
        return self.fabric.switches[node]

    def sync(self) -> None:
        """Give every bridge its plan, as the controller does after each message."""
        for bridge in self.topology.bridges:
            plan = self.state.take_plan(bridge.node)
            switch = self.switch(bridge.node)
            for group in plan.add_groups + plan.modify_groups:
                switch.add_group(group)
            for flow in plan.add_flows:
                switch.delete_flow(flow)    # an ADD replaces the flow with the same identity
                switch.add_flow(flow)
            for flow in plan.delete_flows:
                current = switch.tables.get(flow.table, {}).get(flow.identity)
                if current is not None and current.flow.cookie == flow.cookie:
                    switch.delete_flow(flow)
            for group_id in plan.delete_groups:
                switch.delete_group(group_id)

    def advance(self, seconds: float) -> None:
        """Let time pass: idle flows expire; reactive connection flows report their removal."""
        self.clock += seconds
        for node, switch in self.fabric.switches.items():
            for removed in switch.advance(seconds):
                m = dict(removed.flow.match)
                proto = m["ip_proto"]
                sport, dport = ("tcp_src", "tcp_dst") if proto == 6 else ("udp_src", "udp_dst")
                self.selector.on_flow_removed(node, (m["ipv4_src"], m[sport], m["ipv4_dst"], m[dport], proto))

    # --- traffic ---------------------------------------------------------------------------------
    def send(self, node: str, packet: dict, actions=None) -> list[Delivery]:
        deliveries, packet_ins = self.fabric.send(node, packet, actions)
        for switch_name, packet_in in packet_ins:
            deliveries += self._answer(switch_name, packet_in)
        return deliveries

    def _answer(self, node: str, packet_in) -> list[Delivery]:
        packet = packet_in.packet
        if packet_in.table == T_CLOSING:   # a copy: the packet itself went on
            proto = packet["ip_proto"]
            sport, dport = ("tcp_src", "tcp_dst") if proto == 6 else ("udp_src", "udp_dst")
            self.selector.on_closing(node, (packet["ipv4_src"], packet[sport], packet["ipv4_dst"], packet[dport], proto))
            return []
        if not packet.get(REG_FLAGS, 0) & FLAG_REACTIVE:
            self.rejections.append(Rejection(node, packet))
            return []
        instance = self.state.instances_for(node)[packet[REG_INSTANCE]]
        choice = self.selector.on_packet_in(node, instance, packet[REG_FLAGS], packet)
        if choice is None:
            return []
        if choice.tracking_flow is not None:
            self.switch(node).add_flow(choice.tracking_flow)
        original = {k: v for k, v in packet.items() if not k.startswith(("reg", "ct_"))}
        return self.send(node, original, choice.packet_out_actions)

    def pod(self, name: str) -> Pod:
        return next(p for p in self.topology.pods if p.name == name)

    def from_pod(self, name: str, dst: str, dport: int, sport: int = 40000, proto: str = "TCP", flags="S") -> list[Delivery]:
        pod = self.pod(name)
        node_mac = self.topology.bridge(pod.node).node_mac
        if proto == "TCP":
            packet = tcp(pod.ofport, pod.mac, node_mac, pod.ip, sport, dst, dport, flags)
        else:
            packet = udp(pod.ofport, pod.mac, node_mac, pod.ip, sport, dst, dport)
        return self.send(pod.node, packet)

    def from_node(self, node: str, dst: str, dport: int, sport: int = 41000, flags="S") -> list[Delivery]:
        """Host-network traffic of a node to a Service address (its kernel ARPed the pipeline)."""
        bridge = self.topology.bridge(node)
        return self.send(node, tcp(bridge.node_port, bridge.node_mac, PIPELINE_MAC, bridge.node_ip, sport, dst, dport, flags))

    def from_external(self, via_node: str, dst: str, dport: int, sport: int = 50000, flags="S") -> list[Delivery]:
        """The external host sending to `dst` through `via_node`'s MAC (ARP answered by it)."""
        bridge = self.topology.bridge(via_node)
        return self.send(via_node, tcp(bridge.uplink_port, EXTERNAL_MAC, bridge.node_mac,
                                       addressing.EXTERNAL_IP, sport, dst, dport, flags))

    def answer(self, delivery: Delivery, flags: str = "SA", via_node: str | None = None) -> list[Delivery]:
        """The receiver of `delivery` answers (a pod or a node namespace; the external host needs
        `via_node`, the node whose MAC it resolved for the destination)."""
        packet = delivery.packet
        if delivery.switch is None:
            bridge = self.topology.bridge(via_node)
            return self.send(via_node, reply_to(packet, bridge.uplink_port, EXTERNAL_MAC, bridge.node_mac, flags))
        bridge = self.topology.bridge(delivery.switch)
        if delivery.port == bridge.node_port:
            return self.send(delivery.switch, reply_to(packet, bridge.node_port, bridge.node_mac, PIPELINE_MAC, flags))
        pod = next(p for p in self.topology.pods_on(delivery.switch) if p.ofport == delivery.port)
        return self.send(delivery.switch, reply_to(packet, pod.ofport, pod.mac, bridge.node_mac, flags))

    def receiver(self, delivery: Delivery) -> str:
        """Name of who got a delivery: a pod name, `node:<node>` or `external`."""
        if delivery.switch is None:
            return delivery.packet["host"]
        bridge = self.topology.bridge(delivery.switch)
        if delivery.port == bridge.node_port:
            return f"node:{delivery.switch}"
        return next(p.name for p in self.topology.pods_on(delivery.switch) if p.ofport == delivery.port)


def only(deliveries: list[Delivery]) -> Delivery:
    assert len(deliveries) == 1, f"expected exactly one delivery, got {deliveries}"
    return deliveries[0]
