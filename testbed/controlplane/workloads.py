"""Deployment -> ReplicaSet -> Pod controllers (and ReplicationControllers), as kube-controller-manager
runs them: replicas kept, rolling updates bounded by maxSurge/maxUnavailable, Recreate, revision
history, and rollback (`kubectl rollout undo`)."""
from __future__ import annotations

import math

from ..store import copy_object
from ..validation import selector_matches
from .context import WorkloadContext
from .endpoints import pod_is_ready
from .naming import pod_template_hash, random_suffix

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
HASH_LABEL = "pod-template-hash"


def owner_ref(owner: dict) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def controller_of(obj: dict) -> dict | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def is_active(pod: dict) -> bool:
    return pod["metadata"].get("deletionTimestamp") is None and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def revision_of(rs: dict) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def resolve_fenceposts(deployment: dict) -> tuple[int, int]:
    """maxSurge rounds up and maxUnavailable down; both zero would deadlock, so unavailable becomes 1."""
    spec = deployment["spec"]
    replicas = spec.get("replicas", 1)
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}

    def scaled(value, round_up: bool) -> int:
        if isinstance(value, str) and value.endswith("%"):
            exact = int(value[:-1]) * replicas / 100
            return math.ceil(exact) if round_up else math.floor(exact)
        return int(value)
    surge = scaled(rolling.get("maxSurge", "25%"), True)
    unavailable = scaled(rolling.get("maxUnavailable", "25%"), False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


# ------------------------------------------------------------------------------------------
# ReplicaSet / ReplicationController: keep `replicas` pods
# ------------------------------------------------------------------------------------------

def _deletion_rank(pod: dict) -> tuple:
    """Which pods go first when scaling down (controller.ActivePods ordering, simplified): unscheduled,
    then pending, then not ready, then the newest."""
    status = pod.get("status") or {}
    return (bool(pod["spec"].get("nodeName")), status.get("phase") == "Running", pod_is_ready(pod),
            [-ord(c) for c in pod["metadata"].get("creationTimestamp", "")], pod["metadata"]["name"])


def new_pod_from_template(cp: WorkloadContext, owner: dict) -> dict:
    template = copy_object(owner["spec"]["template"])
    meta = template.get("metadata") or {}
    prefix = owner["metadata"]["name"] + "-"
    name = prefix + random_suffix(cp.rng)
    while cp.store.get("Pod", owner["metadata"]["namespace"], name) is not None:
        name = prefix + random_suffix(cp.rng)
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "generateName": prefix, "namespace": owner["metadata"]["namespace"],
                     "labels": dict(meta.get("labels") or {}),
                     **({"annotations": dict(meta["annotations"])} if meta.get("annotations") else {}),
                     "ownerReferences": [owner_ref(owner)]},
        "spec": template.get("spec") or {},
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }


def claim_pods(cp: WorkloadContext, rs: dict) -> list[dict]:
    """The pods this ReplicaSet (or ReplicationController) controls, as ClaimPods does
    (pkg/controller/controller_ref_manager.go): an owned pod whose labels no longer match the
    selector is released (its controller reference removed: it lives on as an orphan, and the
    controller makes a replacement); an orphan that matches, and is not being deleted, is adopted.
    A controller being deleted neither releases nor adopts."""
    meta = rs["metadata"]
    selector = rs["spec"].get("selector") or {}
    deleting = bool(meta.get("deletionTimestamp"))
    claimed = []
    for pod in cp.pods_owned_by(meta["uid"]):
        if deleting or selector_matches(selector, pod["metadata"].get("labels") or {}):
            claimed.append(pod)
        else:
            released = copy_object(pod)
            released["metadata"]["ownerReferences"] = [
                r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != meta["uid"]]
            if not released["metadata"]["ownerReferences"]:
                del released["metadata"]["ownerReferences"]
            cp.store.update(released)
    if not deleting and selector:
        for pod in cp.pods_matching(meta["namespace"], selector):
            if controller_of(pod) is None and not pod["metadata"].get("deletionTimestamp"):
                adopted = copy_object(pod)
                adopted["metadata"]["ownerReferences"] = [*(pod["metadata"].get("ownerReferences") or []),
                                                          owner_ref(rs)]
                claimed.append(cp.store.update(adopted))
    return claimed


