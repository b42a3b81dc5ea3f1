"""What a control plane is configured with: its nodes and address ranges."""
from __future__ import annotations

from dataclasses import dataclass

from ..net import addressing


@dataclass(frozen=True)
class NodeSpec:
    name: str
    internal_ip: str
    pod_cidr: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class ClusterConfig:
    nodes: list[NodeSpec]
    service_cidr: str = str(addressing.SERVICE_CIDR)
    cluster_cidr: str = str(addressing.CLUSTER_CIDR)
    node_port_range: tuple[int, int] = (30000, 32767)
    lb_pool: tuple[str, str] = addressing.LOADBALANCER_POOL
    cluster_domain: str = "cluster.local"
    seed: int | None = None
    cluster_dns: bool = True        # kube-dns Service (.10) and the coredns Deployment in kube-system
    dns_replicas: int = 2

    @classmethod
    def for_nodes(cls, names: list[str], **kwargs) -> "ClusterConfig":
        """Nodes addressed by the testbed's scheme (net/addressing.py), in the given order."""
        nodes = [NodeSpec(name, addressing.node_ip(i), addressing.node_pod_cidr(i)) for i, name in enumerate(names)]
        return cls(nodes=nodes, **kwargs)
