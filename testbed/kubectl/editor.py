"""The file side of `kubectl edit`: the temp file with its header, the editor launch and the
comparisons, after k8s.io/kubectl/pkg/cmd/util/editor (editoptions.go, editor.go,
launcher_others.go) and cmd/util/helpers.go (StripComments, ManualStrip).

The editor is $KUBE_EDITOR, else $EDITOR, else `vi`; a value with spaces is split on them, and one
with quotes or backslashes goes to `$SHELL -c` (defaultEnvEditor). The edit loop itself is in
update_commands.py.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from ..errors import TestbedError

EDITOR_VARIABLES = ("KUBE_EDITOR", "EDITOR")
DEFAULT_EDITOR = "vi"
DEFAULT_SHELL = "/bin/bash"
HEADER = ("# Please edit the object below. Lines beginning with a '#' will be ignored,\n"
          "# and an empty file will abort the edit. If an error occurs while saving this file will be\n"
          "# reopened with the relevant failures.\n"
          "#\n")


@dataclass
class EditReason:
    """One failure reported in the header when the file is reopened."""
    head: str
    causes: list[str] = field(default_factory=list)


def header(reasons: list[EditReason]) -> str:
    """editHeader.writeTo (normal edit mode)."""
    text = HEADER
    for reason in reasons:
        text += f"# {_hash_on_line_break(reason.head)}{':' if reason.causes else ''}\n"
        text += "".join(f"# * {_hash_on_line_break(cause)}\n" for cause in reason.causes)
        text += "#\n"
    return text


def _hash_on_line_break(text: str) -> str:
    """Continue a multi-line message as comment lines."""
    out = []
    for i, char in enumerate(text):
        if char == "\n" and i + 1 < len(text) and text[i + 1] != "#":
            out.append("\n# ")
        else:
            out.append(char)
    return "".join(out)


def manual_strip(text: str) -> str:
    """ManualStrip: drop the comment lines (a `#!` line is not a comment)."""
    kept = [line for line in text.split("\n")
            if not (line.strip().startswith("#") and not line.strip().startswith("#!"))]
    return "\n".join(kept)


def strip_comments(text: str) -> tuple[str, Any]:
    """StripComments: what the file says, comments aside: its YAML as data when it parses (so
    reformatting is no change), else the text without comment lines."""
    try:
        return "data", yaml.safe_load(text)
    except yaml.YAMLError:
        return "text", manual_strip(text)


def has_lines(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in text.splitlines())


def editor_command(environ: Mapping[str, str]) -> tuple[list[str], bool]:
    """defaultEnvEditor: (argv, whether it goes through the shell)."""
    editor = next((environ[v] for v in EDITOR_VARIABLES if environ.get(v)), DEFAULT_EDITOR)
    if " " not in editor:
        return [editor], False
    if not any(c in editor for c in "\"'\\"):
        return editor.split(" "), False
    return [environ.get("SHELL") or DEFAULT_SHELL, "-c", editor], True


def _run_with_the_terminal(argv: list[str], environ: dict) -> int:
    """term.TTY.Safe: while the editor runs, Ctrl-C and Ctrl-\\ belong to it. The terminal sends them
    to the whole foreground group, so this process catches them and does nothing (a handler, not
    SIG_IGN, which the editor would inherit); otherwise Ctrl-C in vi would end `testbed up`."""
    if threading.current_thread() is not threading.main_thread():
        return subprocess.run(argv, env=environ, check=False).returncode
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGQUIT)}
    try:
        return subprocess.run(argv, env=environ, check=False).returncode
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(signum, frame) -> None:
    pass


def write_temp_file(text: str) -> str:
    """LaunchTempFile's file: `kubectl-edit-*.yaml` in the temp directory."""
    fd, path = tempfile.mkstemp(prefix="kubectl-edit-", suffix=".yaml")
    with os.fdopen(fd, "w") as stream:
        stream.write(text)
    return path


def launch(environ: Mapping[str, str], path: str) -> str:
    """Run the editor on `path` with the terminal (stdin, stdout, stderr inherited) and return what
    the file holds afterwards."""
    editor, through_shell = editor_command(environ)
    absolute = os.path.abspath(path)
    argv = [*editor[:-1], f"{editor[-1]} {shlex.quote(absolute)}"] if through_shell else [*editor, absolute]
    shown = " ".join(editor)
    try:
        status = _run_with_the_terminal(argv, dict(environ))
    except (FileNotFoundError, PermissionError):
        raise TestbedError(f'error: unable to launch the editor "{shown}"') from None
    if status != 0:
        raise TestbedError(f'error: there was a problem with the editor "{shown}"')
    with open(path) as stream:
        return stream.read()
