"""Mininet hosts for the emulation: nodes, pods and the external host.

Each is a Mininet `Host` (its own network and mount namespaces, from `mnexec -n`) with two additions
a container runtime gives a pod: its own UTS namespace, so `hostname` is the pod's name, and its own
/etc/resolv.conf, /etc/hosts and /etc/hostname, bind-mounted inside its private mount namespace (the
kubelet writes them; the host's files are never touched). Every shell carries the environment
variable TESTBED_CLUSTER, which marks the processes the testbed started so that `testbed clean` finds
them (and only them) after a crash.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from mininet.node import Host

CLUSTER_ENV = "TESTBED_CLUSTER"


class EmulatedHost(Host):
    """A Mininet host in its own UTS namespace, with private /etc files and a cluster marker."""

    def __init__(self, name: str, cluster_id: str, hostname: str | None = None,
                 etc_files: dict[str, Path] | None = None, **params):
        self.cluster_id = cluster_id
        self.hostname = hostname or name
        self.etc_files = etc_files or {}
        super().__init__(name, **params)
        setup = [f"hostname {shlex.quote(self.hostname)}"]
        for target, source in self.etc_files.items():
            setup.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}")
        self.cmd(" && ".join(setup))

    def _popen(self, cmd, **params):
        # Only the interactive shell Mininet starts for the host gets the new UTS namespace and the
        # marker; commands run later through the shell inherit both.
        if isinstance(cmd, list) and cmd and cmd[0] == "mnexec" and cmd[-1] == "mininet:" + self.name:
            cmd = cmd[:2] + ["unshare", "--uts", "env", f"{CLUSTER_ENV}={self.cluster_id}"] + cmd[2:]
        return super()._popen(cmd, **params)

    def export_env(self, env: dict[str, str], env_file: Path) -> None:
        """Set variables in the host's shell, so `cmd()` and the processes it starts see them. They
        go through a file the shell sources: a pty line holds at most 4 KiB, and a namespace with
        many Services gives a pod many thousands of variables (as in Kubernetes)."""
        write_env_file(env_file, env)
        self.cmd(f"set -a; . {shlex.quote(str(env_file))}; set +a")


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """A file of `NAME='value'` lines that `sh` can source."""
    path.write_text("".join(f"{name}={shlex.quote(value)}\n" for name, value in sorted(env.items())))
