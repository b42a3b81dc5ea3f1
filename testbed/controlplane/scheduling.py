"""The scheduler, pod IP assignment (host-local IPAM) and the hollow kubelet.

The hollow kubelet (the name is kubemark's, for the same idea) is what runs pods when the testbed has
no network: it reports a scheduled pod as started and Ready at once, so that the control plane can be
exercised and measured alone. With a network, the emulation's kubelet takes its place: it starts real
processes, runs the readiness probes and reports the truth.
"""
from __future__ import annotations

from ..store import copy_object, now_rfc3339
from .allocators import AllocationError
from .context import SchedulingContext
from .workloads import controller_of


def pick_node(cp: SchedulingContext, pod: dict) -> str | None:
    """Spread pods: fewest pods of the same controller, then fewest pods, then node order."""
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    owner = controller_of(pod)
    by_node = cp.pods_by_node
    best, best_score = None, None
    for index, node in enumerate(cp.config.nodes):
        if selector:
            labels = cp.node_labels(node.name)
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
        on_node = by_node.get(node.name, ())
        score = (cp.pods_on_node_owned(node.name, owner["uid"]) if owner else 0, len(on_node), index)
        if best_score is None or score < best_score:
            best, best_score = node.name, score
    return best


def schedule(cp: SchedulingContext, pod: dict) -> None:
    if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
        return
    node = pick_node(cp, pod)
    # Stored objects are never changed in place, so a new version may share unchanged parts.
    updated = {**pod, "spec": dict(pod["spec"]), "status": dict(pod.get("status") or {})}
    if node is None:
        conditions = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                       "message": "0/%d nodes are available: node(s) didn't match Pod's node affinity/selector."
                                  % len(cp.config.nodes)}]
        if (pod.get("status") or {}).get("conditions") != conditions:
            updated.setdefault("status", {})["conditions"] = conditions
            cp.store.update(updated)
        return
    updated["spec"]["nodeName"] = node
    updated.setdefault("status", {})["conditions"] = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}]
    cp.store.update(updated)
    cp.record_event(pod, "Normal", "Scheduled",
                    f"Successfully assigned {pod['metadata']['namespace']}/{pod['metadata']['name']} to {node}")


def assign_pod_ip(cp: SchedulingContext, pod: dict) -> dict | None:
    """What the CNI plugin does when the pod sandbox starts: an IP from the node's pod CIDR
    (the node's own IP for hostNetwork pods). None when the node has no free pod IP."""
    node = pod["spec"]["nodeName"]
    status = pod.setdefault("status", {})
    if status.get("podIP"):
        return pod
    node_spec = cp.node_spec(node)
    try:
        ip = node_spec.internal_ip if pod["spec"].get("hostNetwork") else cp.pod_ipam.allocate(node)
    except AllocationError:
        return None
    status.update({"podIP": ip, "podIPs": [{"ip": ip}], "hostIP": node_spec.internal_ip,
                   "hostIPs": [{"ip": node_spec.internal_ip}], "startTime": now_rfc3339()})
    return pod


def running_status(pod: dict, ready: bool, started_at: str | None = None) -> dict:
    """status.phase/conditions/containerStatuses of a pod whose containers run."""
    started_at = started_at or now_rfc3339()
    flag = "True" if ready else "False"
    status = copy_object(pod.get("status") or {})
    status["phase"] = "Running"
    status["conditions"] = [
        {"type": "PodReadyToStartContainers", "status": "True"},
        {"type": "Initialized", "status": "True"},
        {"type": "Ready", "status": flag},
        {"type": "ContainersReady", "status": flag},
        {"type": "PodScheduled", "status": "True"},
    ]
    previous = {c["name"]: c for c in status.get("containerStatuses") or []}
    status["containerStatuses"] = [
        {"name": c["name"], "image": c.get("image"), "imageID": "", "ready": ready, "started": True,
         "restartCount": previous.get(c["name"], {}).get("restartCount", 0),
         "state": {"running": {"startedAt": previous.get(c["name"], {}).get("state", {}).get(
             "running", {}).get("startedAt", started_at)}}}
        for c in pod["spec"].get("containers") or []]
    return status


def hollow_kubelet_sync(cp: SchedulingContext, pod: dict) -> None:
    """Start a scheduled pod at once and report it Ready; finish deletions at once. A pod bound to a
    node that does not exist has no kubelet and stays Pending; one that finds no free pod IP stays
    Pending with an event, as with a real kubelet."""
    node = pod["spec"].get("nodeName")
    if node not in cp.pod_ipam.ranges:
        return
    if pod["metadata"].get("deletionTimestamp"):
        cp.finalize_pod_deletion(pod["metadata"]["namespace"], pod["metadata"]["name"])
        return
    if (pod.get("status") or {}).get("phase") == "Running":
        return
    updated = assign_pod_ip(cp, {**pod, "status": dict(pod.get("status") or {})})
    if updated is None:
        cp.no_pod_ip(pod)
        return
    updated["status"] = running_status(updated, ready=True)
    cp.store.update(updated)
