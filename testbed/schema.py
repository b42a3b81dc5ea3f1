"""Typed decoding: what the API server's decoder does with an object before any validation rule runs.

The API server decodes a request into the kind's Go struct (k8s.io/api types, decoded with
sigs.k8s.io/json). A value of the wrong JSON type ends the request there, before validation:

    Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string into Go
    struct field ServicePort.spec.ports.port of type int32

This module does the same, driven by `api_schema.json` (each struct's JSON fields and their Go
types, generated from Kubernetes' OpenAPI definitions by scripts/make-api-schema), and reports every
such error with the JSON path of its field. Validation (validation.py) then sees well-typed data only,
and the controllers behind it never meet a list where they expect a map.

What the decoder does, and so what happens here:
- `null` is "not set" for a field (Go leaves the zero value), so `type: null` is defaulted and
  `sessionAffinityConfig: null` is no config at all; inside a list or a map, null is the zero value.
- Integers must fit their Go type (int32, int64). A float with an integral value is an integer:
  kubectl's YAML-to-JSON conversion (sigs.k8s.io/yaml) writes 80.0 as 80.
- IntOrString (intstr.IntOrString.UnmarshalJSON): an int32 or a string. Quantity
  (resource.ParseQuantity): a number or a string such as `100m` or `1Gi`. []byte: base64, ignoring
  line breaks as Go's base64 decoder does (so multi-line base64 Secrets are fine). metav1.Time:
  RFC 3339.
- Unknown fields are dropped and reported (the API server's fieldValidation: `Strict` refuses them,
  `Warn` warns, `Ignore` says nothing); field names are case-sensitive (sigs.k8s.io/json).
- Duplicate keys, found by the reader (manifests.py), are reported at their path.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .errors import echo as fmt

_SCHEMA = json.loads((Path(__file__).with_name("api_schema.json")).read_text())
MAX_DEPTH = 100   # as manifests.MAX_DEPTH; objects given as Python dicts are checked here
INT_RANGES = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})")
_BASE64_CHARS = re.compile(r"[^A-Za-z0-9+/=\r\n]")


# ---------------------------------------------------------------------------------------------
# Quantities (k8s.io/apimachinery/pkg/api/resource/quantity.go ParseQuantity)
# ---------------------------------------------------------------------------------------------

QUANTITY_FORMAT = re.compile(r"([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)")
_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1,
                     "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
MSG_QUANTITY_FORMAT = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


def parse_quantity(text: str) -> Fraction:
    """The exact value of a quantity; ValueError with the API machinery's message when it is not one."""
    match = QUANTITY_FORMAT.fullmatch(text.strip())
    if not match:
        raise ValueError(MSG_QUANTITY_FORMAT)
    number, suffix = match.groups()
    digits = number.lstrip("+-")
    if digits.count(".") > 1 or digits in ("", "."):
        raise ValueError("unable to parse numeric part of quantity")
    value = Fraction(digits) * (-1 if number.startswith("-") else 1)
    if suffix in _BINARY_SUFFIXES:
        return value * _BINARY_SUFFIXES[suffix]
    if suffix in _DECIMAL_SUFFIXES:
        return value * _DECIMAL_SUFFIXES[suffix]
    exponent = re.fullmatch(r"[eE]([-+]?[0-9]+)", suffix)
    if exponent:
        return value * Fraction(10) ** int(exponent.group(1))
    raise ValueError("unable to parse quantity's suffix")


def quantity_value(value) -> Fraction:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Fraction(value)
    return parse_quantity(str(value))


# ---------------------------------------------------------------------------------------------
# The schema, compiled
# ---------------------------------------------------------------------------------------------

class Struct:
    __slots__ = ("name", "go", "fields")

    def __init__(self, name: str, go: str):
        self.name, self.go, self.fields = name, go, {}

    @property
    def short(self) -> str:
        return self.go.split(".", 1)[1]


_STRUCTS: dict[str, Struct] = {name: Struct(name, spec["go"]) for name, spec in _SCHEMA["structs"].items()}


def _compile(spec):
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        return _STRUCTS[spec["ref"]]
    return (spec[0], _compile(spec[1]))


for _name, _spec in _SCHEMA["structs"].items():
    _STRUCTS[_name].fields = {f: _compile(t) for f, t in _spec["fields"].items()}
ROOTS: dict[str, Struct] = {key: _STRUCTS[name] for key, name in _SCHEMA["kinds"].items()}
SCHEMA_SOURCE = _SCHEMA["source"]


