"""`kubectl get` columns per kind, ported from kubernetes/pkg/printers/internalversion/printers.go.

Each kind has its headers, the extra headers of `-o wide`, and a pure function from an object (as
`Cluster.get` returns it) to its cells. `render_table` adds kubectl's NAMESPACE and LABELS columns.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from .format import age, format_label_selector, format_labels, tabulate

LOAD_BALANCER_WIDTH = 16   # kubectl clips EXTERNAL-IP/ADDRESS to this width unless -o wide
MAX_LISTED = 3             # endpoints and hosts beyond this become "+ N more..."


@dataclass(frozen=True)
class Columns:
    headers: tuple[str, ...]
    wide_headers: tuple[str, ...]
    cells: Callable[[dict, datetime, bool], list[str]]


def _listed(items: list[str], total: int, empty: str) -> str:
    text = ",".join(items[:MAX_LISTED])
    if total > MAX_LISTED:
        return f"{text} + {total - MAX_LISTED} more..."
    return text or empty


def _containers(template_spec: dict) -> list[str]:
    containers = template_spec.get("containers") or []
    return [",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)]


def _lb_addresses(status: dict, wide: bool) -> str:
    addresses = sorted({i.get("ip") or i.get("hostname") for i in ((status or {}).get("loadBalancer") or {})
                        .get("ingress") or [] if i.get("ip") or i.get("hostname")})
    text = ",".join(addresses)
    if not wide and len(text) > LOAD_BALANCER_WIDTH:
        text = text[:LOAD_BALANCER_WIDTH - 3] + "..."
    return text


# -- pods -------------------------------------------------------------------------------------

def pod_status(pod: dict) -> tuple[str, int, int, int, str | None]:
    """(STATUS, ready containers, total containers, restarts, last restart time) as printPod derives them."""
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod["metadata"]
    phase = status.get("phase", "")
    reason = status.get("reason") or phase
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    total = len(spec.get("containers") or [])
    ready = restarts = 0
    last_restart = None
    has_running = False
    for container in reversed(status.get("containerStatuses") or []):
        restarts += container.get("restartCount", 0)
        finished = (((container.get("lastState") or {}).get("terminated")) or {}).get("finishedAt")
        if finished and (last_restart is None or finished > last_restart):
            last_restart = finished
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated and terminated.get("reason"):
            reason = terminated["reason"]
        elif terminated:
            reason = f"Signal:{terminated['signal']}" if terminated.get("signal") \
                else f"ExitCode:{terminated.get('exitCode', 0)}"
        elif container.get("ready") and state.get("running") is not None:
            has_running = True
            ready += 1
    if reason == "Completed" and has_running:
        ready_condition = any(c.get("type") == "Ready" and c.get("status") == "True"
                              for c in status.get("conditions") or [])
        reason = "Running" if ready_condition else "NotReady"
    if meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return reason, ready, total, restarts, last_restart


def _pod_cells(pod: dict, now: datetime, wide: bool) -> list[str]:
    reason, ready, total, restarts, last_restart = pod_status(pod)
    restarts_text = f"{restarts} ({age(last_restart, now)} ago)" if restarts and last_restart else str(restarts)
    cells = [pod["metadata"]["name"], f"{ready}/{total}", reason, restarts_text,
             age(pod["metadata"].get("creationTimestamp"), now)]
    if wide:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        ips = status.get("podIPs") or []
        gates = spec.get("readinessGates") or []
        gates_text = "<none>"
        if gates:
            true = sum(1 for gate in gates for c in status.get("conditions") or []
                       if c.get("type") == gate.get("conditionType") and c.get("status") == "True")
            gates_text = f"{true}/{len(gates)}"
        cells += [(ips[0].get("ip") if ips else "") or "<none>", spec.get("nodeName") or "<none>",
                  status.get("nominatedNodeName") or "<none>", gates_text]
    return cells


# -- services, endpoints, ingress -------------------------------------------------------------

def service_external_ip(service: dict, wide: bool) -> str:
    """getServiceExternalIP: what the EXTERNAL-IP column shows for each Service type."""
    spec = service.get("spec") or {}
    external_ips = spec.get("externalIPs") or []
    kind = spec.get("type", "ClusterIP")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) or "<none>"
    if kind == "LoadBalancer":
        lb = _lb_addresses(service.get("status") or {}, wide)
        if external_ips:
            return ",".join(([lb] if lb else []) + external_ips)
        return lb or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def ports_column(service: dict) -> str:
    pieces = []
    for port in (service.get("spec") or {}).get("ports") or []:
        protocol = port.get("protocol", "TCP")
        node_port = port.get("nodePort")
        pieces.append(f"{port.get('port')}:{node_port}/{protocol}" if node_port else f"{port.get('port')}/{protocol}")
    return ",".join(pieces) or "<none>"


def _service_cells(service: dict, now: datetime, wide: bool) -> list[str]:
    spec = service.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or []
    cells = [service["metadata"]["name"], spec.get("type", "ClusterIP"), cluster_ips[0] if cluster_ips else "<none>",
             service_external_ip(service, wide), ports_column(service),
             age(service["metadata"].get("creationTimestamp"), now)]
    if wide:
        cells.append(format_labels(spec.get("selector")))
    return cells


def format_endpoints(endpoints: dict) -> str:
    """formatEndpoints: `ip:port,ip:port + N more...` over every subset and port."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    items, count = [], 0
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:
            count += len(addresses)
            items += addresses
            continue
        for port in ports:
            count += len(addresses)
            items += [f"{ip}:{port.get('port')}" for ip in addresses]
    return _listed(items, count, "")


