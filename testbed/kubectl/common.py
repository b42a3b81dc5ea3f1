"""What the verb modules share: the error type, common flags, and kubectl's wording of the API
server's answers (k8s.io/kubectl/pkg/cmd/util/helpers.go checkErr, apimachinery's StatusError)."""
from __future__ import annotations

from ..errors import ManifestError, Problem, TestbedError
from ..kinds import KINDS
from .flags import Flag, Parsed

ALL_NAMESPACES = Flag("all-namespaces", "A", takes_value=False)
SELECTOR = Flag("selector", "l")
FILENAME = Flag("filename", "f", repeated=True)
OUTPUT = Flag("output", "o")
RECORD = Flag("record", takes_value=False)
ALL = Flag("all", takes_value=False)
# kubectl's --dry-run takes none|client|server; a bare --dry-run meant client in the articles' time.
DRY_RUN = Flag("dry-run", bare_value="client")
DRY_RUN_CHOICES = ("none", "client", "server")
CHANGE_CAUSE = "kubernetes.io/change-cause"   # what --record writes


class KubectlError(TestbedError):
    """A message already worded as kubectl prints it (possibly after partial output)."""


def lines(items: list[str]) -> str:
    return "".join(line + "\n" for line in items)


def dry_run_strategy(parsed: Parsed) -> str:
    """cmdutil.GetDryRunStrategy: none, client or server; the boolean values of kubectl before 1.18
    (`--dry-run`, `--dry-run=true`) still mean client."""
    value = parsed.get("dry-run") or "none"
    value = {"true": "client", "false": "none"}.get(value, value)
    if value not in DRY_RUN_CHOICES:
        raise TestbedError(f'error: Invalid dry-run value ({parsed.get("dry-run")}). Must be "none", "server", or "client".')
    return value


def dry_run_of(parsed: Parsed) -> bool:
    """True for a client or server dry run: the testbed computes the result and stores nothing (a
    server dry run would also run admission, which here is the same code, so both print alike)."""
    return dry_run_strategy(parsed) != "none"


def dry_run_suffix(parsed: Parsed) -> str:
    """What PrintFlagsWithDryRunStrategy appends to the operation."""
    return {"client": " (dry run)", "server": " (server dry run)"}.get(dry_run_strategy(parsed), "")


def change_cause(words: list[str], parsed: Parsed) -> str:
    """What --record writes to kubernetes.io/change-cause: cmdutil's Factory.Command, i.e. the
    command's words, then every flag given as ` --name=value`, in the order given."""
    flags = "".join(f" --{name}={_flag_text(value)}" for name, value in parsed.options.items())
    return " ".join(["kubectl", *words]) + flags


def _flag_text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def resource_of(kind: str) -> str:
    """`deployments.apps`, `services`: how a StatusError names the resource."""
    info = KINDS[kind]
    return info.plural + (f".{info.group}" if info.group else "")


def group_kind(kind: str) -> str:
    """schema.GroupKind.String(): `Deployment.apps`, `Pod`."""
    info = KINDS[kind]
    return kind + (f".{info.group}" if info.group else "")


def problems_by_object(error: ManifestError) -> dict[tuple[str, str], list[Problem]]:
    grouped: dict[tuple[str, str], list[Problem]] = {}
    for problem in error.problems:
        grouped.setdefault((problem.kind, problem.name), []).append(problem)
    return grouped


def _cause(problem: Problem) -> str:
    return f"{problem.field}: {problem.reason}" if problem.field else problem.reason


def invalid_message(error: ManifestError) -> str:
    """checkErr on an Invalid StatusError: `The Deployment "web" is invalid: field: reason`, or one
    `* field: reason` line per cause when there are several."""
    blocks = []
    for (kind, name), problems in problems_by_object(error).items():
        prefix = f'The {kind} "{name}" is invalid: '
        if len(problems) == 1:
            blocks.append(prefix + _cause(problems[0]))
        else:
            blocks.append(prefix + "\n" + "\n".join(f"* {_cause(p)}" for p in problems))
    return "\n".join(blocks)


def status_error_text(error: ManifestError) -> str:
    """StatusError.Error() of an Invalid answer, as commands that wrap it print it:
    `Deployment.apps "web" is invalid: field: reason` (several causes in brackets)."""
    texts = []
    for (kind, name), problems in problems_by_object(error).items():
        causes = [_cause(p) for p in problems]
        joined = causes[0] if len(causes) == 1 else "[" + ", ".join(causes) + "]"
        texts.append(f'{group_kind(kind) if kind in KINDS else kind} "{name}" is invalid: {joined}')
    return "\n".join(texts)


def already_exists(kind: str, name: str) -> str:
    return f'{resource_of(kind)} "{name}" already exists'