def go_type(t) -> str:
    if isinstance(t, Struct):
        return t.go
    if isinstance(t, tuple):
        return ("[]" if t[0] == "list" else "map[string]") + go_type(t[1])
    return {"bytes": "[]uint8", "time": "v1.Time", "intorstring": "intstr.IntOrString",
            "quantity": "resource.Quantity", "any": "interface {}"}.get(t, t)


def _zero(t):
    if isinstance(t, Struct):
        return {}
    if isinstance(t, tuple):
        return [] if t[0] == "list" else {}
    return {"string": "", "bytes": "", "bool": False, "int32": 0, "int64": 0, "float64": 0.0,
            "intorstring": 0, "quantity": "0"}.get(t)


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _integral(value) -> int | None:
    """An int, or a float with an integral value (what YAML-to-JSON makes an integer); else None."""
    if type(value) is int:
        return value
    if type(value) is float and math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return None


def _go_field_path(path: str) -> str:
    return re.sub(r"\[[^\]]*\]", "", path)


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

@dataclass
class Decoded:
    obj: dict | None                                  # the typed copy (None when the kind is unknown)
    errors: list[tuple[str, str]] = field(default_factory=list)   # (field path, reason): refused
    unknown: list[str] = field(default_factory=list)               # paths of unknown fields
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (field path, reason)