def _endpoints_cells(endpoints: dict, now: datetime, wide: bool) -> list[str]:
    return [endpoints["metadata"]["name"], format_endpoints(endpoints),
            age(endpoints["metadata"].get("creationTimestamp"), now)]


def _slice_cells(endpoint_slice: dict, now: datetime, wide: bool) -> list[str]:
    ports = [str(p["port"]) if p.get("port") is not None else (p.get("name") or "*")
             for p in endpoint_slice.get("ports") or []]
    addresses = [a for e in endpoint_slice.get("endpoints") or [] for a in e.get("addresses") or []]
    return [endpoint_slice["metadata"]["name"], endpoint_slice.get("addressType", ""),
            _listed(ports, len(ports), "<unset>"), _listed(addresses, len(addresses), "<unset>"),
            age(endpoint_slice["metadata"].get("creationTimestamp"), now)]


def ingress_hosts(ingress: dict) -> str:
    rules = (ingress.get("spec") or {}).get("rules") or []
    hosts = [r["host"] for r in rules[:MAX_LISTED] if r.get("host")]
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - MAX_LISTED} more..." if len(rules) > MAX_LISTED else text


def _ingress_cells(ingress: dict, now: datetime, wide: bool) -> list[str]:
    spec = ingress.get("spec") or {}
    return [ingress["metadata"]["name"], spec.get("ingressClassName") or "<none>", ingress_hosts(ingress),
            _lb_addresses(ingress.get("status") or {}, wide), "80, 443" if spec.get("tls") else "80",
            age(ingress["metadata"].get("creationTimestamp"), now)]


def _ingress_class_cells(ingress_class: dict, now: datetime, wide: bool) -> list[str]:
    spec = ingress_class.get("spec") or {}
    parameters = spec.get("parameters")
    parameters_text = "<none>"
    if parameters:
        group = f".{parameters['apiGroup']}" if parameters.get("apiGroup") else ""
        parameters_text = f"{parameters.get('kind', '')}{group}/{parameters.get('name', '')}"
    return [ingress_class["metadata"]["name"], spec.get("controller", ""), parameters_text,
            age(ingress_class["metadata"].get("creationTimestamp"), now)]


# -- workloads --------------------------------------------------------------------------------

