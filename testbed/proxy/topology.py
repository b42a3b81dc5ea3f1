"""Which endpoints a node's proxy uses for a Service port: kube-proxy's pkg/proxy/topology.go.

This is the only copy in the testbed; every backend (iptables, nftables, IPVS, userspace, the
SDN pipeline) asks it. `CategorizeEndpoints` in kube-proxy returns the endpoints for
cluster-wide traffic, the ones for node-local traffic and the union that gets per-endpoint state:

- Cluster set: the ready endpoints; if none is ready, the serving-and-terminating ones (graceful
  termination fallback, KEP-1669). Used unless the port is internal-Local and not externally
  reachable with a Cluster external policy.
- Local set: this node's ready endpoints; if none, this node's serving-and-terminating ones. It
  is computed from this node's endpoints alone, so a ready endpoint elsewhere does not hide a
  terminating one here. Used for internalTrafficPolicy: Local, and for externalTrafficPolicy:
  Local on externally reachable ports.
- `has_any`: whether a usable endpoint exists anywhere (else traffic is rejected, not dropped).

Topology-aware hints (zones) are not modelled: the emulation has no zones.
"""
from __future__ import annotations

from dataclasses import dataclass

from .model import Endpoint, ServicePort


@dataclass(frozen=True)
class EndpointCategories:
    cluster: tuple[Endpoint, ...]    # for Cluster policy ((), if the port never uses it)
    local: tuple[Endpoint, ...]      # for Local policy ((), if the port never uses it)
    reachable: tuple[Endpoint, ...]  # union: the endpoints that get per-endpoint state here
    has_any: bool                    # usable endpoints anywhere in the cluster


def externally_accessible(port: ServicePort) -> bool:
    """NodePort, external IPs or LoadBalancer IPs (kube-proxy's ExternallyAccessible)."""
    return port.has_external_addresses


def uses_cluster_endpoints(port: ServicePort) -> bool:
    """kube-proxy's UsesClusterEndpoints: also for external traffic policy Local, because pods and
    the node itself reach an external address through the short-circuit to the Cluster endpoints."""
    return not port.internal_policy_local or externally_accessible(port)


def uses_local_endpoints(port: ServicePort) -> bool:
    return port.internal_policy_local or (externally_accessible(port) and port.external_policy_local)


def _ready_or_terminating(endpoints) -> tuple[Endpoint, ...]:
    return tuple(e for e in endpoints if e.ready) or tuple(e for e in endpoints if e.serving and e.terminating)


def categorize_endpoints(port: ServicePort, node_name: str) -> EndpointCategories:
    cluster: tuple[Endpoint, ...] = ()
    local: tuple[Endpoint, ...] = ()
    has_any = False
    if uses_cluster_endpoints(port):
        cluster = _ready_or_terminating(port.endpoints)
        has_any = bool(cluster)
    if not uses_local_endpoints(port):
        return EndpointCategories(cluster, (), cluster, has_any)
    has_any = has_any or any(e.ready or (e.serving and e.terminating) for e in port.endpoints)
    on_node = [e for e in port.endpoints if e.node_name == node_name]
    local = _ready_or_terminating(on_node)
    terminating_fallback = bool(local) and not any(e.ready for e in on_node)
    if not uses_cluster_endpoints(port):
        return EndpointCategories((), local, local, has_any)
    if not terminating_fallback:
        return EndpointCategories(cluster, local, cluster, has_any)  # cluster is a superset
    merged = {e.address: e for e in (*cluster, *local)}
    return EndpointCategories(cluster, local, tuple(merged[k] for k in sorted(merged)), has_any)


def internal_endpoints(port: ServicePort, node_name: str) -> tuple[Endpoint, ...]:
    """Where traffic to the ClusterIP from this node (or its pods) may go."""
    cats = categorize_endpoints(port, node_name)
    return cats.local if port.internal_policy_local else cats.cluster


def external_endpoints(port: ServicePort, node_name: str) -> tuple[Endpoint, ...]:
    """Where NodePort / external IP / LoadBalancer traffic arriving at this node may go."""
    cats = categorize_endpoints(port, node_name)
    return cats.local if port.external_policy_local else cats.cluster
