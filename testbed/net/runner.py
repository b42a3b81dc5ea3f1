"""Running commands inside an emulated host's namespaces.

Appliers (iptables-restore, nft, ipvsadm, unbound-control, ...) need to run a program inside a node's
or pod's network namespace, often with a large stdin. Mininet's `Node.cmd()` goes through the node's
interactive shell, which is slow for big inputs and serialises everything; `NamespaceRunner` instead
starts the program directly with nsenter, given the pid of any process inside the namespaces (Mininet
hosts expose it as `node.pid`) or the path of a network namespace file.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field


class CommandError(RuntimeError):
    def __init__(self, args, returncode, stderr):
        super().__init__(f"{' '.join(args)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class NamespaceRunner:
    """Runs programs in the network (and, with a pid, mount) namespace of an emulated host."""
    pid: int | None = None
    netns_path: str | None = None
    # Extra environment for started programs; the emulation puts its cluster marker here so that
    # `testbed clean` can find long-running processes after a crash.
    env: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def prefix(self) -> list[str]:
        if self.pid is not None:
            return ["nsenter", "-t", str(self.pid), "-n", "-m", "--"]
        if self.netns_path is not None:
            return ["nsenter", f"--net={self.netns_path}", "--"]
        return []  # the root namespace (only for tests of the runner itself)

    def run(self, args: list[str], input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        full = self.prefix() + list(args)
        proc = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout,
                              env=self._environment())
        if check and proc.returncode != 0:
            raise CommandError(list(args), proc.returncode, proc.stderr or proc.stdout)
        return proc

    def popen(self, args: list[str], **kwargs) -> subprocess.Popen:
        kwargs.setdefault("env", self._environment())
        return subprocess.Popen(self.prefix() + list(args), **kwargs)

    def _environment(self) -> dict[str, str] | None:
        return {**os.environ, **self.env} if self.env else None
