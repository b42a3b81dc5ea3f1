"""`testbed render MODE`: what a node's data plane gets for the applied manifests, without root."""
from __future__ import annotations

from ..errors import TestbedError
from ..net import addressing
from .model import NodeInfo


def node_info_for(cluster, node: str | None, cluster_cidr: str | None = None) -> NodeInfo:
    nodes = list(cluster.topology.nodes)
    name = node or nodes[0]
    if name not in nodes:
        raise TestbedError(f"--node: unknown node {name!r}: this topology has {', '.join(nodes)}")
    index = nodes.index(name)
    config = cluster.control_plane.config
    return NodeInfo(name=name, ip=addressing.node_ip(index), pod_cidr=addressing.node_pod_cidr(index),
                    cluster_cidr=cluster_cidr or config.cluster_cidr, service_cidr=config.service_cidr)


def render(mode: str, cluster, node: str | None = None, cluster_cidr: str | None = None) -> str:
    ports = cluster.control_plane.service_ports()
    info = node_info_for(cluster, node, cluster_cidr)
    if mode == "iptables":
        from .iptables import render_iptables
        return render_iptables(ports, info)
    if mode == "openflow":
        from ..sdn.dataplane import render_openflow_for_cluster
        return render_openflow_for_cluster(cluster, info.name)
    raise TestbedError(f"rendering for {mode} is not implemented yet (available: iptables, openflow)")