def sync_replica_set(cp: WorkloadContext, rs: dict) -> None:
    """ReplicaSet or ReplicationController: create or delete pods to match spec.replicas, then status."""
    namespace = rs["metadata"]["namespace"]
    pods = [p for p in claim_pods(cp, rs) if is_active(p)]
    wanted = rs["spec"].get("replicas", 1)
    failure = None
    if len(pods) < wanted:
        missing = wanted - len(pods)
        room = max(0, cp.max_pods - cp.store.count("Pod"))
        for _ in range(min(missing, room)):
            pods.append(cp.store.create(new_pod_from_template(cp, rs)))
        if room < missing:   # the ReplicaSet controller's FailedCreate (replica_set.go manageReplicas)
            failure = f"Error creating: pods is forbidden: {cp.pod_quota_message()}"
            cp.record_event(rs, "Warning", "FailedCreate", failure)
    elif len(pods) > wanted:
        doomed = sorted(pods, key=_deletion_rank)[: len(pods) - wanted]
        for pod in doomed:
            cp.delete_pod(namespace, pod["metadata"]["name"])
        pods = [p for p in pods if p not in doomed]
    ready = sum(1 for p in pods if pod_is_ready(p))
    status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
              "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)}
    if failure:
        status["conditions"] = [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                 "message": failure}]
    if rs.get("status") != status:
        updated = copy_object(rs)
        updated["status"] = status
        cp.store.update(updated)


# ------------------------------------------------------------------------------------------
# Deployment
# ------------------------------------------------------------------------------------------

def _set_replicas(cp: WorkloadContext, rs: dict, replicas: int, deployment: dict) -> dict:
    surge, _ = resolve_fenceposts(deployment) if deployment["spec"].get("strategy", {}).get("type") != "Recreate" \
        else (0, 0)
    annotations = rs["metadata"].get("annotations") or {}
    desired = str(deployment["spec"].get("replicas", 1))
    max_replicas = str(deployment["spec"].get("replicas", 1) + surge)
    if rs["spec"].get("replicas") == replicas and annotations.get(DESIRED_REPLICAS) == desired \
            and annotations.get(MAX_REPLICAS) == max_replicas:
        return rs
    updated = copy_object(rs)
    updated["spec"]["replicas"] = replicas
    updated["metadata"].setdefault("annotations", {}).update({DESIRED_REPLICAS: desired, MAX_REPLICAS: max_replicas})
    return cp.store.update(updated, bump_generation=True)


