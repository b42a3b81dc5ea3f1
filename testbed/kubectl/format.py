"""Text helpers that make output look like kubectl's: Go's text/tabwriter, `-o yaml|json`,
apimachinery's HumanDuration (the AGE column), label and selector formatting, and label-selector
parsing (`-l`).

All pure: no cluster, no clock (callers pass `now`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

import yaml

from ..errors import TestbedError


# ---------------------------------------------------------------------------------------------
# Go's text/tabwriter (flags 0), which kubectl uses for `get` tables and `describe`
# ---------------------------------------------------------------------------------------------

class TabWriter:
    """A port of Go's text/tabwriter: cells are tab-terminated (the last cell of a line is not part of
    any column), a column block is a run of consecutive lines that have a cell in that column, and a
    line without a tab flushes, so alignment restarts after it. kubectl's describe layout (values of
    consecutive `Key:\\tvalue` lines aligned, tables below a title aligned on their own) falls out of
    these rules, which is why they are ported rather than imitated."""

    def __init__(self, minwidth: int, padding: int):
        self.minwidth = minwidth
        self.padding = padding
        self._lines: list[list[str]] = []
        self._partial = ""
        self._out: list[str] = []

    def write(self, text: str) -> None:
        *complete, self._partial = (self._partial + text).split("\n")
        for line in complete:
            cells = line.split("\t")
            self._lines.append(cells)
            if len(cells) == 1:
                self.flush()

    def flush(self) -> None:
        self._format(0, len(self._lines), [])
        self._lines = []

    def getvalue(self) -> str:
        self.flush()
        return "".join(self._out) + self._partial

    def _format(self, line0: int, line1: int, widths: list[int]) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(self._lines[this]) - 1:
                this += 1
                continue
            self._write_lines(line0, this, widths)
            line0 = this
            width = self.minwidth
            while this < line1 and column < len(self._lines[this]) - 1:
                width = max(width, len(self._lines[this][column]) + self.padding)
                this += 1
            self._format(line0, this, widths + [width])
            line0 = this
        self._write_lines(line0, line1, widths)

    def _write_lines(self, line0: int, line1: int, widths: list[int]) -> None:
        for cells in self._lines[line0:line1]:
            for j, cell in enumerate(cells):
                self._out.append(cell.ljust(widths[j]) if j < len(widths) else cell)
            self._out.append("\n")


def tabulate(rows: list[list[str]], minwidth: int = 6, padding: int = 3) -> str:
    """kubectl's `get` table (cli-runtime's tabwriter: minwidth 6, padding 3)."""
    writer = TabWriter(minwidth, padding)
    for row in rows:
        writer.write("\t".join(row) + "\n")
    return writer.getvalue()


# ---------------------------------------------------------------------------------------------
# -o yaml / -o json
# ---------------------------------------------------------------------------------------------

class _KubectlDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """PyYAML's safe dumper (libyaml when present) with go-yaml's string styles."""


def _represent_str(dumper, value: str):
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if dumper.resolve(yaml.ScalarNode, value, (True, False)) != "tag:yaml.org,2002:str":
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_KubectlDumper.add_representer(str, _represent_str)


def dump_yaml(obj) -> str:
    """kubectl's YAML: keys sorted (kubectl goes through JSON and a Go map, so its output is sorted,
    not in field order), strings that would read as another type double-quoted (`"80"`, `""`,
    timestamps), multi-line strings as literal blocks, no line wrapping."""
    return yaml.dump(obj, Dumper=_KubectlDumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=1 << 30)


def dump_json(obj) -> str:
    """kubectl's JSON: four-space indentation, keys sorted (an unstructured object is a Go map)."""
    return json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------------------------

def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration: about two significant figures (5s, 3m2s, 10m, 5h3m, 2d)."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        return f"{minutes}m{whole % 60}s" if whole % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None, now: datetime) -> str:
    """The AGE column (translateTimestampSince)."""
    then = parse_time(timestamp)
    return "<unknown>" if then is None else human_duration((now - then).total_seconds())


def rfc1123z(timestamp: str | None) -> str:
    """Go's time.RFC1123Z in the local zone, as describe prints times."""
    then = parse_time(timestamp)
    return "<unknown>" if then is None else then.astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")


# ---------------------------------------------------------------------------------------------
# Labels and selectors
# ---------------------------------------------------------------------------------------------

def format_labels(labels: dict | None) -> str:
    """labels.FormatLabels: `k=v,k2=v2` sorted by key, `<none>` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def format_label_selector(selector: dict | None) -> str:
    """metav1.FormatLabelSelector for a LabelSelector (matchLabels and matchExpressions)."""
    selector = selector or {}
    requirements = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, operator, values = expr.get("key", ""), expr.get("operator", ""), sorted(expr.get("values") or [])
        text = {"In": f"{key} in ({','.join(values)})", "NotIn": f"{key} notin ({','.join(values)})",
                "Exists": key, "DoesNotExist": f"!{key}"}.get(operator, f"{key} {operator}")
        requirements.append((key, text))
    if not requirements:
        return "<none>"
    return ",".join(text for _, text in sorted(requirements, key=lambda r: r[0]))


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str            # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "=":
            return present and value == self.values[0]
        if self.operator == "!=":
            return not present or value != self.values[0]
        if self.operator == "in":
            return present and value in self.values
        if self.operator == "notin":
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        return not present


_SET_TERM = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQUALITY_TERM = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS_TERM = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def parse_selector(text: str) -> list[Requirement]:
    """A `-l` label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a)`, comma-joined."""
    terms, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    requirements = []
    for term in terms:
        if not term.strip():
            continue
        if match := _SET_TERM.match(term):
            values = tuple(v.strip() for v in match.group(3).split(",") if v.strip())
            requirements.append(Requirement(match.group(1), match.group(2), values))
        elif match := _EQUALITY_TERM.match(term):
            operator = "!=" if match.group(2) == "!=" else "="
            requirements.append(Requirement(match.group(1), operator, (match.group(3),)))
        elif match := _EXISTS_TERM.match(term):
            requirements.append(Requirement(match.group(2), "!" if match.group(1) else "exists"))
        else:
            raise TestbedError(f"error: unable to parse requirement: found '{term.strip()}', expected: "
                               "identifier, '=', '!=', 'in', 'notin' or '!'")
    return requirements


def requirements_match(requirements: list[Requirement], labels: dict | None) -> bool:
    return all(r.matches(labels or {}) for r in requirements)


def resource_selector_labels(obj: dict) -> dict | None:
    """The map selector of a workload or Service (what `expose` copies); None when it has none or
    uses matchExpressions, which a Service selector cannot express."""
    kind, spec = obj["kind"], obj.get("spec") or {}
    if kind in ("Deployment", "ReplicaSet"):
        selector = spec.get("selector") or {}
        return None if selector.get("matchExpressions") else dict(selector.get("matchLabels") or {}) or None
    if kind in ("ReplicationController", "Service"):
        return dict(spec.get("selector") or {}) or None
    if kind == "Pod":
        return dict(obj["metadata"].get("labels") or {}) or None
    return None