class _Decoder:
    def __init__(self, duplicates: dict[int, list[tuple[str, str]]]):
        self.result = Decoded(None)
        self.duplicate_keys = duplicates

    def type_error(self, value, t, path: str, owner: str) -> None:
        kind = _json_kind(value)
        if kind == "number" and t in INT_RANGES:
            kind = f"number {fmt(value)}"
        self.result.errors.append((path, f"Invalid value: {fmt(value)}: cannot unmarshal {kind} into Go struct field "
                                         f"{owner}.{_go_field_path(path)} of type {go_type(t)}"))

    def check_duplicates(self, value: dict, path: str, as_map: bool) -> None:
        for key, where in self.duplicate_keys.get(id(value), ()):
            child = f"{path}[{key}]" if as_map else (f"{path}.{key}" if path else key)
            self.result.duplicates.append((child, f'Duplicate value: "{key}": key already set in map ({where})'))

    def decode(self, value, t, path: str, owner: str, depth: int):
        """The decoded value, or _INVALID (with an error recorded)."""
        if depth > MAX_DEPTH:
            self.result.errors.append((path, f"Invalid value: nested deeper than {MAX_DEPTH} levels (the testbed's limit)"))
            return _INVALID
        if isinstance(t, Struct):
            if type(value) is not dict:
                self.type_error(value, t, path, owner)
                return _INVALID
            return self.struct(value, t, path, depth)
        if isinstance(t, tuple):
            container, element = t
            if container == "list":
                if type(value) is not list:
                    self.type_error(value, t, path, owner)
                    return _INVALID
                out = []
                for index, item in enumerate(value):
                    if item is None:
                        out.append(_zero(element))
                        continue
                    decoded = self.decode(item, element, f"{path}[{index}]", owner, depth + 1)
                    out.append(_zero(element) if decoded is _INVALID else decoded)
                return out
            if type(value) is not dict:
                self.type_error(value, t, path, owner)
                return _INVALID
            if self.duplicate_keys:
                self.check_duplicates(value, path, as_map=True)
            out = {}
            for key, item in value.items():
                if item is None:
                    out[key] = _zero(element)
                    continue
                decoded = self.decode(item, element, f"{path}[{key}]", owner, depth + 1)
                out[key] = _zero(element) if decoded is _INVALID else decoded
            return out
        return self.scalar(value, t, path, owner, depth)

    def struct(self, value: dict, t: Struct, path: str, depth: int) -> dict:
        if self.duplicate_keys:
            self.check_duplicates(value, path, as_map=False)
        fields = t.fields
        owner = t.short
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            ft = fields.get(key)
            if ft is None:
                self.result.unknown.append(f"{path}.{key}" if path else key)
                continue
            if ft == "string":   # the common case, inline
                if type(item) is str:
                    out[key] = item
                    continue
            elif ft == "int32" and type(item) is int and -2147483648 <= item <= 2147483647:
                out[key] = item
                continue
            decoded = self.decode(item, ft, f"{path}.{key}" if path else key, owner, depth + 1)
            if decoded is not _INVALID:
                out[key] = decoded
        return out

    def scalar(self, value, t: str, path: str, owner: str, depth: int):
        if t == "string":
            if type(value) is str:
                return value
        elif t in INT_RANGES:
            number = _integral(value)
            if number is not None:
                low, high = INT_RANGES[t]
                if low <= number <= high:
                    return number
        elif t == "bool":
            if type(value) is bool:
                return value
        elif t == "float64":
            if type(value) in (int, float) and math.isfinite(value):
                return value
        elif t == "intorstring":
            if type(value) is str:
                return value
            number = _integral(value)
            if number is not None and -2**31 <= number < 2**31:
                return number
            self.result.errors.append((path, f"Invalid value: {fmt(value)}: cannot unmarshal {_json_kind(value)}"
                                             f"{' ' + fmt(value) if _json_kind(value) == 'number' else ''} "
                                             "into Go value of type int32 (an IntOrString is an int32 or a string)"))
            return _INVALID
        elif t == "quantity":
            if type(value) in (str, int, float):
                try:
                    quantity_value(value)
                    return value
                except (ValueError, ZeroDivisionError, OverflowError) as err:
                    self.result.errors.append((path, f"Invalid value: {fmt(value)}: {err}"))
                    return _INVALID
            self.result.errors.append((path, f"Invalid value: {fmt(value)}: {MSG_QUANTITY_FORMAT}"))
            return _INVALID
        elif t == "bytes":
            if type(value) is str:
                problem = base64_problem(value)
                if problem is None:
                    return value
                self.result.errors.append((path, f'Invalid value: "<secret contents redacted>": {problem}'))
                return _INVALID
        elif t == "time":
            if type(value) is str and (value == "" or _RFC3339.fullmatch(value)):
                return value
            if type(value) is str:
                self.result.errors.append((path, f'Invalid value: {fmt(value)}: parsing time {fmt(value)} as '
                                                 '"2006-01-02T15:04:05Z07:00": not an RFC 3339 time'))
                return _INVALID
            self.result.errors.append((path, f"Invalid value: {fmt(value)}: cannot unmarshal {_json_kind(value)} "
                                             "into Go value of type string"))
            return _INVALID
        elif t == "any":
            return self.any(value, path, depth)
        self.type_error(value, t, path, owner)
        return _INVALID

    def any(self, value, path: str, depth: int):
        """Free-form JSON (RawExtension, preserve-unknown-fields): copied, depth and numbers checked."""
        if depth > MAX_DEPTH:
            self.result.errors.append((path, f"Invalid value: nested deeper than {MAX_DEPTH} levels (the testbed's limit)"))
            return _INVALID
        if type(value) is dict:
            if self.duplicate_keys:
                self.check_duplicates(value, path, as_map=True)
            out = {}
            for key, item in value.items():
                decoded = self.any(item, f"{path}[{key}]", depth + 1)
                if decoded is not _INVALID:
                    out[key] = decoded
            return out
        if type(value) is list:
            out = [self.any(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
            return [None if v is _INVALID else v for v in out]
        if type(value) is float and not math.isfinite(value):
            self.result.errors.append((path, f"Invalid value: {value}: json: unsupported value (not a JSON number)"))
            return _INVALID
        if value is None or type(value) in (str, int, float, bool):
            return value
        self.result.errors.append((path, f"Invalid value: {fmt(value)}: not a JSON value"))
        return _INVALID


_INVALID = object()


def base64_problem(value: str) -> str | None:
    """Go's base64.StdEncoding (as encoding/json decodes []byte): line breaks are ignored."""
    compact = value.replace("\r", "").replace("\n", "")
    try:
        base64.b64decode(compact, validate=True)
        return None
    except (binascii.Error, ValueError):
        bad = _BASE64_CHARS.search(value)
        return f"illegal base64 data at input byte {bad.start() if bad else len(compact)}"


def base64_length(value: str) -> int:
    compact = value.replace("\r", "").replace("\n", "")
    return len(compact) * 3 // 4 - compact[-2:].count("=")


def root_for(api_version: str, kind: str) -> Struct | None:
    return ROOTS.get(f"{api_version}/{kind}")


def _custom_resource(kind: str) -> Struct:
    """A kind served as a custom resource (the Gateway API's): the API server decodes its metadata
    as ObjectMeta and leaves spec and status to the CRD's structural schema; here the kind's own
    validator (e.g. testbed/ingress/gateway_validation.py) checks their types, field by field."""
    struct = Struct(f"custom.{kind}", f"unstructured.{kind}")
    struct.fields = {"apiVersion": "string", "kind": "string", "metadata": _STRUCTS[OBJECT_META], "spec": "any",
                     "status": "any"}
    return struct


OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def decode(obj: dict, api_version: str, kind: str, duplicates: dict | None = None) -> Decoded:
    """Decode one object of a served kind into a typed copy (custom resources: their metadata)."""
    decoder = _Decoder(duplicates or {})
    root = ROOTS.get(f"{api_version}/{kind}") or _custom_resource(kind)
    decoder.result.obj = decoder.struct(obj, root, "", 0)
    return decoder.result