def _template_without_hash(template: dict) -> dict:
    template = copy_object(template)
    labels = (template.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return template


def _new_replica_set(cp: WorkloadContext, deployment: dict, rss: list[dict], template_hash: str) -> dict:
    template = copy_object(deployment["spec"]["template"])
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = template_hash
    selector = copy_object(deployment["spec"]["selector"])
    selector.setdefault("matchLabels", {})[HASH_LABEL] = template_hash
    revision = max((revision_of(r) for r in rss), default=0) + 1
    annotations = {REVISION: str(revision)}
    cause = (deployment["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)
    if cause:
        annotations[CHANGE_CAUSE] = cause
    rs = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{deployment['metadata']['name']}-{template_hash}",
                     "namespace": deployment["metadata"]["namespace"],
                     "labels": dict(template["metadata"]["labels"]), "annotations": annotations,
                     "ownerReferences": [owner_ref(deployment)]},
        "spec": {"replicas": 0, "selector": selector, "template": template,
                 "minReadySeconds": deployment["spec"].get("minReadySeconds", 0)},
        "status": {"replicas": 0},
    }
    created = cp.store.create(rs)
    cp.record_event(deployment, "Normal", "ScalingReplicaSet", f"Created new replica set {rs['metadata']['name']}")
    return created


def _promote_revision(cp: WorkloadContext, rs: dict, rss: list[dict], deployment: dict) -> dict:
    """A rollback reuses the old ReplicaSet: it becomes the newest revision, keeping its history."""
    top = max((revision_of(r) for r in rss if r is not rs), default=0)
    cause = (deployment["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)
    annotations = rs["metadata"].get("annotations") or {}
    if revision_of(rs) > top and (not cause or annotations.get(CHANGE_CAUSE) == cause):
        return rs
    updated = copy_object(rs)
    annotations = updated["metadata"].setdefault("annotations", {})
    if revision_of(rs) <= top:
        history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
        annotations[REVISION_HISTORY] = ",".join(history + [str(revision_of(rs))])
        annotations[REVISION] = str(top + 1)
    if cause:
        annotations[CHANGE_CAUSE] = cause
    return cp.store.update(updated)


def sync_deployment(cp: WorkloadContext, deployment: dict) -> None:
    spec = deployment["spec"]
    replicas = spec.get("replicas", 1)
    rss = sorted(cp.replica_sets_owned_by(deployment["metadata"]["uid"]),
                 key=lambda r: (r["metadata"].get("creationTimestamp", ""), revision_of(r)))
    if spec.get("paused"):
        _update_deployment_status(cp, deployment, rss, None)
        return
    template_hash = pod_template_hash(_template_without_hash(spec["template"]))
    new_rs = next((r for r in rss if (r["metadata"].get("labels") or {}).get(HASH_LABEL) == template_hash), None)
    if new_rs is None:
        new_rs = _new_replica_set(cp, deployment, rss, template_hash)
    else:
        new_rs = _promote_revision(cp, new_rs, rss, deployment)
    old = [r for r in rss if r["metadata"]["uid"] != new_rs["metadata"]["uid"]]

    if (spec.get("strategy") or {}).get("type") == "Recreate":
        for rs in old:
            if rs["spec"].get("replicas", 0):
                _set_replicas(cp, rs, 0, deployment)
        # Terminating pods still run: Recreate waits until they are gone.
        old_pods_left = any((p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                            for rs in old for p in cp.pods_owned_by(rs["metadata"]["uid"]))
        if not old_pods_left and new_rs["spec"].get("replicas") != replicas:
            new_rs = _set_replicas(cp, new_rs, replicas, deployment)
    else:
        new_rs = _rolling_update(cp, deployment, new_rs, old)
    _cleanup_history(cp, deployment, [r for r in old if cp.store.get("ReplicaSet", r["metadata"]["namespace"],
                                                                     r["metadata"]["name"]) is not None])
    _update_deployment_status(cp, deployment, cp.replica_sets_owned_by(deployment["metadata"]["uid"]), new_rs)


def _rolling_update(cp: WorkloadContext, deployment: dict, new_rs: dict, old: list[dict]) -> dict:
    replicas = deployment["spec"].get("replicas", 1)
    surge, max_unavailable = resolve_fenceposts(deployment)
    # Scale up the new ReplicaSet as far as maxSurge allows.
    current = sum(r["spec"].get("replicas", 0) for r in old) + new_rs["spec"].get("replicas", 0)
    new_replicas = new_rs["spec"].get("replicas", 0)
    if new_replicas > replicas:
        new_rs = _set_replicas(cp, new_rs, replicas, deployment)
    elif new_replicas < replicas and current < replicas + surge:
        scale_up = min(replicas + surge - current, replicas - new_replicas)
        new_rs = _set_replicas(cp, new_rs, new_replicas + scale_up, deployment)
    elif not old and new_replicas != replicas:
        new_rs = _set_replicas(cp, new_rs, replicas, deployment)
    # Scale down old ReplicaSets as far as maxUnavailable allows.
    old = [cp.store.get("ReplicaSet", r["metadata"]["namespace"], r["metadata"]["name"]) or r for r in old]
    all_sets = old + [new_rs]
    all_pods = sum(r["spec"].get("replicas", 0) for r in all_sets)
    min_available = replicas - max_unavailable
    new_unavailable = new_rs["spec"].get("replicas", 0) - (new_rs.get("status") or {}).get("availableReplicas", 0)
    max_scaled_down = all_pods - min_available - new_unavailable
    if max_scaled_down <= 0:
        return new_rs
    # First the unhealthy replicas of old sets, oldest first.
    cleaned = 0
    for i, rs in enumerate(old):
        if cleaned >= max_scaled_down:
            break
        available = (rs.get("status") or {}).get("availableReplicas", 0)
        have = rs["spec"].get("replicas", 0)
        if have == 0 or have <= available:
            continue
        count = min(max_scaled_down - cleaned, have - available)
        old[i] = _set_replicas(cp, rs, have - count, deployment)
        cleaned += count
    # Then available ones, keeping at least minAvailable across all sets.
    available_total = sum((r.get("status") or {}).get("availableReplicas", 0) for r in old + [new_rs])
    if available_total <= min_available:
        return new_rs
    budget = available_total - min_available
    for rs in old:
        if budget <= 0:
            break
        have = rs["spec"].get("replicas", 0)
        if have == 0:
            continue
        count = min(have, budget)
        _set_replicas(cp, rs, have - count, deployment)
        budget -= count
    return new_rs


def _cleanup_history(cp: WorkloadContext, deployment: dict, old: list[dict]) -> None:
    limit = deployment["spec"].get("revisionHistoryLimit", 10)
    idle = sorted((r for r in old if r["spec"].get("replicas", 0) == 0
                   and (r.get("status") or {}).get("replicas", 0) == 0), key=revision_of)
    for rs in idle[: max(0, len(idle) - limit)]:
        cp.store.delete("ReplicaSet", rs["metadata"]["namespace"], rs["metadata"]["name"])


def _update_deployment_status(cp: WorkloadContext, deployment: dict, rss: list[dict], new_rs: dict | None) -> None:
    replicas = deployment["spec"].get("replicas", 1)
    total = sum((r.get("status") or {}).get("replicas", 0) for r in rss)
    ready = sum((r.get("status") or {}).get("readyReplicas", 0) for r in rss)
    available = sum((r.get("status") or {}).get("availableReplicas", 0) for r in rss)
    updated_replicas = (new_rs.get("status") or {}).get("replicas", 0) if new_rs else 0
    _, max_unavailable = resolve_fenceposts(deployment)
    is_available = available >= replicas - max_unavailable
    complete = updated_replicas == replicas and total == replicas and available == replicas
    status = {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        "replicas": total, "updatedReplicas": updated_replicas, "readyReplicas": ready,
        "availableReplicas": available, "unavailableReplicas": max(0, replicas - available),
        "conditions": [
            {"type": "Available", "status": "True" if is_available else "False",
             "reason": "MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
             "message": "Deployment has minimum availability." if is_available
             else "Deployment does not have minimum availability."},
            {"type": "Progressing", "status": "True",
             "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
             "message": f'ReplicaSet "{new_rs["metadata"]["name"]}" '
                        + ("has successfully progressed." if complete else "is progressing.")
             if new_rs else "Deployment is paused."},
        ],
    }
    for key in ("readyReplicas", "availableReplicas", "updatedReplicas", "unavailableReplicas"):
        if not status[key]:
            del status[key]
    if deployment.get("status") != status:
        current = cp.store.get("Deployment", deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        if current is None:
            return
        updated = copy_object(current)
        updated["status"] = status
        cp.store.update(updated)


def rollout_history(cp: WorkloadContext, deployment: dict) -> list[tuple[int, str]]:
    rss = cp.replica_sets_owned_by(deployment["metadata"]["uid"])
    return sorted((revision_of(r), (r["metadata"].get("annotations") or {}).get(CHANGE_CAUSE, "<none>"))
                  for r in rss)


def rollback_template(cp: WorkloadContext, deployment: dict, to_revision: int | None) -> dict:
    """The pod template of `to_revision` (default: the previous revision), for `rollout undo`."""
    rss = sorted(cp.replica_sets_owned_by(deployment["metadata"]["uid"]), key=revision_of)
    if not rss:
        raise LookupError("no rollout history found")
    if to_revision in (None, 0):
        if len(rss) < 2:
            raise LookupError("no rollout history found")
        target = rss[-2]
    else:
        target = next((r for r in rss if revision_of(r) == to_revision), None)
        if target is None:
            raise LookupError(f"unable to find specified revision {to_revision} in history")
    return _template_without_hash(target["spec"]["template"])
