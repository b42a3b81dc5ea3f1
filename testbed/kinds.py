"""The kinds the testbed serves: API versions, scope, names, and what the API server does on write.

As in the API server, an object is (1) recognised by apiVersion+kind, (2) converted to its storage
version (the legacy Ingress forms become networking.k8s.io/v1), (3) defaulted, then validated
(validation.py). Objects are stored and returned in the preferred version, so `get` shows what
`kubectl get -o json` shows.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindInfo:
    kind: str
    group_versions: tuple[str, ...]  # accepted apiVersions; the first is the stored/preferred one
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return self.group_versions[0]

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""

    @property
    def resource(self) -> str:
        """kubectl's `resource.group` spelling, e.g. `deployment.apps`, `service`."""
        return f"{self.kind.lower()}.{self.group}" if self.group else self.kind.lower()


GATEWAY_VERSIONS = ("gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1")
KINDS: dict[str, KindInfo] = {k.kind: k for k in (
    KindInfo("Namespace", ("v1",), "namespaces", namespaced=False, short_names=("ns",)),
    KindInfo("Node", ("v1",), "nodes", namespaced=False, short_names=("no",)),
    KindInfo("Pod", ("v1",), "pods", short_names=("po",)),
    KindInfo("Service", ("v1",), "services", short_names=("svc",)),
    KindInfo("Endpoints", ("v1",), "endpoints", short_names=("ep",)),
    KindInfo("Secret", ("v1",), "secrets"),
    KindInfo("ConfigMap", ("v1",), "configmaps", short_names=("cm",)),
    KindInfo("ReplicationController", ("v1",), "replicationcontrollers", short_names=("rc",)),
    KindInfo("Deployment", ("apps/v1",), "deployments", short_names=("deploy",)),
    KindInfo("ReplicaSet", ("apps/v1",), "replicasets", short_names=("rs",)),
    KindInfo("EndpointSlice", ("discovery.k8s.io/v1",), "endpointslices"),
    KindInfo("Ingress", ("networking.k8s.io/v1", "networking.k8s.io/v1beta1", "extensions/v1beta1"),
             "ingresses", short_names=("ing",)),
    KindInfo("IngressClass", ("networking.k8s.io/v1", "networking.k8s.io/v1beta1"), "ingressclasses",
             namespaced=False),
    # Gateway API (validated in testbed/ingress/gateway_validation.py, served by the ingress add-on)
    KindInfo("GatewayClass", GATEWAY_VERSIONS, "gatewayclasses", namespaced=False, short_names=("gc",)),
    KindInfo("Gateway", GATEWAY_VERSIONS, "gateways", short_names=("gtw",)),
    KindInfo("HTTPRoute", GATEWAY_VERSIONS, "httproutes"),
    KindInfo("ReferenceGrant", ("gateway.networking.k8s.io/v1beta1",), "referencegrants", short_names=("refgrant",)),
)}

# Kinds users may write; Nodes come from the topology.
WRITABLE_KINDS = frozenset(KINDS) - {"Node"}


def lookup_kind(text: str) -> KindInfo | None:
    """Resolve what a user types (`svc`, `services`, `Service`, `deployment.apps`) to a kind."""
    key = text.strip().split(".")[0].lower()
    for info in KINDS.values():
        if key in (info.kind.lower(), info.plural, *info.short_names):
            return info
    return None


# ---------------------------------------------------------------------------------------------
# Conversion of legacy forms to the storage version
# ---------------------------------------------------------------------------------------------

def _convert_legacy_backend(backend: dict) -> dict:
    """extensions/v1beta1 `serviceName`/`servicePort` -> v1 `service: {name, port: {number|name}}`."""
    if not isinstance(backend, dict) or "serviceName" not in backend and "servicePort" not in backend:
        return backend
    converted = {k: v for k, v in backend.items() if k not in ("serviceName", "servicePort")}
    port = backend.get("servicePort")
    # Conversion (pkg/apis/networking/v1beta1 Convert_..._IngressBackend): an IntOrString's string is a
    # port name, even "80"; only an integer is a number.
    port_ref = {"name": port} if isinstance(port, str) else ({"number": port} if port is not None else {})
    converted["service"] = {"name": backend.get("serviceName"), "port": port_ref}
    return converted


def convert_ingress_to_v1(obj: dict) -> dict:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return obj
    spec = dict(spec)
    if "backend" in spec:
        spec["defaultBackend"] = _convert_legacy_backend(spec.pop("backend"))
    elif "defaultBackend" in spec:
        spec["defaultBackend"] = _convert_legacy_backend(spec["defaultBackend"])
    rules = []
    for rule in spec.get("rules") or []:
        if isinstance(rule, dict) and isinstance(rule.get("http"), dict):
            rule = dict(rule)
            http = dict(rule["http"])
            paths = []
            for path in http.get("paths") or []:
                if isinstance(path, dict):
                    path = dict(path)
                    path["backend"] = _convert_legacy_backend(path.get("backend"))
                    # v1beta1 defaulted pathType to ImplementationSpecific
                    path.setdefault("pathType", "ImplementationSpecific")
                paths.append(path)
            http["paths"] = paths
            rule["http"] = http
        rules.append(rule)
    if "rules" in spec:
        spec["rules"] = rules
    return {**obj, "apiVersion": "networking.k8s.io/v1", "spec": spec}


