"""Strategic merge patch, applied as the API server applies it: a port of
k8s.io/apimachinery/pkg/util/strategicpatch (patch.go: `StrategicMergeMapPatchUsingLookupPatchMeta`,
with the server's options MergeParallelList=true and IgnoreUnmatchedNulls=true).

What makes it "strategic" is the Go struct tags of the API types: a list field tagged
`patchStrategy:"merge" patchMergeKey:"name"` (a pod's containers) is merged element by element,
matched on the merge key; a list without the tag is replaced whole; a list of scalars tagged `merge`
(finalizers) becomes the union. A `PatchMeta` carries those tags (patches.py holds them for the kinds
the testbed serves). The patch may also carry directives:

- `$patch: replace` (a map or list is replaced, not merged), `$patch: delete` (a map is emptied;
  in a merging list, the element with that merge key is removed), `$patch: merge` (refused in lists);
- `$retainKeys: [...]` (keys of the map not listed are cleared);
- `$deleteFromPrimitiveList/<field>: [...]` (scalars removed from a merging list of scalars);
- `$setElementOrder/<field>: [...]` (the order of a merging list after the merge).

Element order follows the Go code exactly: elements named by the patch come in the patch's order and
elements the patch does not mention keep their relative places (mergeSortedSlice). Errors carry
apimachinery's wording, Go values printed as Go's `%v` prints them.

Pure: no cluster, no I/O; the inputs are not modified.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

DIRECTIVE = "$patch"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
RETAIN_KEYS = "$retainKeys"
SET_ELEMENT_ORDER = "$setElementOrder"
REPLACE, DELETE, MERGE, RETAIN_KEYS_STRATEGY = "replace", "delete", "merge", "retainKeys"


class PatchError(ValueError):
    """A patch that cannot be applied (the API server answers 400 Bad Request)."""


@dataclass(frozen=True)
class PatchMeta:
    """The struct tags of one field: `patchStrategy` (comma-separated in Go: `merge,retainKeys`),
    `patchMergeKey`, and the tags of the fields of its type (of the element type, for a list)."""
    strategies: tuple[str, ...] = ()
    merge_key: str = ""
    fields: Mapping[str, "PatchMeta"] = field(default_factory=dict)

    def lookup(self, name: str) -> "PatchMeta":
        return self.fields.get(name, NO_TAGS)

    @property
    def strategy(self) -> str:
        """extractRetainKeysPatchStrategy: retainKeys only matters through the directive, so the
        strategy that decides merge or replace is the other one."""
        others = [s for s in self.strategies if s != RETAIN_KEYS_STRATEGY]
        if len(others) > 1 or len(self.strategies) > 2:
            raise PatchError(f"unexpected patch strategy: [{' '.join(self.strategies)}]")
        return others[0] if others else ""


NO_TAGS = PatchMeta()


def strategic_merge_patch(original: dict, patch: dict, schema: PatchMeta) -> dict:
    """The object `original` with `patch` applied; `schema` describes original's type."""
    if not isinstance(original, dict) or not isinstance(patch, dict):
        raise PatchError("invalid JSON document")
    return _merge_map(copy.deepcopy(original), copy.deepcopy(patch), schema)


# ---------------------------------------------------------------------------------------------
# Go's view of JSON values
# ---------------------------------------------------------------------------------------------

def _kind(value: Any) -> str:
    """reflect.TypeOf on a decoded JSON value: every number is a float64, so ints and floats match."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    raise PatchError(f"unsupported value {value!r}")


def go_value(value: Any) -> str:
    """Go's `%v` of a decoded JSON value (`map[name:a value:1]`, `[1 2]`, `<nil>`), for messages."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    return str(value)


def _no_merge_key(item: dict, key: str) -> PatchError:
    return PatchError(f"map: {go_value(item)} does not contain declared merge key: {key}")


def _bad_arg_type(expected: str, actual: Any) -> PatchError:
    return PatchError(f"expected a {expected}, but received a {_kind(actual)}")


def _extract_key(key: str, prefix: str) -> str:
    head, slash, rest = key.partition("/")
    if not slash or head != prefix:
        if prefix == DELETE_FROM_PRIMITIVE_LIST:
            raise PatchError("invalid patch format of primitive list")
        raise PatchError("invalid patch format of setElementOrder list")
    return rest


