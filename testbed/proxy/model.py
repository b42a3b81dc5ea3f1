"""What a Service proxy needs to know, derived purely from API objects.

kube-proxy does not look at Services and EndpointSlices directly when it writes rules: its change
trackers turn them into one `ServicePortInfo` per (Service, port) and a list of endpoints for each.
This module does the same, as frozen dataclasses, so that every data-plane backend (iptables,
nftables, IPVS, userspace, OpenFlow) renders from one shared, immutable input:

    service_ports(services, endpoint_slices) -> tuple[ServicePort, ...]

Only IPv4 is modelled (the emulation is IPv4-only). Headless Services (clusterIP None) and
ExternalName Services get no proxy rules, as in kube-proxy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

LB_ALGORITHM_ANNOTATION = "testbed.io/lb-algorithm"
LB_WEIGHTS_ANNOTATION = "testbed.io/lb-weights"
DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds; Kubernetes' default for ClientIP affinity


@dataclass(frozen=True, order=True)
class Endpoint:
    """One backend of one Service port, as kube-proxy's BaseEndpointInfo."""
    ip: str
    port: int
    node_name: str | None = None
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    pod_name: str | None = None
    hostname: str | None = None

    @property
    def address(self) -> str:
        """`ip:port`, the string kube-proxy hashes into KUBE-SEP chain names."""
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service with its endpoints, as kube-proxy's ServicePortInfo."""
    namespace: str
    name: str
    port_name: str                  # "" when the Service port is unnamed
    protocol: str                   # "TCP", "UDP" or "SCTP"
    port: int
    cluster_ip: str | None          # None: headless, no VIP
    service_type: str = "ClusterIP"  # ClusterIP, NodePort, LoadBalancer
    node_port: int | None = None
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()       # status.loadBalancer.ingress[].ip
    load_balancer_source_ranges: tuple[str, ...] = ()
    affinity_timeout: int | None = None           # seconds; None: no session affinity
    external_policy_local: bool = False           # externalTrafficPolicy: Local
    internal_policy_local: bool = False           # internalTrafficPolicy: Local
    health_check_node_port: int | None = None
    lb_algorithm: str | None = None               # testbed.io/lb-algorithm (None: the mode's default)
    lb_weights: Mapping[str, int] = field(default_factory=dict, hash=False, compare=False)
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def service_port_name(self) -> str:
        """kube-proxy's ServicePortName.String(): `ns/name` or `ns/name:portname`."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def has_external_addresses(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    @property
    def service_key(self) -> tuple[str, str]:
        """(namespace, name): what change trackers report."""
        return self.namespace, self.name


@dataclass(frozen=True)
class NodeInfo:
    """The node a data plane is rendered for."""
    name: str
    ip: str                 # the node's InternalIP (NodePorts answer here)
    pod_cidr: str           # this node's pod CIDR
    cluster_cidr: str       # all pods (kube-proxy's --cluster-cidr)
    service_cidr: str = "10.96.0.0/12"


def _int_or_none(value) -> int | None:
    return int(value) if value not in (None, "") else None


def _parse_weights(text: str | None) -> dict[str, int]:
    """`testbed.io/lb-weights: "10.244.1.5=3,10.244.2.7=1"` or pod names instead of IPs."""
    weights: dict[str, int] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, _, value = item.partition("=")
        weights[key.strip()] = int(value)
    return weights


def _endpoints_for(service: Mapping, port: Mapping, slices: Iterable[Mapping]) -> tuple[Endpoint, ...]:
    """Endpoints of one Service port from its EndpointSlices, matched by port name and protocol."""
    port_name = port.get("name") or ""
    protocol = port.get("protocol", "TCP")
    found: dict[tuple[str, int], Endpoint] = {}
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType", "IPv4") != "IPv4":
            continue
        slice_port = next((p for p in endpoint_slice.get("ports") or ()
                           if (p.get("name") or "") == port_name
                           and p.get("protocol", "TCP") == protocol), None)
        if slice_port is None or slice_port.get("port") is None:
            continue
        for endpoint in endpoint_slice.get("endpoints") or ():
            conditions = endpoint.get("conditions") or {}
            ready = conditions.get("ready", True) is not False
            target = endpoint.get("targetRef") or {}
            for address in endpoint.get("addresses") or ():
                key = (address, int(slice_port["port"]))
                found[key] = Endpoint(
                    ip=address, port=int(slice_port["port"]),
                    node_name=endpoint.get("nodeName"),
                    ready=ready,
                    serving=conditions.get("serving", ready) is not False,
                    terminating=bool(conditions.get("terminating", False)),
                    pod_name=target.get("name") if target.get("kind") == "Pod" else None,
                    hostname=endpoint.get("hostname"))
    # kube-proxy keeps endpoints sorted by their "ip:port" string.
    return tuple(sorted(found.values(), key=lambda e: e.address))


def service_ports(services: Iterable[Mapping], endpoint_slices: Iterable[Mapping]) -> tuple[ServicePort, ...]:
    """All proxied Service ports, sorted by (namespace, name, port name, protocol).

    `services` are Service objects and `endpoint_slices` EndpointSlice objects, both as the API
    server returns them (plain dicts). Slices are matched to their Service by the
    `kubernetes.io/service-name` label, as kube-proxy does."""
    slices_by_service: dict[tuple[str, str], list[Mapping]] = {}
    for endpoint_slice in endpoint_slices:
        meta = endpoint_slice.get("metadata") or {}
        owner = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        if owner:
            slices_by_service.setdefault((meta.get("namespace", "default"), owner), []).append(endpoint_slice)

    result: list[ServicePort] = []
    for service in services:
        meta = service.get("metadata") or {}
        spec = service.get("spec") or {}
        service_type = spec.get("type", "ClusterIP")
        cluster_ip = spec.get("clusterIP")
        if service_type == "ExternalName" or cluster_ip in (None, "", "None"):
            continue
        namespace = meta.get("namespace", "default")
        annotations = meta.get("annotations") or {}
        affinity_timeout = None
        if spec.get("sessionAffinity") == "ClientIP":
            config = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
            affinity_timeout = int(config.get("timeoutSeconds", DEFAULT_AFFINITY_TIMEOUT))
        lb_ips = tuple(i["ip"] for i in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
                       if i.get("ip")) if service_type == "LoadBalancer" else ()
        slices = slices_by_service.get((namespace, meta["name"]), [])
        for port in spec.get("ports") or ():
            result.append(ServicePort(
                namespace=namespace, name=meta["name"], port_name=port.get("name") or "",
                protocol=port.get("protocol", "TCP"), port=int(port["port"]),
                cluster_ip=cluster_ip, service_type=service_type,
                node_port=_int_or_none(port.get("nodePort")) if service_type in ("NodePort", "LoadBalancer") else None,
                external_ips=tuple(spec.get("externalIPs") or ()),
                load_balancer_ips=lb_ips,
                load_balancer_source_ranges=tuple(spec.get("loadBalancerSourceRanges") or ()),
                affinity_timeout=affinity_timeout,
                external_policy_local=(spec.get("externalTrafficPolicy") == "Local"
                                       and service_type in ("NodePort", "LoadBalancer")),
                internal_policy_local=spec.get("internalTrafficPolicy") == "Local",
                health_check_node_port=_int_or_none(spec.get("healthCheckNodePort")),
                lb_algorithm=annotations.get(LB_ALGORITHM_ANNOTATION),
                lb_weights=_parse_weights(annotations.get(LB_WEIGHTS_ANNOTATION)),
                endpoints=_endpoints_for(service, port, slices)))
    result.sort(key=lambda p: (p.namespace, p.name, p.port_name, p.protocol))
    return tuple(result)
