"""What each controller uses of the control plane, declared as a Protocol.

kube-controller-manager's controllers get informers and clients, not the whole API server; here
each controller module gets the ControlPlane typed as the narrow view below, so what it may touch
is written down (and checked by a type checker), and no controller imports the ControlPlane back.
"""
from __future__ import annotations

import random
from typing import Any, Protocol


class Events(Protocol):
    def record_event(self, obj: dict, type_: str, reason: str, message: str) -> None: ...


class WorkloadContext(Events, Protocol):
    """Deployments, ReplicaSets, ReplicationControllers (workloads.py)."""
    store: Any
    rng: random.Random
    max_pods: int

    def pods_owned_by(self, uid: str) -> list[dict]: ...
    def pods_matching(self, namespace: str, selector: dict) -> list[dict]: ...
    def replica_sets_owned_by(self, uid: str) -> list[dict]: ...
    def delete_pod(self, namespace: str, name: str) -> None: ...
    def pod_quota_message(self) -> str: ...


class EndpointsContext(Protocol):
    """The EndpointSlice and Endpoints controllers (endpoints.py)."""
    store: Any
    rng: random.Random

    def slices_of(self, namespace: str, service: str) -> list[dict]: ...
    def pods_selected(self, namespace: str, selector: dict) -> list[dict]: ...


class SchedulingContext(Events, Protocol):
    """The scheduler, pod IP assignment and the hollow kubelet (scheduling.py)."""
    store: Any
    config: Any
    pod_ipam: Any
    pods_by_node: dict

    def node_spec(self, name: str) -> Any: ...
    def node_labels(self, name: str) -> dict: ...
    def pods_on_node_owned(self, node: str, owner_uid: str) -> int: ...
    def no_pod_ip(self, pod: dict) -> None: ...
    def finalize_pod_deletion(self, namespace: str, name: str) -> None: ...


class ServicesContext(Events, Protocol):
    """Service admission (ClusterIPs, NodePorts) and the LoadBalancer pool (services.py)."""
    store: Any
    cluster_ips: Any
    node_ports: Any
    lb_pool: Any
