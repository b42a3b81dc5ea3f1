"""Reading Kubernetes manifests: multi-document YAML (or JSON) from files, directories or stdin.

Each object keeps where it came from (`file:document`), so that every later error can name it.
`kind: List` documents are expanded into their items, as kubectl does.

YAML is read the way kubectl reads it (sigs.k8s.io/yaml on go-yaml v2, then JSON): plain scalars
resolve as go-yaml v2 resolves them (YAML 1.1 booleans such as `yes`/`off`, `0x`/`0o`/`0b` and
leading-zero octal integers, `1e3` is a float, timestamps stay strings), map keys become strings, and
an alias is expanded into a copy, so that no two places share a Python object. The values are built
straight from libyaml's event stream, which also lets the reader enforce its limits before anything
is expanded or nested too far:

- **Nesting**: at most `MAX_DEPTH` (100) levels of mappings and sequences per document. The API
  server's JSON decoder stops at 10,000 (apimachinery util/json `maxDepth`); real manifests stay
  below 20, and Python's own recursion (and libyaml's C composer, which crashes at about 100,000)
  must never be reached.
- **Aliases**: go-yaml v2's rule against "billion laughs" documents (decode.go `allowedAliasRatio`):
  once a document has decoded more than 1,000 nodes of which more than 100 come from alias
  expansion, at most 99 % of them may (falling to 10 % for documents of 4,000,000 nodes).
  kubectl refuses such documents with "document contains excessive aliasing"; so does the testbed.
- **Duplicate keys** are recorded (with their lines) and refused by admission, as kubectl's strict
  decoding refuses them.

A YAML syntax error ends only its own document: reading resumes at the next `---` line, so one
broken document (or file) hides nothing else. Text must be UTF-8 (a byte-order mark, also UTF-16's,
is honoured), from files and stdin alike.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml
from yaml.events import (AliasEvent, DocumentEndEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent,
                         ScalarEvent, SequenceEndEvent, SequenceStartEvent, StreamEndEvent)

from .errors import ArgumentError, ManifestError, Problem

try:  # libyaml's C parser is ~10x faster; PyYAML falls back to pure Python without it.
    from yaml import CSafeLoader as EventLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as EventLoader

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_DEPTH = 100
# go-yaml v2 decode.go: the alias ratio allowed falls from 99 % to 10 % between these decode counts.
ALIAS_RATIO_RANGE = (400_000, 4_000_000)


@dataclass
class Document:
    """One Kubernetes object and where it was read from."""
    source: str            # "file.yaml:2": the file and the document's number in it (1-based)
    obj: dict
    # id() of a mapping inside obj -> duplicate keys found in it: (key, "line 7; first at line 5")
    duplicates: dict[int, list[tuple[str, str]]] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        kind = self.obj.get("kind")
        return kind if isinstance(kind, str) else ""

    @property
    def name(self) -> str:
        meta = self.obj.get("metadata")
        if not isinstance(meta, dict):
            return ""
        name = meta.get("name") or meta.get("generateName")
        return name if isinstance(name, str) else ""


class _DocumentError(Exception):
    """A document that cannot be read; `line` is 0-based, in the text being parsed."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message, self.line = message, line


# ---------------------------------------------------------------------------------------------
# Scalars as go-yaml v2 resolves them (resolve.go), then as sigs.k8s.io/yaml turns them into JSON
# ---------------------------------------------------------------------------------------------

_WORDS: dict[str, object] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_TIMESTAMP_START = re.compile(r"[0-9]{4}-")
_TAG_PREFIX = "tag:yaml.org,2002:"


def _go_int(text: str) -> int:
    """strconv.ParseInt(text, 0, 64) for text matching _GO_INT (a leading 0 means octal)."""
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xXoObB":
        return sign * int(digits, 8)
    return sign * int(digits, 0)