# ---------------------------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------------------------

def _merge_map(original: dict | None, patch: dict, schema: PatchMeta) -> dict:
    """mergeMap."""
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == REPLACE:
            del patch[DIRECTIVE]
            return patch
        if directive == DELETE:
            return {}
        raise PatchError(f"unknown patch type: {go_value(directive)} in map: {go_value(patch)}")
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, schema)
    for key, patch_value in list(patch.items()):
        delete_list = key.startswith(DELETE_FROM_PRIMITIVE_LIST)
        if delete_list:
            key = _extract_key(key, DELETE_FROM_PRIMITIVE_LIST)
        if patch_value is None:
            original.pop(key, None)
            continue
        if key not in original or _kind(original[key]) != _kind(patch_value):
            if not delete_list:
                _discard_nulls(patch_value)
                _set_without_directives(original, key, patch_value)
            continue
        meta = schema.lookup(key)
        if isinstance(patch_value, dict):
            original[key] = patch_value if meta.strategy == REPLACE else _merge_map(original[key], patch_value, meta)
        elif isinstance(patch_value, list):
            original[key] = _merge_list_field(original[key], patch_value, meta, delete_list)
        else:
            _set_without_directives(original, key, patch_value)
    return original


def _set_without_directives(target: dict, key: str, value: Any) -> None:
    value, keep = _remove_directives(value)
    if keep:
        target[key] = value
    else:
        target.pop(key, None)


def _merge_list_field(original: list, patch: list, meta: PatchMeta, delete_list: bool,
                      backing: "_GoSlice | None" = None) -> list:
    """mergeSliceHandler: merge only lists tagged `merge` (and deletion lists); replace the rest."""
    if meta.strategy == MERGE or delete_list:
        return _merge_list(original, patch, meta, meta.merge_key, delete_list, backing)
    return patch


def _apply_retain_keys(original: dict, patch: dict) -> None:
    """applyRetainKeysDirective: clear the keys of original that the directive does not list."""
    if RETAIN_KEYS not in patch:
        return
    retained = patch.pop(RETAIN_KEYS)
    if not isinstance(retained, list):
        raise PatchError("invalid patch format of retainKeys")
    allowed = {k for k in retained if isinstance(k, str)}
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if key not in allowed:
            raise PatchError("invalid patch format of retainKeys")
    for key in [k for k in original if k not in allowed]:
        del original[key]


def _discard_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for item in value.values():
            _discard_nulls(item)
    elif isinstance(value, list):
        for item in value:
            _discard_nulls(item)


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """removeDirectives: (the value without directive-marked maps, whether to keep it at all)."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return None, False
        for key in list(value):
            value[key], keep = _remove_directives(value[key])
            if not keep:
                del value[key]
        return value, True
    if isinstance(value, list):
        kept = []
        for item in value:
            item, keep = _remove_directives(item)
            if keep:
                kept.append(item)
        return kept, True
    return value, True


# ---------------------------------------------------------------------------------------------
# $setElementOrder
# ---------------------------------------------------------------------------------------------

def _merge_ordered_lists(original: dict, patch: dict, schema: PatchMeta) -> None:
    """mergePatchIntoOriginal: merge each list that has a $setElementOrder directive, then order it
    as the directive says (directive > patch order > live order)."""
    for directive_key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(directive_key)
        if not isinstance(order, list):
            raise _bad_arg_type("[]interface {}", order)
        name = _extract_key(directive_key, SET_ELEMENT_ORDER)
        found_original, found_patch = name in original, name in patch
        original_list, patch_list = original.get(name), patch.get(name)
        if found_original and not isinstance(original_list, list):
            raise _bad_arg_type("[]interface {}", original_list)
        if found_patch and not isinstance(patch_list, list):
            raise _bad_arg_type("[]interface {}", patch_list)
        meta = schema.lookup(name)
        merge_key = meta.merge_key
        _check_order_matches_patch(patch_list or [], order, merge_key)
        if found_original and not found_patch:
            merged = original_list
        elif found_patch and not found_original:
            merged, _ = _remove_directives(patch_list)
        elif found_original and found_patch:
            # Go keeps looking at the live list through its old slice header, whose backing array
            # the merge has shifted and appended into; that view is the "live order" below.
            backing = _GoSlice(original_list)
            merged = _merge_list_field(original_list, patch_list, meta, False, backing)
            original_list = backing.items[:len(original_list)]
        else:
            continue
        if merge_key:
            patch_items, server_only = _partition_maps(merged, order, merge_key)
        else:
            patch_items, server_only = _partition_scalars(merged, order)
        element_kind = _element_kind(original_list or [], patch_list or [])
        original[name] = _normalize_order(patch_items, server_only, order, original_list or [], merge_key, element_kind)
        patch.pop(name, None)


def _check_order_matches_patch(patch_list: list, order: list, merge_key: str) -> None:
    """validatePatchWithSetOrderList: the patch's elements appear in the directive, in its order."""
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        for item in patch_list:
            if not isinstance(item, dict):
                raise _bad_arg_type("map[string]interface {}", item)
        items = [i for i in patch_list if i.get(DIRECTIVE) != DELETE]
    patch_index = order_index = 0
    while patch_index < len(items) and order_index < len(order):
        if isinstance(items[patch_index], dict) and DIRECTIVE in items[patch_index]:
            patch_index += 1
            continue
        if _merge_key_equal(items[patch_index], order[order_index], merge_key):
            patch_index += 1
        order_index += 1
    if patch_index < len(items) and order_index >= len(order):
        raise PatchError(f"The order in patch list:\n{go_value(patch_list)}\n doesn't match {SET_ELEMENT_ORDER} "
                         f"list:\n{go_value(order)}\n")


