"""The three patch types of `kubectl patch --type` (k8s.io/kubectl/pkg/cmd/patch, getPatchedJSON):

- `strategic` (the default): strategicpatch.py, driven by the struct tags below;
- `merge`: a JSON merge patch (RFC 7386), whose whole algorithm is the RFC's ten-line `MergePatch`;
- `json`: a JSON patch (RFC 6902), applied by the `jsonpatch` library.

`PATCH_META` holds, for each kind the testbed serves, the `patchStrategy`/`patchMergeKey` tags of
the Go types in k8s.io/api (core/v1, apps/v1) and k8s.io/apimachinery (meta/v1 ObjectMeta): the
fields not listed have no tags, so their lists are replaced and their maps merged. Pure.
"""
from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from ..errors import TestbedError
from .strategicpatch import PatchError, PatchMeta, strategic_merge_patch

PATCH_TYPES = ("json", "merge", "strategic")   # kubectl lists them sorted


def _merge(key: str = "", fields: dict | None = None, *more: str) -> PatchMeta:
    """A field tagged patchStrategy:"merge[,more]" patchMergeKey:"key"."""
    return PatchMeta(("merge", *more), key, fields or {})


def _struct(fields: dict) -> PatchMeta:
    return PatchMeta((), "", fields)


OBJECT_META = _struct({"ownerReferences": _merge("uid"), "finalizers": _merge()})
CONTAINER = {"ports": _merge("containerPort"), "env": _merge("name"), "volumeMounts": _merge("mountPath"),
             "volumeDevices": _merge("devicePath")}
POD_SPEC = _struct({
    "volumes": _merge("name", None, "retainKeys"),
    "initContainers": _merge("name", CONTAINER),
    "containers": _merge("name", CONTAINER),
    "ephemeralContainers": _merge("name", CONTAINER),
    "imagePullSecrets": _merge("name"),
    "hostAliases": _merge("ip"),
    "topologySpreadConstraints": _merge("topologyKey"),
    "schedulingGates": _merge("name"),
    "resourceClaims": _merge("name", None, "retainKeys"),
})
POD_TEMPLATE = _struct({"metadata": OBJECT_META, "spec": POD_SPEC})
CONDITIONS = _struct({"conditions": _merge("type")})


def _kind_meta(spec: dict | None = None, status: PatchMeta = CONDITIONS) -> PatchMeta:
    return _struct({"metadata": OBJECT_META, "spec": _struct(spec or {}), "status": status})


PATCH_META: dict[str, PatchMeta] = {
    "Pod": _struct({"metadata": OBJECT_META, "spec": POD_SPEC, "status": _struct({
        "conditions": _merge("type"), "hostIPs": _merge("ip"), "podIPs": _merge("ip")})}),
    "Deployment": _kind_meta({"strategy": PatchMeta(("retainKeys",)), "template": POD_TEMPLATE}),
    "ReplicaSet": _kind_meta({"template": POD_TEMPLATE}),
    "ReplicationController": _kind_meta({"template": POD_TEMPLATE}),
    "Service": _kind_meta({"ports": _merge("port")}),
    "Node": _kind_meta({"podCIDRs": _merge()}, _struct({"conditions": _merge("type"), "addresses": _merge("type")})),
    "Namespace": _kind_meta(),
}


def schema_for(kind: str) -> PatchMeta:
    """Kinds without tagged fields (Endpoints, EndpointSlice, Secret, ConfigMap, Ingress, ...) still
    have ObjectMeta's."""
    return PATCH_META.get(kind) or _struct({"metadata": OBJECT_META})


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 section 2, MergePatch(Target, Patch)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = json_merge_patch(result.get(name), value)
    return result


def apply_patch(obj: dict, patch_type: str, patch: Any) -> dict:
    """`obj` with `patch` (already decoded from JSON or YAML) applied; errors are worded as the API
    server's 400 answers (`Error from server (BadRequest): ...`)."""
    try:
        if patch_type == "json":
            if not isinstance(patch, list):
                raise PatchError(f"json: cannot unmarshal {_json_type(patch)} into Go value of type jsonpatch.Patch")
            result = jsonpatch.JsonPatch(patch).apply(copy.deepcopy(obj))
        elif patch_type == "merge":
            result = json_merge_patch(obj, patch)
        else:
            if not isinstance(patch, dict):
                raise PatchError(f"json: cannot unmarshal {_json_type(patch)} into Go value of type "
                                 "map[string]interface {}")
            result = strategic_merge_patch(obj, patch, schema_for(obj["kind"]))
    except (PatchError, jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as err:
        raise TestbedError(f"Error from server (BadRequest): {err}") from None
    if not isinstance(result, dict):
        raise TestbedError(f"Error from server (BadRequest): json: cannot unmarshal {_json_type(result)} "
                           "into Go value of type map[string]interface {}")
    return result


def _json_type(value: Any) -> str:
    """How Go's encoding/json names a JSON value's type in an unmarshal error."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    return "number"
