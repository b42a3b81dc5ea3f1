"""Patches as `kubectl patch` applies them: the strategic merge patch port against apimachinery's
own test vectors, JSON merge patch against RFC 7386's appendix, and the struct tags of the kinds."""
from pathlib import Path

import pytest
import yaml

from testbed.errors import TestbedError
from testbed.kubectl.patches import apply_patch, json_merge_patch, schema_for
from testbed.kubectl.strategicpatch import PatchError, PatchMeta, go_value, strategic_merge_patch

VECTORS = yaml.safe_load((Path(__file__).parent.parent / "golden" / "strategicpatch_upstream.yaml").read_text())["cases"]


def merge_item_schema() -> PatchMeta:
    """The tags of patch_test.go's MergeItem and RetainKeysMergeItem (a recursive type)."""
    merge_item: dict = {}
    retain_keys_item = {
        "mergingIntList": PatchMeta(("merge",)),
        "mergingList": PatchMeta(("merge",), "name", merge_item),
    }
    merge_item.update({
        "mergingList": PatchMeta(("merge",), "name", merge_item),
        "nonMergingList": PatchMeta((), "", merge_item),
        "mergingIntList": PatchMeta(("merge",)),
        "mergeItemPtr": PatchMeta(("merge",), "name", merge_item),
        "replacingItem": PatchMeta(("replace",)),
        "retainKeysMap": PatchMeta(("retainKeys",), "", retain_keys_item),
        "retainKeysMergingList": PatchMeta(("merge", "retainKeys"), "name", merge_item),
    })
    return PatchMeta((), "", merge_item)


@pytest.mark.parametrize("case", VECTORS, ids=[c["description"] for c in VECTORS])
def test_strategic_merge_patch_matches_apimachinery_vectors(case):
    if "error" in case:
        with pytest.raises(PatchError, match=case["error"]):
            strategic_merge_patch(case["original"], case["patch"], merge_item_schema())
        return
    assert strategic_merge_patch(case["original"], case["patch"], merge_item_schema()) == case["result"]


def test_the_vectors_cover_every_directive():
    text = yaml.safe_dump(VECTORS)
    for directive in ("$patch: delete", "$retainKeys", "$deleteFromPrimitiveList/", "$setElementOrder/"):
        assert directive in text
    assert len(VECTORS) > 150


