"""Mininet hosts for the emulation: nodes, pods and the external host.

Each is a Mininet `Host` (its own network and mount namespaces, from `mnexec -n`) with what a
container runtime gives a pod: its own UTS namespace, so `hostname` is the pod's name; its own
/etc/resolv.conf, /etc/hosts and /etc/hostname, bind-mounted inside its private mount namespace (the
kubelet writes them; the host's files are never touched); and a clean environment: the shell starts
with the image default PATH, HOME and HOSTNAME only, never the environment of the Python process
that built the emulation (the kubelet then adds the container's variables). Every shell carries the
variable TESTBED_CLUSTER, which marks the processes the testbed started so that `testbed clean` finds
them (and only them) after a crash.

Mininet recognises the end of a command's output by its prompt, the character 0x7f, which it sets
as PS1 in the shell's environment. Left exported, every program started from the shell inherits
PS1, and `env` prints the sentinel in the middle of its output: Mininet would stop reading there and
hand the rest to the next command. So PS1 stays a shell variable but is not exported.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from mininet.node import Host

from ..kubelet.podfiles import DEFAULT_PATH

CLUSTER_ENV = "TESTBED_CLUSTER"



class EmulatedHost(Host):
    """A Mininet host in its own UTS namespace, with private /etc files and a cluster marker."""

    def __init__(self, name: str, cluster_id: str, hostname: str | None = None,
                 etc_files: dict[str, Path] | None = None, **params):
        self.cluster_id = cluster_id
        self.hostname = hostname or name
        self.etc_files = etc_files or {}
        super().__init__(name, **params)
        setup = ["export -n PS1", f"hostname {shlex.quote(self.hostname)}"]
        for target, source in self.etc_files.items():
            setup.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}")
        self.cmd(" && ".join(setup))

    def _popen(self, cmd, **params):
        # Only the interactive shell Mininet starts for the host gets the new UTS namespace, the
        # clean environment and the marker; commands run later through the shell inherit them.
        if isinstance(cmd, list) and cmd and cmd[0] == "mnexec" and cmd[-1] == "mininet:" + self.name:
            # `mnexec ... env PS1=<sentinel> bash ...`: `env -i` drops everything before PS1.
            clean = ["env", "-i", f"PATH={DEFAULT_PATH}", "HOME=/root", f"HOSTNAME={self.hostname}",
                     f"{CLUSTER_ENV}={self.cluster_id}"]
            rest = cmd[2:]
            if rest and rest[0] == "env":
                rest = rest[1:]
            cmd = cmd[:2] + ["unshare", "--uts", *clean, *rest]
        return super()._popen(cmd, **params)

    def set_address(self, interface: str, ip: str, prefix_length: int) -> None:
        """Record an address configured with `ip addr` so that Mininet's `IP()` reports it."""
        intf = self.intf(interface)
        intf.ip, intf.prefixLen = ip, prefix_length

    def export_env(self, env: dict[str, str], env_file: Path) -> None:
        """Set variables in the host's shell, so `cmd()` and the processes it starts see them. They
        go through a file the shell sources: a pty line holds at most 4 KiB, and a namespace with
        many Services gives a pod many thousands of variables (as in Kubernetes)."""
        write_env_file(env_file, env)
        self.cmd(f"set -a; . {shlex.quote(str(env_file))}; set +a")


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """A file of `NAME='value'` lines that `sh` can source."""
    path.write_text("".join(f"{name}={shlex.quote(value)}\n" for name, value in sorted(env.items())))
