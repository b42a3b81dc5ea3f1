"""EndpointSlice and Endpoints controllers, and EndpointSlice mirroring for selector-less Services.

- Services with a selector: the pods the selector matches, with an IP and not finished, become
  endpoints (`ready` from the pod's Ready condition, `terminating` once it is being deleted), with the
  Service's targetPorts resolved per pod (a named targetPort can differ between pods, so pods are
  grouped by resolved ports), at most 100 endpoints a slice, `nodeName` set. The controller also
  writes the legacy Endpoints object, as the endpoints controller does.
- Services without a selector: EndpointSlices the user gave are used as they are; an Endpoints object
  the user gave is mirrored into EndpointSlices (endpointslicemirroring-controller).
"""
from __future__ import annotations

from ..store import copy_object, now_rfc3339
from .context import EndpointsContext
from .naming import random_suffix

MAX_ENDPOINTS_PER_SLICE = 100
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"
MIRROR_CONTROLLER = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
# The endpoints controller stamps the Endpoints it writes with this annotation; we use it to tell ours
# (to delete when the Service loses its selector) from ones a user wrote.
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


def pod_is_ready(pod: dict) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def resolve_target_port(service_port: dict, pod: dict) -> int | None:
    """A Service targetPort as a number for this pod (named ports are looked up in its containers)."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == service_port.get("protocol", "TCP"):
                return port.get("containerPort")
    return None


def _service_owner_ref(service: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "name": service["metadata"]["name"],
            "uid": service["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _endpoint_of(pod: dict, service: dict) -> dict:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    terminating = meta.get("deletionTimestamp") is not None
    ready = pod_is_ready(pod) and not terminating
    if (service.get("spec") or {}).get("publishNotReadyAddresses"):
        ready = True
    endpoint = {
        "addresses": [status["podIP"]],
        "conditions": {"ready": ready, "serving": pod_is_ready(pod), "terminating": terminating},
        "nodeName": spec.get("nodeName"),
        "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
    }
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        endpoint["hostname"] = spec["hostname"]
    return endpoint


def desired_groups(service: dict, pods: list[dict]) -> list[tuple[list[dict], list[dict]]]:
    """(slice ports, endpoints) groups: pods whose targetPorts resolve to the same numbers share a group."""
    groups: dict[tuple, tuple[list[dict], list[dict]]] = {}
    service_ports = (service.get("spec") or {}).get("ports") or []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if not (pod.get("status") or {}).get("podIP"):
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        ports = []
        for sp in service_ports:
            number = resolve_target_port(sp, pod)
            if number is None:
                continue  # this pod does not serve that port: no entry for it
            ports.append({"name": sp.get("name", ""), "port": number, "protocol": sp.get("protocol", "TCP")})
        key = tuple((p["name"], p["port"], p["protocol"]) for p in ports)
        groups.setdefault(key, (ports, []))[1].append(_endpoint_of(pod, service))
    return [groups[k] for k in sorted(groups)]


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


def reconcile_slices(cp: EndpointsContext, service: dict, groups: list[tuple[list[dict], list[dict]]],
                     managed_by: str, extra_labels: dict | None = None) -> None:
    """Make the Service's slices managed by `managed_by` equal `groups`, reusing existing slices by order
    (updates in place keep names stable, so consumers see changes, not churn)."""
    meta = service["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    existing = sorted((s for s in cp.slices_of(namespace, name)
                       if s["metadata"].get("labels", {}).get(MANAGED_BY_LABEL) == managed_by),
                      key=lambda s: s["metadata"]["name"])
    wanted: list[tuple[list[dict], list[dict]]] = []
    for ports, endpoints in groups:
        for chunk in _chunks(endpoints, MAX_ENDPOINTS_PER_SLICE):
            wanted.append((ports, chunk))
    if not wanted:
        wanted = [([], [])]  # a Service with no endpoints still has one (empty) slice
    labels = {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: managed_by, **(extra_labels or {})}
    for index, (ports, endpoints) in enumerate(wanted):
        if index < len(existing):
            current = existing[index]
            if current.get("ports") == ports and current.get("endpoints") == endpoints \
                    and current["metadata"].get("labels") == labels:
                continue
            updated = copy_object(current)
            updated["ports"], updated["endpoints"] = ports, endpoints
            updated["metadata"]["labels"] = dict(labels)
            cp.store.update(updated)
        else:
            cp.store.create({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{name}-{random_suffix(cp.rng)}", "generateName": f"{name}-",
                             "namespace": namespace, "labels": dict(labels),
                             "ownerReferences": [_service_owner_ref(service)]},
                "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
            })
    for stale in existing[len(wanted):]:
        cp.store.delete("EndpointSlice", namespace, stale["metadata"]["name"])


def _endpoints_subsets(groups: list[tuple[list[dict], list[dict]]]) -> list[dict]:
    subsets = []
    for ports, endpoints in groups:
        if not endpoints:
            continue
        ready, not_ready = [], []
        for endpoint in endpoints:
            address = {"ip": endpoint["addresses"][0], "nodeName": endpoint.get("nodeName"),
                       "targetRef": endpoint["targetRef"]}
            if endpoint.get("hostname"):
                address["hostname"] = endpoint["hostname"]
            (ready if endpoint["conditions"]["ready"] else not_ready).append(address)
        subset = {"ports": [{k: v for k, v in p.items() if k != "name" or v} for p in ports]}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        subsets.append(subset)
    return subsets


def sync_service_endpoints(cp: EndpointsContext, service: dict) -> None:
    """Entry point for a Service (or one of its pods, or its Endpoints) having changed."""
    meta, spec = service["metadata"], service.get("spec") or {}
    namespace, name = meta["namespace"], meta["name"]
    selector = spec.get("selector")
    if spec.get("type") == "ExternalName":
        for s in cp.slices_of(namespace, name):
            if s["metadata"].get("labels", {}).get(MANAGED_BY_LABEL) in (SLICE_CONTROLLER, MIRROR_CONTROLLER):
                cp.store.delete("EndpointSlice", namespace, s["metadata"]["name"])
        return
    if selector:
        groups = desired_groups(service, cp.pods_selected(namespace, selector))
        reconcile_slices(cp, service, groups, SLICE_CONTROLLER)
        _write_endpoints(cp, service, groups)
        return
    # Selector-less: mirror a user-given Endpoints object, if any.
    endpoints = cp.store.get("Endpoints", namespace, name)
    if endpoints is None or TRIGGER_TIME_ANNOTATION in (endpoints["metadata"].get("annotations") or {}):
        for s in cp.slices_of(namespace, name):
            if s["metadata"].get("labels", {}).get(MANAGED_BY_LABEL) in (MIRROR_CONTROLLER, SLICE_CONTROLLER):
                cp.store.delete("EndpointSlice", namespace, s["metadata"]["name"])
        if endpoints is not None:  # ours, from when the Service had a selector
            cp.store.delete("Endpoints", namespace, name)
        return
    if (endpoints["metadata"].get("labels") or {}).get(SKIP_MIRROR_LABEL) == "true":
        return
    reconcile_slices(cp, service, mirrored_groups(endpoints), MIRROR_CONTROLLER)


def mirrored_groups(endpoints: dict) -> list[tuple[list[dict], list[dict]]]:
    groups = []
    for subset in endpoints.get("subsets") or []:
        ports = [{"name": p.get("name", ""), "port": p.get("port"), "protocol": p.get("protocol", "TCP")}
                 for p in subset.get("ports") or []]
        items = []
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(field) or []:
                endpoint = {"addresses": [address["ip"]],
                            "conditions": {"ready": ready, "serving": ready, "terminating": False}}
                for key in ("nodeName", "hostname", "targetRef"):
                    if address.get(key):
                        endpoint[key] = address[key]
                items.append(endpoint)
        groups.append((ports, items))
    return groups


def _write_endpoints(cp: EndpointsContext, service: dict, groups) -> None:
    meta = service["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    subsets = _endpoints_subsets(groups)
    current = cp.store.get("Endpoints", namespace, name)
    labels = {**(meta.get("labels") or {}), SKIP_MIRROR_LABEL: "true"}
    if current is None:
        cp.store.create({"apiVersion": "v1", "kind": "Endpoints",
                         "metadata": {"name": name, "namespace": namespace, "labels": labels,
                                      "annotations": {TRIGGER_TIME_ANNOTATION: now_rfc3339()}},
                         "subsets": subsets})
    elif current.get("subsets") != subsets or current["metadata"].get("labels") != labels:
        updated = copy_object(current)
        updated["subsets"] = subsets
        updated["metadata"]["labels"] = labels
        updated["metadata"].setdefault("annotations", {})[TRIGGER_TIME_ANNOTATION] = now_rfc3339()
        cp.store.update(updated)