def resolve_plain(text: str):
    """The value of an untagged plain scalar."""
    if text in _WORDS:
        return _WORDS[text]
    first = text[0]
    if first == ".":
        return float(text) if _YAML_FLOAT.fullmatch(text) else text
    if first not in "0123456789+-":
        return text
    if _TIMESTAMP_START.match(text):   # go-yaml keeps timestamps as strings for interface{} targets
        return text
    plain = text.replace("_", "")
    if _GO_INT.fullmatch(plain):
        return _go_int(plain)
    if _YAML_FLOAT.fullmatch(plain):
        return float(plain)
    return text


def _resolve_tagged(tag: str, text: str, plain: bool, line: int):
    short = "!!" + tag[len(_TAG_PREFIX):] if tag.startswith(_TAG_PREFIX) else tag
    if short in ("!!str", "!!timestamp") or not short.startswith("!!") or short == "!":
        return text   # go-yaml: unknown (local) tags are not resolved; the value stays a string
    if short == "!!binary":
        try:
            return base64.b64decode("".join(text.split()), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise _DocumentError("!!binary value is not valid base64 (or not UTF-8 text)", line) from None
    value = resolve_plain(text)
    expected = {"!!int": int, "!!float": (int, float), "!!bool": bool, "!!null": type(None)}.get(short)
    if expected is None:
        raise _DocumentError(f"cannot decode a scalar with tag {short}", line)
    if not isinstance(value, expected) or (short == "!!int" and isinstance(value, bool)):
        raise _DocumentError(f"cannot decode `{_clip(text)}` as a {short}", line)
    return float(value) if short == "!!float" else value


def _key_string(key, line: int) -> str:
    """sigs.k8s.io/yaml convertToJSONableObject: JSON keys are strings."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return {math.inf: "+Inf", -math.inf: "-Inf"}.get(key, "NaN" if key != key else f"{key:g}")
    kind = "null" if key is None else "a mapping" if isinstance(key, dict) else "a sequence"
    raise _DocumentError(f"unsupported map key: {kind}", line)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _allowed_alias_ratio(decodes: int) -> float:
    low, high = ALIAS_RATIO_RANGE
    if decodes <= low:
        return 0.99
    if decodes >= high:
        return 0.10
    return 0.99 - 0.89 * (decodes - low) / (high - low)


def _height(value) -> int:
    if isinstance(value, dict):
        return 1 + max((_height(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_height(v) for v in value), default=0)
    return 0


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# YAML: values built from libyaml's events
# ---------------------------------------------------------------------------------------------

class _Anchor:
    __slots__ = ("value", "nodes", "height", "done")

    def __init__(self) -> None:
        self.value, self.nodes, self.height, self.done = None, 0, 0, False


class _DocumentBuilder:
    """Builds one document's value from events, enforcing depth, alias and key rules.

    `feed` takes any event; the common ones (an untagged scalar, a container without an anchor) take
    a short path, since a 20,000-Service file is a million events."""

    def __init__(self, line_offset: int) -> None:
        self.line_offset = line_offset
        self.stack: list = []         # open containers
        self.pending: list = []       # per open container: for a mapping the key waiting for its value
        #                               ((name, event), _NO_KEY or _MERGE); for a sequence None
        self.merges: dict[int, list] = {}   # depth of an open mapping -> the values of its `<<` keys
        self.anchors: dict[str, _Anchor] = {}
        self.open_anchors: list[tuple[str, int, int]] = []  # (anchor, nodes before, stack depth)
        self.nodes = 0
        self.aliased = 0
        self.duplicates: dict[int, list[tuple[str, str]]] = {}
        self.result = None

    def line(self, event) -> int:
        return event.start_mark.line + self.line_offset if event.start_mark else self.line_offset

    def feed(self, event) -> None:
        kind = type(event)
        if kind is ScalarEvent:
            self.nodes += 1
            if event.tag is None:
                value = resolve_plain(event.value) if event.implicit[0] else event.value
            else:
                value = _resolve_tagged(event.tag, event.value, event.implicit[0], self.line(event))
            if event.anchor is not None:
                anchor = self.anchors.setdefault(event.anchor, _Anchor())
                anchor.value, anchor.nodes, anchor.height, anchor.done = value, 1, 0, True
            self.add(value, event, event.implicit[0] and event.tag is None and event.value == "<<")
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            self.nodes += 1
            if len(self.stack) >= MAX_DEPTH:
                raise _DocumentError(f"nested deeper than {MAX_DEPTH} levels (the testbed's limit)", self.line(event))
            if event.anchor is not None:
                self.anchors[event.anchor] = _Anchor()
                self.open_anchors.append((event.anchor, self.nodes - 1, len(self.stack)))
            if kind is MappingStartEvent:
                self.stack.append({})
                self.pending.append(_NO_KEY)
            else:
                self.stack.append([])
                self.pending.append(None)
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            container = self.stack.pop()
            self.pending.pop()
            merges = self.merges.pop(len(self.stack), None) if self.merges else None
            if merges:
                for merged in reversed(merges):   # explicit keys win over merged ones
                    for key, value in merged.items():
                        container.setdefault(key, _copy(value))
            if self.open_anchors and self.open_anchors[-1][2] == len(self.stack):
                name, before, _ = self.open_anchors.pop()
                anchor = self.anchors[name]
                anchor.value, anchor.nodes, anchor.height, anchor.done = \
                    container, self.nodes - before, _height(container), True
            self.add(container, event)
        elif kind is AliasEvent:
            anchor = self.anchors.get(event.anchor)
            if anchor is None:
                raise _DocumentError(f'found undefined alias "{event.anchor}"', self.line(event))
            if not anchor.done:
                raise _DocumentError(f'anchor "{event.anchor}" value contains itself', self.line(event))
            self.nodes += anchor.nodes
            self.aliased += anchor.nodes
            if self.aliased > 100 and self.nodes > 1000 and self.aliased / self.nodes > _allowed_alias_ratio(self.nodes):
                raise _DocumentError("document contains excessive aliasing (alias expansion is limited as in "
                                     "kubectl's YAML decoder)", self.line(event))
            if len(self.stack) + anchor.height > MAX_DEPTH:
                raise _DocumentError(f"nested deeper than {MAX_DEPTH} levels (the testbed's limit)", self.line(event))
            self.add(_copy(anchor.value), event)

    def add(self, value, event, plain_merge: bool = False) -> None:
        stack = self.stack
        if not stack:
            self.result = value
            return
        top = stack[-1]
        if type(top) is list:
            top.append(value)
            return
        key = self.pending[-1]
        if key is _NO_KEY:
            self.pending[-1] = _MERGE if plain_merge else (_key_string(value, self.line(event)), event)
            return
        self.pending[-1] = _NO_KEY
        if key is _MERGE:
            merged = value if isinstance(value, list) else [value]
            if not all(isinstance(m, dict) for m in merged):
                raise _DocumentError("map merge requires map or sequence of maps as the value", self.line(event))
            self.merges.setdefault(len(stack) - 1, []).extend(merged)
            return
        name = key[0]
        if name in top:   # kubectl's strict decoding: `line N: key "x" already set in map`
            self.duplicates.setdefault(id(top), []).append((name, f"line {self.line(key[1]) + 1}"))
        top[name] = value


_NO_KEY = object()
_MERGE = object()
_SEPARATOR = re.compile(r"^---(\s.*)?$")


def _feed_fast(builder: _DocumentBuilder, event) -> bool:
    """The common events without a method call per event; False for the builder's full path."""
    kind = type(event)
    if kind is ScalarEvent:
        if event.anchor is not None or event.tag is not None:
            return False
        text = event.value
        implicit = event.implicit[0]
        if implicit and text == "<<":
            return False
        value = resolve_plain(text) if implicit else text
        stack = builder.stack
        if not stack:
            return False
        top = stack[-1]
        builder.nodes += 1
        if type(top) is list:
            top.append(value)
            return True
        pending = builder.pending
        key = pending[-1]
        if key is _NO_KEY:
            pending[-1] = (value if type(value) is str else _key_string(value, builder.line(event)), event)
            return True
        if key is _MERGE or key[0] in top:
            builder.nodes -= 1
            return False
        pending[-1] = _NO_KEY
        top[key[0]] = value
        return True
    if kind is MappingStartEvent or kind is SequenceStartEvent:
        if event.anchor is not None or len(builder.stack) >= MAX_DEPTH:
            return False
        builder.nodes += 1
        if kind is MappingStartEvent:
            builder.stack.append({})
            builder.pending.append(_NO_KEY)
        else:
            builder.stack.append([])
            builder.pending.append(None)
        return True
    if kind is MappingEndEvent or kind is SequenceEndEvent:
        stack = builder.stack
        if builder.merges or builder.open_anchors or len(stack) < 2:
            return False
        container = stack.pop()
        builder.pending.pop()
        top = stack[-1]
        if type(top) is list:
            top.append(container)
            return True
        pending = builder.pending
        key = pending[-1]
        if key is _NO_KEY or key is _MERGE or key[0] in top:
            stack.append(container)
            builder.pending.append(_NO_KEY if type(container) is dict else None)
            return False
        pending[-1] = _NO_KEY
        top[key[0]] = container
        return True
    return False


def _parse_yaml(text: str, origin: str) -> tuple[list[tuple[int, object, dict]], list[Problem]]:
    """(document number, value, duplicates) for each document, and a problem per unreadable one."""
    results: list[tuple[int, object, dict]] = []
    problems: list[Problem] = []
    lines: list[str] | None = None
    line_offset = 0
    number = 0
    chunk = text
    while True:
        loader = EventLoader(chunk)
        builder: _DocumentBuilder | None = None
        failed_line: int | None = None
        try:
            while True:
                event = loader.get_event()
                kind = type(event)
                if kind is DocumentStartEvent:
                    number += 1
                    builder = _DocumentBuilder(line_offset)
                elif kind is DocumentEndEvent:
                    if builder is not None:
                        results.append((number, builder.result, builder.duplicates))
                    builder = None
                elif kind is StreamEndEvent:
                    break
                elif builder is not None and not _feed_fast(builder, event):
                    builder.feed(event)
        except _DocumentError as err:
            failed_line = err.line if err.line is not None else line_offset
            where = f" (line {failed_line + 1})"
            problems.append(Problem(f"{origin}:{max(number, 1)}", "", "", "", f"invalid YAML{where}: {err.message}"))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
            failed_line = (mark.line if mark else 0) + line_offset
            where = f" (line {failed_line + 1}, column {mark.column + 1})" if mark else ""
            reason = getattr(err, "problem", None) or str(err)
            problems.append(Problem(f"{origin}:{max(number, 1)}", "", "", "", f"invalid YAML{where}: {reason}"))
            if builder is None:   # the error came between documents: it belongs to the next one
                number += 1
        except UnicodeEncodeError:
            problems.append(Problem(f"{origin}:{max(number, 1)}", "", "", "",
                                    "cannot read: the text is not valid Unicode (it holds a lone surrogate)"))
            break
        finally:
            loader.dispose()
        if failed_line is None:
            break
        # Resume at the next `---` line after the error (kubectl splits documents the same way).
        if lines is None:
            lines = text.splitlines(keepends=True)
        resume = next((i for i in range(max(failed_line, line_offset + 1), len(lines)) if _SEPARATOR.match(lines[i])),
                      None)
        if resume is None:
            break
        line_offset = resume
        chunk = "".join(lines[resume:])
    return results, problems


# ---------------------------------------------------------------------------------------------
# JSON: a stream of values (kubectl reads concatenated objects), or one top-level list of objects
# ---------------------------------------------------------------------------------------------

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKETS = re.compile(r"[\[\]{}]")


def _json_too_deep(text: str) -> int | None:
    """The number of the first document nested deeper than MAX_DEPTH, found from the brackets outside
    strings (before json.loads, whose C scanner would recurse that deep)."""
    brackets = _JSON_BRACKETS.findall(_JSON_STRING.sub("", text))
    in_list = text.lstrip()[:1] == "["
    base = 1 if in_list else 0
    depth, number = 0, 1 if not in_list else 0
    for bracket in brackets:
        if bracket in "[{":
            depth += 1
            if depth == base + 1 and in_list:
                number += 1
            if depth > MAX_DEPTH + base:
                return max(number, 1)
        else:
            depth -= 1
            if depth == 0 and not in_list:
                number += 1
    return None


def _parse_json(text: str, origin: str) -> tuple[list[tuple[int, object, dict]], list[Problem]]:
    duplicates: dict[int, list[tuple[str, str]]] = {}

    def pairs_to_dict(pairs):
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    duplicates.setdefault(id(obj), []).append((key, "key repeated in the JSON object"))
                seen.add(key)
        return obj

    too_deep = _json_too_deep(text)
    if too_deep is not None:
        return [], [Problem(f"{origin}:{too_deep}", "", "", "",
                            f"invalid JSON: nested deeper than {MAX_DEPTH} levels (the testbed's limit)")]
    decoder = json.JSONDecoder(object_pairs_hook=pairs_to_dict)
    values: list[object] = []
    position, length = 0, len(text)
    try:
        while True:
            while position < length and text[position] in " \t\r\n":
                position += 1
            if position >= length:
                break
            value, position = decoder.raw_decode(text, position)
            values.append(value)
    except json.JSONDecodeError as err:
        return [], [Problem(f"{origin}:{len(values) + 1}", "", "", "", f"invalid JSON: {err}")]
    except RecursionError:
        return [], [Problem(f"{origin}:{len(values) + 1}", "", "", "",
                            f"invalid JSON: nested deeper than {MAX_DEPTH} levels (the testbed's limit)")]
    if len(values) == 1 and isinstance(values[0], list):
        values = values[0]
    return [(i, v, duplicates) for i, v in enumerate(values, start=1)], []


# ---------------------------------------------------------------------------------------------
# Documents
# ---------------------------------------------------------------------------------------------

def read_text(text: str, origin: str) -> tuple[list[Document], list[Problem]]:
    """Every readable document of a YAML or JSON stream, and one problem per unreadable one."""
    if text.startswith("\ufeff"):
        text = text[1:]
    stripped = text.lstrip()
    parsed, problems = (_parse_json if stripped[:1] in ("{", "[") else _parse_yaml)(text, origin)
    documents: list[Document] = []
    for index, item, duplicates in parsed:
        if item is None:
            continue  # empty document (e.g. a trailing `---`)
        source = f"{origin}:{index}"
        if not isinstance(item, dict):
            problems.append(Problem(source, "", "", "", "a manifest document must be a mapping (an object), "
                                    f"not {_json_kind(item)}"))
            continue
        if item.get("kind") == "List" and "items" in item:
            items = item["items"]
            if not isinstance(items, list) and items is not None:
                problems.append(Problem(source, "List", "", "items", f"Invalid value: must be a list, not {_json_kind(items)}"))
                continue
            for position, obj in enumerate(items or []):
                if obj is None:
                    continue
                if not isinstance(obj, dict):
                    problems.append(Problem(source, "List", "", f"items[{position}]",
                                            f"Invalid value: must be an object, not {_json_kind(obj)}"))
                    continue
                documents.append(Document(source, obj, duplicates))
        else:
            documents.append(Document(source, item, duplicates))
    return documents, problems


def _json_kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def parse_text(text: str, origin: str) -> list[Document]:
    """Parse a YAML or JSON stream; raise ManifestError naming every document that does not parse."""
    documents, problems = read_text(text, origin)
    if problems:
        raise ManifestError(problems)
    return documents


def decode_bytes(data: bytes, origin: str) -> tuple[str | None, Problem | None]:
    """Text from bytes: UTF-8 (or UTF-16 with its byte-order mark), strictly."""
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return data.decode(encoding), None
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        return None, Problem(origin, "", "", "", f"cannot read: not valid {encoding.split('-sig')[0].upper()} "
                                                 f"(byte 0x{data[err.start]:02x} at offset {err.start}, line {line})")


def _read_stdin(stdin) -> tuple[str | None, Problem | None]:
    stream = stdin or sys.stdin
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        return decode_bytes(buffer.read(), "<stdin>")
    text = stream.read()
    if isinstance(text, bytes):
        return decode_bytes(text, "<stdin>")
    try:
        text.encode("utf-8")
        return text, None
    except UnicodeEncodeError:   # a text stream that kept undecodable bytes as surrogates
        return decode_bytes(text.encode("utf-8", "surrogateescape"), "<stdin>")


def _files_in(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
    return [path]


def read(paths: Iterable[str | Path], stdin=None) -> tuple[list[Document], list[Problem]]:
    """Every readable document of every file, directory (recursively, *.yaml/*.yml/*.json) or `-`
    (stdin), and one problem per file or document that cannot be read."""
    documents: list[Document] = []
    problems: list[Problem] = []
    for entry in paths:
        if str(entry) == "-":
            text, problem = _read_stdin(stdin)
            if problem:
                problems.append(problem)
            else:
                found, more = read_text(text, "<stdin>")
                documents += found
                problems += more
            continue
        path = Path(entry)
        if not path.exists():
            problems.append(Problem(str(path), "", "", "", f'the path "{path}" does not exist: no such file or directory'))
            continue
        for file in _files_in(path):
            try:
                data = file.read_bytes()
            except OSError as err:
                problems.append(Problem(str(file), "", "", "", f"cannot read: {err.strerror or err}"))
                continue
            text, problem = decode_bytes(data, str(file))
            if problem:
                problems.append(problem)
                continue
            found, more = read_text(text, str(file))
            documents += found
            problems += more
    return documents, problems


def load(paths: Iterable[str | Path], stdin=None) -> list[Document]:
    """Like `read`, but any problem raises ManifestError (naming them all)."""
    documents, problems = read(paths, stdin)
    if problems:
        raise ManifestError(problems)
    return documents


def _looks_like_a_path(text: str) -> bool:
    """A one-line string that is no YAML mapping or flow collection is meant as a path."""
    if "\n" in text or text.lstrip()[:1] in ("{", "["):
        return False
    return Path(text).exists() or text.endswith(MANIFEST_SUFFIXES) or text == "-" or ": " not in text


def from_source_with_problems(source) -> tuple[list[Document], list[Problem]]:
    """What `Cluster.apply` accepts: a path, YAML/JSON text, one object, or a list of objects, paths
    or Documents. Problems are the documents that cannot be read; a source of the wrong Python
    type is an ArgumentError."""
    if isinstance(source, dict):
        return parse_objects([source]), []
    if isinstance(source, Path):
        return read([source])
    if isinstance(source, (bytes, bytearray)):
        text, problem = decode_bytes(bytes(source), "<bytes>")
        return ([], [problem]) if problem else read_text(text, "<bytes>")
    if isinstance(source, str):
        if not source.strip():
            raise ArgumentError("nothing to apply: an empty string is neither a path nor a manifest")
        if _looks_like_a_path(source):
            return read([source])
        return read_text(source, "<text>")
    if isinstance(source, (list, tuple)):
        documents: list[Document] = []
        problems: list[Problem] = []
        objects: list[dict] = []
        for item in source:
            if isinstance(item, Document):
                documents.append(item)
            elif isinstance(item, dict):
                objects.append(item)
            elif isinstance(item, (str, Path)):
                found, more = from_source_with_problems(item)
                documents += found
                problems += more
            else:
                raise ArgumentError(f"cannot apply a list holding a {type(item).__name__} ({_clip(repr(item))}): "
                                    "give paths, YAML/JSON text, dicts or Documents")
        return documents + parse_objects(objects), problems
    raise ArgumentError(f"cannot apply a {type(source).__name__}: give a path, YAML/JSON text or objects (dicts)")


def from_source(source) -> list[Document]:
    documents, problems = from_source_with_problems(source)
    if problems:
        raise ManifestError(problems)
    return documents


def parse_objects(objects: Iterable[dict], origin: str = "<objects>") -> list[Document]:
    return [Document(f"{origin}:{i}", obj) for i, obj in enumerate(objects, start=1)]