@pytest.mark.parametrize("original, patch, result", [
    # From customStrategicMergePatchTestCaseData (whose runner sorts lists, so order is checked here).
    ({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]},
     {"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]},
     {"mergingList": [{"name": 2, "value": "b"}, {"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
    ({"mergingIntList": [1, 2, 3]}, {"mergingIntList": [3, 1]}, {"mergingIntList": [2, 3, 1]}),
    ({"mergingIntList": [1, 2]}, {"mergingIntList": [2, 3]}, {"mergingIntList": [1, 2, 3]}),
    ({"simpleMap": {"key1": 1, "key2": 1}}, {"simpleMap": {"$patch": "delete"}}, {"simpleMap": {}}),
    ({"name": 1, "value": 1}, {"other": "a", "$patch": "replace"}, {"other": "a"}),
    # An element the live list lacks comes before the ones the patch does not name (mergeSortedSlice).
    ({"mergingList": [{"name": "a"}, {"name": "b"}]}, {"mergingList": [{"name": "c"}]},
     {"mergingList": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}),
    # A list without the merge tag is replaced; a map is merged; null deletes.
    ({"nonMergingList": [{"name": 1}, {"name": 2}]}, {"nonMergingList": [{"name": 3}]}, {"nonMergingList": [{"name": 3}]}),
    ({"simpleMap": {"a": "1", "b": "2"}}, {"simpleMap": {"b": None, "c": "3"}}, {"simpleMap": {"a": "1", "c": "3"}}),
])
def test_strategic_merge_patch_orders_and_replaces_as_go_does(original, patch, result):
    assert strategic_merge_patch(original, patch, merge_item_schema()) == result


def test_strategic_merge_patch_errors_are_worded_as_apimachinery():
    schema = merge_item_schema()
    with pytest.raises(PatchError, match=r"^map: map\[value:b\] does not contain declared merge key: name$"):
        strategic_merge_patch({"mergingList": [{"name": "a"}]}, {"mergingList": [{"value": "b"}]}, schema)
    with pytest.raises(PatchError, match="^merging lists cannot yet be specified in the patch$"):
        strategic_merge_patch({"mergingList": [{"name": "a"}]}, {"mergingList": [{"$patch": "merge"}]}, schema)
    with pytest.raises(PatchError, match=r"^unknown patch type: bogus in map: map\[\$patch:bogus\]$"):
        strategic_merge_patch({"simpleMap": {"a": "b"}}, {"simpleMap": {"$patch": "bogus"}}, schema)
    assert go_value({"b": [1.0, True, None], "a": "x"}) == "map[a:x b:[1 true <nil>]]"


def test_inputs_are_left_unchanged():
    original = {"mergingList": [{"name": "a", "value": "1"}]}
    patch = {"mergingList": [{"name": "a", "value": "2"}, {"name": "b"}]}
    before = (yaml.safe_dump(original), yaml.safe_dump(patch))
    strategic_merge_patch(original, patch, merge_item_schema())
    assert (yaml.safe_dump(original), yaml.safe_dump(patch)) == before


# -- the kinds' struct tags -------------------------------------------------------------------------

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"replicas": 2, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
             "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                 "volumes": [{"name": "data", "emptyDir": {}}],
                 "containers": [
                     {"name": "web", "image": "nginx:1.7", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                      "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                      "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                     {"name": "sidecar", "image": "busybox"}]}}},
}


def containers(obj):
    return obj["spec"]["template"]["spec"]["containers"]


def test_containers_merge_by_name_and_their_lists_by_their_keys():
    patched = apply_patch(DEPLOYMENT, "strategic", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:1.9", "ports": [{"containerPort": 443}],
         "env": [{"name": "B", "value": "3"}], "volumeMounts": [{"mountPath": "/cache", "name": "cache"}]}]}}}})
    web, sidecar = containers(patched)
    assert (web["image"], sidecar) == ("nginx:1.9", {"name": "sidecar", "image": "busybox"})
    assert [p["containerPort"] for p in web["ports"]] == [443, 80]
    assert web["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]   # live order kept
    assert [m["mountPath"] for m in web["volumeMounts"]] == ["/cache", "/data"]
    assert containers(DEPLOYMENT)[0]["image"] == "nginx:1.7"   # the input is not modified


def test_directives_on_a_deployment():
    deleted = apply_patch(DEPLOYMENT, "strategic", {"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "$patch": "delete"}]}}}})
    assert [c["name"] for c in containers(deleted)] == ["web"]
    replaced = apply_patch(DEPLOYMENT, "strategic", {"spec": {"template": {"spec": {
        "containers": [{"name": "only", "image": "alpine"}, {"$patch": "replace"}]}}}})
    assert containers(replaced) == [{"name": "only", "image": "alpine"}]
    # strategy has retainKeys: the directive clears rollingUpdate when switching to Recreate.
    recreate = apply_patch(DEPLOYMENT, "strategic", {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}
    merged = apply_patch(DEPLOYMENT, "strategic", {"spec": {"strategy": {"type": "Recreate"}}})
    assert merged["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%"}   # as on a real cluster


def test_service_ports_merge_by_port_and_metadata_lists_by_their_tags():
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "finalizers": ["a"]},
               "spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "a", "tier": "web"}}}
    patched = apply_patch(service, "strategic", {"metadata": {"finalizers": ["b"]}, "spec": {
        "ports": [{"port": 80, "targetPort": 9090}, {"port": 443}], "selector": {"tier": None}}})
    assert patched["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]
    assert patched["spec"]["selector"] == {"app": "a"}
    assert patched["metadata"]["finalizers"] == ["b", "a"]   # new elements first, as in Go
    assert schema_for("ConfigMap").lookup("metadata").lookup("finalizers").strategy == "merge"


def test_merge_patch_replaces_lists_where_strategic_merges_them():
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}}
    assert containers(apply_patch(DEPLOYMENT, "merge", patch)) == [{"name": "web", "image": "nginx:2"}]
    assert len(containers(apply_patch(DEPLOYMENT, "strategic", patch))) == 2


@pytest.mark.parametrize("target, patch, result", [
    # RFC 7386, Appendix A.
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_json_merge_patch_follows_rfc_7386_appendix_a(target, patch, result):
    assert json_merge_patch(target, patch) == result


def test_json_patch_and_its_errors():
    patched = apply_patch(DEPLOYMENT, "json", [{"op": "replace", "path": "/spec/replicas", "value": 5},
                                               {"op": "add", "path": "/metadata/labels/tier", "value": "front"}])
    assert patched["spec"]["replicas"] == 5 and patched["metadata"]["labels"]["tier"] == "front"
    with pytest.raises(TestbedError, match=r"^Error from server \(BadRequest\): .*nope"):
        apply_patch(DEPLOYMENT, "json", [{"op": "remove", "path": "/spec/nope"}])
    with pytest.raises(TestbedError, match=r"cannot unmarshal object into Go value of type jsonpatch.Patch"):
        apply_patch(DEPLOYMENT, "json", {"op": "remove", "path": "/spec"})
    with pytest.raises(TestbedError, match=r"^Error from server \(BadRequest\): .*does not contain declared merge key"):
        apply_patch(DEPLOYMENT, "strategic", {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