def to_storage_version(obj: dict) -> dict:
    if obj.get("kind") == "Ingress" and obj.get("apiVersion") != "networking.k8s.io/v1":
        return convert_ingress_to_v1(obj)
    if obj.get("kind") == "IngressClass":
        return {**obj, "apiVersion": "networking.k8s.io/v1"}
    if obj.get("kind") in ("GatewayClass", "Gateway", "HTTPRoute"):   # v1beta1 is the same schema
        return {**obj, "apiVersion": GATEWAY_VERSIONS[0]}
    return obj


# ---------------------------------------------------------------------------------------------
# Defaulting (pkg/apis/*/v1/defaults.go, the parts that matter for networking)
# ---------------------------------------------------------------------------------------------

def _default_container(container: dict) -> None:
    if not isinstance(container, dict):
        return
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    container.setdefault("imagePullPolicy", "IfNotPresent")
    for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            probe.setdefault("initialDelaySeconds", 0)
            if isinstance(probe.get("httpGet"), dict):
                probe["httpGet"].setdefault("path", "/")
                probe["httpGet"].setdefault("scheme", "HTTP")


def default_pod_spec(spec: dict) -> None:
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    for container in spec.get("containers") or []:
        _default_container(container)


def _default_template(spec: dict) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        default_pod_spec(template.get("spec"))


def _default_service(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("type", "ClusterIP")
    if spec["type"] == "ExternalName":
        return
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    # SetDefaults_Service: externally accessible Services (NodePort, LoadBalancer, ClusterIP with
    # externalIPs) get externalTrafficPolicy Cluster.
    if spec["type"] in ("NodePort", "LoadBalancer") or (spec["type"] == "ClusterIP" and spec.get("externalIPs")):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if spec.get("clusterIPs") and not spec.get("clusterIP"):
        spec["clusterIP"] = spec["clusterIPs"][0]   # the registry's normalizeClusterIPs
    if spec["type"] == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    if spec.get("sessionAffinity") == "ClientIP":
        client_ip = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
        if isinstance(client_ip, dict):
            client_ip.setdefault("timeoutSeconds", 10800)
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if port.get("targetPort") in (None, 0, "") and "port" in port:
                port["targetPort"] = port["port"]   # SetDefaults_Service: unset, 0 and "" mean the port


def _default_deployment(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("maxSurge", "25%")
                rolling.setdefault("maxUnavailable", "25%")
    _default_template(spec)


def _default_replicaset(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        _default_template(spec)


def _default_replication_controller(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") if isinstance(template, dict) else None
        if not spec.get("selector") and isinstance(labels, dict):
            spec["selector"] = dict(labels)   # an RC's selector defaults to its template's labels
        _default_template(spec)


def _default_secret(obj: dict) -> None:
    obj.setdefault("type", "Opaque")


def _default_endpoint_slice(obj: dict) -> None:
    for port in obj.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def _default_endpoints(obj: dict) -> None:
    for subset in obj.get("subsets") or []:
        if isinstance(subset, dict):
            for port in subset.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def _default_namespace(obj: dict) -> None:
    """The API server always sets this label on namespaces (so selectors can pick one by name)."""
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
        labels = metadata.get("labels")
        metadata["labels"] = {**(labels if isinstance(labels, dict) else {}),
                              "kubernetes.io/metadata.name": metadata["name"]}
    obj.setdefault("spec", {"finalizers": ["kubernetes"]})


DEFAULTERS = {
    "Namespace": _default_namespace,
    "Service": _default_service,
    "Deployment": _default_deployment,
    "ReplicaSet": _default_replicaset,
    "ReplicationController": _default_replication_controller,
    "Pod": lambda obj: default_pod_spec(obj.setdefault("spec", {})),
    "Secret": _default_secret,
    "EndpointSlice": _default_endpoint_slice,
    "Endpoints": _default_endpoints,
}


def apply_defaults(obj: dict) -> dict:
    """Fill in what the API server defaults, in place; returns obj."""
    metadata = obj.setdefault("metadata", {})
    if isinstance(metadata, dict) and KINDS.get(obj.get("kind", "")) and KINDS[obj["kind"]].namespaced \
            and not metadata.get("namespace"):
        metadata["namespace"] = "default"   # "" and null mean the default namespace, as for kubectl
    defaulter = DEFAULTERS.get(obj.get("kind", ""))
    if defaulter and isinstance(obj.get("spec", {}), dict):
        defaulter(obj)
    return obj
