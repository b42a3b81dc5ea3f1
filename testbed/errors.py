"""User-facing errors: printed as one line per problem, never as a traceback."""
from __future__ import annotations

from dataclasses import dataclass


class TestbedError(Exception):
    """An error the user can act on; the CLI prints its message and exits non-zero."""
    __test__ = False  # not a pytest test class, despite the name


@dataclass(frozen=True)
class Problem:
    """One problem with one object, located as `file:document kind/name: field.path: reason`."""
    source: str          # "path/to/file.yaml:3" (document number, 1-based) or "<stdin>:1"
    kind: str
    name: str
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.kind or '<unknown kind>'}/{self.name or '<unnamed>'}"
        field = f"{self.field}: " if self.field else ""
        return f"{self.source} {where}: {field}{self.reason}"


class ManifestError(TestbedError):
    """One or more invalid objects; nothing was applied."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