def _deployment_cells(deployment: dict, now: datetime, wide: bool) -> list[str]:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    cells = [deployment["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
             str(status.get("updatedReplicas", 0)), str(status.get("availableReplicas", 0)),
             age(deployment["metadata"].get("creationTimestamp"), now)]
    if wide:
        selector = format_label_selector(spec.get("selector"))
        cells += _containers(((spec.get("template") or {}).get("spec")) or {}) + \
            ["" if selector == "<none>" else selector]
    return cells


def _replica_cells(obj: dict, now: datetime, wide: bool) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    cells = [obj["metadata"]["name"], str(spec.get("replicas", 1)), str(status.get("replicas", 0)),
             str(status.get("readyReplicas", 0)), age(obj["metadata"].get("creationTimestamp"), now)]
    if wide:
        selector = format_labels(spec.get("selector")) if obj["kind"] == "ReplicationController" \
            else format_label_selector(spec.get("selector"))
        cells += _containers(((spec.get("template") or {}).get("spec")) or {}) + [selector]
    return cells


# -- cluster objects --------------------------------------------------------------------------

def node_roles(node: dict) -> list[str]:
    roles = set()
    for key, value in (node["metadata"].get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/"):]:
            roles.add(key[len("node-role.kubernetes.io/"):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return sorted(roles)


def node_status(node: dict) -> str:
    ready = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    states = ["Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")]
    if (node.get("spec") or {}).get("unschedulable"):
        states.append("SchedulingDisabled")
    return ",".join(states)


def node_address(node: dict, kind: str) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == kind:
            return address.get("address", "")
    return "<none>"


def _node_cells(node: dict, now: datetime, wide: bool) -> list[str]:
    info = (node.get("status") or {}).get("nodeInfo") or {}
    cells = [node["metadata"]["name"], node_status(node), ",".join(node_roles(node)) or "<none>",
             age(node["metadata"].get("creationTimestamp"), now), info.get("kubeletVersion", "")]
    if wide:
        cells += [node_address(node, "InternalIP"), node_address(node, "ExternalIP"),
                  info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
                  info.get("containerRuntimeVersion") or "<unknown>"]
    return cells


def _namespace_cells(namespace: dict, now: datetime, wide: bool) -> list[str]:
    return [namespace["metadata"]["name"], (namespace.get("status") or {}).get("phase", ""),
            age(namespace["metadata"].get("creationTimestamp"), now)]


def _configmap_cells(configmap: dict, now: datetime, wide: bool) -> list[str]:
    count = len(configmap.get("data") or {}) + len(configmap.get("binaryData") or {})
    return [configmap["metadata"]["name"], str(count), age(configmap["metadata"].get("creationTimestamp"), now)]


def _secret_cells(secret: dict, now: datetime, wide: bool) -> list[str]:
    # The API server merges stringData into data; count the keys it would hold.
    keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
    return [secret["metadata"]["name"], secret.get("type", "Opaque"), str(len(keys)),
            age(secret["metadata"].get("creationTimestamp"), now)]


def _condition_status(obj: dict, kind: str) -> str:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition.get("status", "")
    return "Unknown"


def _gateway_class_cells(gateway_class: dict, now: datetime, wide: bool) -> list[str]:
    # the CRD's additionalPrinterColumns: NAME CONTROLLER ACCEPTED AGE
    return [gateway_class["metadata"]["name"], (gateway_class.get("spec") or {}).get("controllerName", ""),
            _condition_status(gateway_class, "Accepted"), age(gateway_class["metadata"].get("creationTimestamp"), now)]


def _gateway_cells(gateway: dict, now: datetime, wide: bool) -> list[str]:
    addresses = [a.get("value", "") for a in (gateway.get("status") or {}).get("addresses") or []]
    return [gateway["metadata"]["name"], (gateway.get("spec") or {}).get("gatewayClassName", ""),
            ",".join(addresses), _condition_status(gateway, "Programmed"),
            age(gateway["metadata"].get("creationTimestamp"), now)]


def _http_route_cells(route: dict, now: datetime, wide: bool) -> list[str]:
    hostnames = (route.get("spec") or {}).get("hostnames") or []
    return [route["metadata"]["name"], '["' + '","'.join(hostnames) + '"]' if hostnames else "",
            age(route["metadata"].get("creationTimestamp"), now)]


AGE = "AGE"
COLUMNS: dict[str, Columns] = {
    "Pod": Columns(("NAME", "READY", "STATUS", "RESTARTS", AGE),
                   ("IP", "NODE", "NOMINATED NODE", "READINESS GATES"), _pod_cells),
    "Service": Columns(("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", AGE), ("SELECTOR",), _service_cells),
    "Endpoints": Columns(("NAME", "ENDPOINTS", AGE), (), _endpoints_cells),
    "EndpointSlice": Columns(("NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", AGE), (), _slice_cells),
    "Ingress": Columns(("NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", AGE), (), _ingress_cells),
    "IngressClass": Columns(("NAME", "CONTROLLER", "PARAMETERS", AGE), (), _ingress_class_cells),
    "Deployment": Columns(("NAME", "READY", "UP-TO-DATE", "AVAILABLE", AGE),
                          ("CONTAINERS", "IMAGES", "SELECTOR"), _deployment_cells),
    "ReplicaSet": Columns(("NAME", "DESIRED", "CURRENT", "READY", AGE),
                          ("CONTAINERS", "IMAGES", "SELECTOR"), _replica_cells),
    "ReplicationController": Columns(("NAME", "DESIRED", "CURRENT", "READY", AGE),
                                     ("CONTAINERS", "IMAGES", "SELECTOR"), _replica_cells),
    "Node": Columns(("NAME", "STATUS", "ROLES", AGE, "VERSION"),
                    ("INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"), _node_cells),
    "Namespace": Columns(("NAME", "STATUS", AGE), (), _namespace_cells),
    "ConfigMap": Columns(("NAME", "DATA", AGE), (), _configmap_cells),
    "Secret": Columns(("NAME", "TYPE", "DATA", AGE), (), _secret_cells),
    "GatewayClass": Columns(("NAME", "CONTROLLER", "ACCEPTED", AGE), (), _gateway_class_cells),
    "Gateway": Columns(("NAME", "CLASS", "ADDRESS", "PROGRAMMED", AGE), (), _gateway_cells),
    "HTTPRoute": Columns(("NAME", "HOSTNAMES", AGE), (), _http_route_cells),
    "ReferenceGrant": Columns(("NAME", AGE), (),
                              lambda o, now, wide: [o["metadata"]["name"], age(o["metadata"].get("creationTimestamp"), now)]),
}


def render_table(kind: str, objects: list[dict], now: datetime, *, wide: bool = False,
                 with_namespace: bool = False, show_labels: bool = False, name_prefix: str = "") -> str:
    """One kind's `kubectl get` table. `name_prefix` (`pod/`) is set when several kinds are printed."""
    columns = COLUMNS[kind]
    header = list(columns.headers) + (list(columns.wide_headers) if wide else [])
    rows = []
    for obj in objects:
        cells = columns.cells(obj, now, wide)
        cells[0] = name_prefix + cells[0]
        if with_namespace:
            cells.insert(0, obj["metadata"].get("namespace", ""))
        if show_labels:
            cells.append(format_labels(obj["metadata"].get("labels")))
        rows.append(cells)
    if with_namespace:
        header.insert(0, "NAMESPACE")
    if show_labels:
        header.append("LABELS")
    return tabulate([header] + rows)