def _merge_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return left == right
    for item in (left, right):
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
    return left[merge_key] == right[merge_key]


# ---------------------------------------------------------------------------------------------
# Lists
# ---------------------------------------------------------------------------------------------

def _element_kind(*lists: list) -> str:
    """sliceElementType: every element of every list has one type, and it is not a list."""
    kind = None
    for items in lists:
        for item in items:
            item_kind = _kind(item)
            if kind is None:
                if isinstance(item, list):
                    raise PatchError("lists of lists are not supported")
                kind = item_kind
            elif item_kind != kind:
                raise PatchError(f"list element types are not identical: {go_value(list(lists))}")
    if kind is None:
        raise PatchError("no elements in any of the given slices")
    return kind


def _is_map_kind(kind: str) -> bool:
    return kind.startswith("map")


class _GoSlice:
    """A Go slice's backing array, where the merge of a list of maps deletes (`append(s[:k],
    s[k+1:]...)` shifts the elements left in place) and appends (into the freed room). The result is
    `value()`; a caller that kept the old slice header sees `items[:old length]`, stale tail included,
    and mergePatchIntoOriginal orders by exactly that (apimachinery's vectors depend on it)."""

    def __init__(self, items: list):
        self.items = list(items)
        self.length = len(self.items)

    def value(self) -> list:
        return self.items[:self.length]

    def delete(self, index: int) -> None:
        self.items[index:self.length - 1] = self.items[index + 1:self.length]
        self.length -= 1

    def append(self, item: Any) -> None:
        if self.length < len(self.items):
            self.items[self.length] = item
        else:
            self.items.append(item)
        self.length += 1


def _merge_list(original: list, patch: list, meta: PatchMeta, merge_key: str, delete_list: bool,
                backing: _GoSlice | None = None) -> list:
    """mergeSlice."""
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    if not _is_map_kind(kind):
        if delete_list:
            return [item for item in original if item not in patch]
        merged = _deduplicate(original + patch)
    else:
        if not merge_key:
            raise PatchError("cannot merge lists without merge key")
        target, patch = _apply_list_directives(backing or _GoSlice(original), patch, merge_key)
        original = target.value()   # the live order: after deletions, before appends
        _merge_by_key(target, patch, merge_key, meta)
        merged = target.value()
    if merge_key:
        patch_items, server_only = _partition_maps(merged, patch, merge_key)
    else:
        patch_items, server_only = _partition_scalars(merged, patch)
    return _normalize_order(patch_items, server_only, patch, original, merge_key, kind)


def _deduplicate(items: list) -> list:
    """deduplicateScalars, with its own way of moving the last element into a duplicate's place."""
    items = list(items)
    last = len(items) - 1
    i = 0
    while i < last:
        j = i + 1
        while j <= last:
            if items[i] == items[j]:
                items[j] = items[last]
                items = items[:last]
                last -= 1
                j -= 1
            j += 1
        i += 1
    return items


