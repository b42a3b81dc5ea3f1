"""One line of the interactive CLI to one kubectl command, without a terminal or a Mininet net, so
that what the CLI does with a line is unit-tested."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..errors import TestbedError

KUBECTL_PREFIXES = ("kubectl", "k")


@dataclass(frozen=True)
class CommandResult:
    output: str      # what to print: kubectl's output, or its error message
    ok: bool


def execute_line(kubectl, line: str) -> CommandResult:
    """Run `kubectl get pods`, `k get pods` or `get pods` (shell quoting as in a terminal)."""
    try:
        argv = shlex.split(line)
    except ValueError as err:
        return CommandResult(f"error: {err}", ok=False)
    if argv and argv[0] in KUBECTL_PREFIXES:
        argv = argv[1:]
    try:
        return CommandResult(kubectl.run(argv), ok=True)
    except TestbedError as err:
        return CommandResult(str(err), ok=False)
