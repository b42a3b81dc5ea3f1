"""User-facing errors: printed as one line per problem, never as a traceback."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


MAX_ECHO = 120   # characters of a user's value repeated in a message; the rest is elided


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """A long value (a 1 MB name, say) is echoed by its start, its end and its length."""
    if len(text) <= limit:
        return text
    keep = (limit - 30) // 2
    return f"{text[:keep]}...({len(text)} characters)...{text[-keep:]}"


def echo(value: Any) -> str:
    """A value as the API server echoes it (apimachinery field.Error.ErrorBody): strings quoted, nil as
    null, booleans in lower case; long values are clipped (clip), so a 1 MB name is not echoed."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(clip(value), ensure_ascii=False)
    try:
        return clip(json.dumps(value, ensure_ascii=False, default=str))
    except (TypeError, ValueError, RecursionError):
        return clip(repr(value))


class TestbedError(Exception):
    """An error the user can act on; the CLI prints its message and exits non-zero."""
    __test__ = False  # not a pytest test class, despite the name


class ArgumentError(TestbedError, TypeError):
    """A Python argument of the wrong type or value (`apply([1, 2])`, `scale(..., "3")`): a TypeError
    to Python code, one line to the CLI."""


@dataclass(frozen=True)
class Problem:
    """One problem with one object, located as `file:document kind/name: field.path: reason`."""
    source: str          # "path/to/file.yaml:3" (document number, 1-based) or "<stdin>:1"
    kind: str
    name: str
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.kind or '<unknown kind>'}/{clip(self.name) or '<unnamed>'}"
        field = f"{self.field}: " if self.field else ""
        return f"{self.source} {where}: {field}{self.reason}"


def in_document_order(problems: list[Problem]) -> list[Problem]:
    """Problems sorted by file and document number (stable: a document's own order is kept)."""
    def key(problem: Problem):
        path, _, number = problem.source.rpartition(":")
        return (path, int(number)) if number.isdigit() else (problem.source, 0)
    return sorted(problems, key=key)


class ManifestError(TestbedError):
    """One or more invalid objects; nothing was applied."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