def _apply_list_directives(backing: _GoSlice, patch: list, merge_key: str) -> tuple[_GoSlice, list]:
    """mergeSliceWithSpecialElements: `$patch: delete` removes elements by merge key, `$patch:
    replace` makes the patch's other elements the whole list. Returns the list to merge into and
    the patch without directives."""
    plain, replace = [], False
    for item in patch:
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == DELETE:
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            while (index := _find_by_key(backing.value(), merge_key, item[merge_key])) >= 0:
                backing.delete(index)
        elif directive == REPLACE:
            replace = True
        elif directive == MERGE:
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"unknown patch type: {go_value(directive)} in map: {go_value(item)}")
    if replace:   # a new slice: the old backing array stays as the deletions left it
        return _GoSlice(plain), []
    return backing, plain


def _find_by_key(items: list, merge_key: str, value: Any) -> int:
    """findMapInSliceBasedOnKeyValue: the index of the element whose merge key has that value, or -1."""
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise PatchError(f"value for key {index} is not a map")
        if merge_key in item and item[merge_key] == value:
            return index
    return -1


def _merge_by_key(backing: _GoSlice, patch: list, merge_key: str, meta: PatchMeta) -> None:
    """mergeSliceWithoutSpecialElements: merge each patch element into the element with the same
    merge key, or append it (as it is: Go does not strip its directives either)."""
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        index = _find_by_key(backing.value(), merge_key, item[merge_key])
        if index >= 0:
            backing.items[index] = _merge_map(backing.items[index], item, meta)
        else:
            backing.append(item)


def _partition_scalars(items: list, by: list) -> tuple[list, list]:
    return [i for i in items if i in by], [i for i in items if i not in by]


def _partition_maps(items: list, by: list, merge_key: str) -> tuple[list, list]:
    in_patch, server_only = [], []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        (in_patch if _find_by_key(by, merge_key, item[merge_key]) >= 0 else server_only).append(item)
    return in_patch, server_only


def _index(items: list, value: Any, merge_key: str, kind: str) -> int:
    def key_of(item: Any) -> Any:
        if _is_map_kind(kind):
            return item.get(merge_key) if isinstance(item, dict) else None
        return item
    wanted = key_of(value)
    for index, item in enumerate(items):
        if key_of(item) == wanted:
            return index
    return -1


def _normalize_order(patch_items: list, server_only: list, patch_order: list, server_order: list,
                     merge_key: str, kind: str) -> list:
    """normalizeElementOrder: patch elements in patch order, the others in live order, then
    interleaved as mergeSortedSlice does."""
    patch_items = _sort_by(patch_items, patch_order, merge_key, kind)
    server_only = _sort_by(server_only, server_order, merge_key, kind)
    return _interleave(server_only, patch_items, server_order, merge_key, kind)


def _sort_by(items: list, order: list, merge_key: str, kind: str) -> list:
    """normalizeSliceOrder: stable sort by position in `order`; `$patch: delete` elements last."""
    to_delete: list = []
    if _is_map_kind(kind):
        for item in [*items, *order]:   # validateMergeKeyInLists
            if not isinstance(item, dict):
                raise _bad_arg_type("map[string]interface {}", item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
        to_delete = [i for i in items if i.get(DIRECTIVE) == DELETE]
        items = [i for i in items if i.get(DIRECTIVE) != DELETE]
    # Every element is found in `order` where the Go code calls this (patch elements in the patch,
    # server-only elements in the live list), so a stable sort by position is what SliceStable does.
    items = sorted(items, key=lambda item: _index(order, item, merge_key, kind))
    return items + to_delete


def _interleave(left: list, right: list, server_order: list, merge_key: str, kind: str) -> list:
    """mergeSortedSlice: insert the server-only elements (left) among the patch's (right) by their
    live order; when either is missing from the live list, the patch's element goes first."""
    merged, i, j = [], 0, 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            merged.append(right[j])
            j += 1
        elif j >= len(right):
            merged.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key, kind)
            ri = _index(server_order, right[j], merge_key, kind)
            if li >= 0 and ri >= 0 and li < ri:
                merged.append(left[i])
                i += 1
            else:
                merged.append(right[j])
                j += 1
    return merged
