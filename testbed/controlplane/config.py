"""What a control plane is configured with: its nodes and address ranges."""
from __future__ import annotations

from dataclasses import dataclass

from ..net import addressing

PENDING_PODS = 10_000


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
    # At most this many pods exist at once, Pending ones included: the testbed's stand-in for etcd's
    # storage quota, so that `replicas: 2147483647` ends in a FailedCreate event, not in a hang.
    # None: every pod IP the nodes have (253 per /24 node) plus PENDING_PODS that wait for one.
    max_pods: int | None = None

    @classmethod
    def for_nodes(cls, names: list[str], **kwargs) -> "ClusterConfig":
        """Nodes addressed by the testbed's scheme (net/addressing.py), in the given order."""
        nodes = [NodeSpec(name, addressing.node_ip(i), addressing.node_pod_cidr(i)) for i, name in enumerate(names)]
        return cls(nodes=nodes, **kwargs)
