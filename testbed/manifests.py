"""Reading Kubernetes manifests: multi-document YAML (or JSON) from files, directories or stdin.

Each object keeps where it came from (`file:document`), so that every later error can name it.
YAML anchors and aliases are resolved by the parser; aliased nodes are copied so that no two
objects share a mutable sub-tree. `kind: List` documents are expanded into their items, as kubectl does.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml

from .errors import ManifestError, Problem

try:  # libyaml's C parser is ~10x faster; PyYAML falls back to pure Python without it.
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Document:
    """One Kubernetes object and where it was read from."""
    source: str            # "file.yaml:2": the file and the document's number in it (1-based)
    obj: dict

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def name(self) -> str:
        meta = self.obj.get("metadata")
        return str(meta.get("name") or "") if isinstance(meta, dict) else ""


def _unshare(value):
    """Copy nested dicts/lists so YAML aliases do not alias Python objects."""
    if isinstance(value, dict):
        return {k: _unshare(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshare(v) for v in value]
    return value


def parse_text(text: str, origin: str) -> list[Document]:
    """Parse a YAML or JSON stream; raise ManifestError naming the document that does not parse."""
    documents: list[Document] = []
    stripped = text.lstrip()
    if stripped.startswith("{") or stripped.startswith("["):
        try:  # JSON is YAML, but the JSON parser is much faster for big generated inputs
            data = json.loads(text)
            numbered = list(enumerate(data if isinstance(data, list) else [data], start=1))
        except json.JSONDecodeError as err:
            raise ManifestError([Problem(f"{origin}:1", "", "", "", f"invalid JSON: {err}")]) from None
    else:
        numbered = []
        try:
            for index, item in enumerate(yaml.load_all(text, Loader=SafeLoader), start=1):
                numbered.append((index, item))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(err, "problem", None) or str(err)
            raise ManifestError([Problem(f"{origin}:{len(numbered) + 1}", "", "", "",
                                         f"invalid YAML{line}: {problem}")]) from None
        numbered = [(i, _unshare(item)) for i, item in numbered]
    for index, item in numbered:
        if item is None:
            continue  # empty document (e.g. a trailing `---`)
        source = f"{origin}:{index}"
        if not isinstance(item, dict):
            raise ManifestError([Problem(source, "", "", "", "a manifest document must be a mapping (an object)")])
        if item.get("kind") == "List" and isinstance(item.get("items"), list):
            documents.extend(Document(source, obj) for obj in item["items"] if obj is not None)
        else:
            documents.append(Document(source, item))
    return documents


def _files_in(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
    return [path]


def load(paths: Iterable[str | Path], stdin=None) -> list[Document]:
    """Load every document of every file, directory (recursively, *.yaml/*.yml/*.json) or `-` (stdin)."""
    documents: list[Document] = []
    problems: list[Problem] = []
    for entry in paths:
        if str(entry) == "-":
            documents.extend(parse_text((stdin or sys.stdin).read(), "<stdin>"))
            continue
        path = Path(entry)
        if not path.exists():
            problems.append(Problem(str(path), "", "", "", "no such file or directory"))
            continue
        for file in _files_in(path):
            try:
                documents.extend(parse_text(file.read_text(), str(file)))
            except ManifestError as err:
                problems.extend(err.problems)
            except (OSError, UnicodeDecodeError) as err:
                problems.append(Problem(str(file), "", "", "", f"cannot read: {err}"))
    if problems:
        raise ManifestError(problems)
    return documents


def from_source(source) -> list[Document]:
    """What `Cluster.apply` accepts: a path, YAML/JSON text, one object or a list of objects."""
    if isinstance(source, dict):
        return parse_objects([source])
    if isinstance(source, (list, tuple)):
        if all(isinstance(o, Document) for o in source):
            return list(source)
        if all(isinstance(o, dict) for o in source):
            return parse_objects(source)
        return load(source)
    if isinstance(source, Path):
        return load([source])
    if isinstance(source, str):
        if "\n" not in source and (Path(source).exists() or source.endswith(MANIFEST_SUFFIXES) or source == "-"):
            return load([source])
        return parse_text(source, "<text>")
    raise TypeError(f"cannot apply a {type(source).__name__}: give a path, YAML text or objects")


def parse_objects(objects: Iterable[dict], origin: str = "<objects>") -> list[Document]:
    return [Document(f"{origin}:{i}", obj) for i, obj in enumerate(objects, start=1)]
