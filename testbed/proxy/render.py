"""`testbed render FORMAT`: what a node's data plane gets for the applied manifests, without root.

The format names the backend (testbed/proxy/backend.py registry): iptables (iptables-restore
text), openflow (ovs-ofctl flows of the sdn mode), and whatever other backends register.
"""
from __future__ import annotations

from ..errors import TestbedError
from ..net import addressing
from .backend import ClusterLayout, PodPlacement, render_formats
from .model import NodeInfo


def node_infos(cluster, cluster_cidr: str | None = None) -> tuple[NodeInfo, ...]:
    config = cluster.control_plane.config
    return tuple(NodeInfo(name=name, ip=addressing.node_ip(i), pod_cidr=addressing.node_pod_cidr(i),
                          cluster_cidr=cluster_cidr or config.cluster_cidr, service_cidr=config.service_cidr)
                 for i, name in enumerate(cluster.topology.nodes))


def layout_of(cluster, cluster_cidr: str | None = None) -> ClusterLayout:
    """The nodes of the topology and where the control plane has placed its pods."""
    pods = []
    for pod in cluster.get("pods", namespace=None):
        node, ip = pod["spec"].get("nodeName"), (pod.get("status") or {}).get("podIP")
        if node and ip and not pod["spec"].get("hostNetwork"):
            pods.append(PodPlacement(pod["metadata"]["namespace"], pod["metadata"]["name"], node, ip))
    return ClusterLayout(nodes=node_infos(cluster, cluster_cidr), pods=tuple(pods), options=cluster.proxy_options)


def render(render_format: str, cluster, node: str | None = None, cluster_cidr: str | None = None) -> str:
    formats = render_formats()
    if render_format not in formats:
        raise TestbedError(f"unknown render format {render_format!r}: choose one of {', '.join(formats)}")
    backend = formats[render_format]
    layout = layout_of(cluster, cluster_cidr)
    names = [n.name for n in layout.nodes]
    name = node or names[0]
    if name not in names:
        raise TestbedError(f"--node: unknown node {name!r}: this topology has {', '.join(names)}")
    return backend.render(cluster.service_ports(), layout.nodes[names.index(name)], layout)
