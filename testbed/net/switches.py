"""The switches of the emulation: Open vSwitch bridges, or Linux bridges in a namespace of their own.

Open vSwitch serves every mode and is required by the sdn mode (OpenFlow). Where the kernel has no
openvswitch module, OVS runs its userspace datapath, which adds about 0.7 ms to every TCP connect
and so hides most of what kernel proxy modes differ in (the iptables rule-count effect is ~0.25 ms
at 10,000 Services). Linux bridges are the kernel's own datapath and are everywhere: `switch=
"linuxbridge"` builds every node bridge and fabric switch as one.

Each Linux bridge lives in a network namespace of its own (a Mininet node whose shell carries the
cluster marker), as `br0` with every port of that switch enslaved: nothing is created in the host's
root namespace, not even the switch-side veth ends, and everything goes when the namespace's
process ends (teardown, or `testbed clean` after a crash, which kills marked processes).
"""
from __future__ import annotations

import shlex

from mininet.node import Switch

from ..kubelet.podfiles import DEFAULT_PATH
from .hosts import CLUSTER_ENV

SWITCH_KINDS = ("ovs", "linuxbridge")
BRIDGE = "br0"


class NamespacedLinuxBridge(Switch):
    """A Linux bridge (`br0`) in its own network namespace; Mininet links end in that namespace."""

    def __init__(self, name, cluster_id: str, **params):
        self.cluster_id = cluster_id
        params.pop("failMode", None)
        params.pop("datapath", None)
        params.pop("protocols", None)
        params.pop("rstp", None)
        params.pop("controlled", None)
        params["inNamespace"] = True
        super().__init__(name, **params)

    def _popen(self, cmd, **params):
        # The switch's shell carries the cluster marker and a clean environment, as EmulatedHost's.
        if isinstance(cmd, list) and cmd and cmd[0] == "mnexec" and cmd[-1] == "mininet:" + self.name:
            rest = cmd[2:]
            if rest and rest[0] == "env":
                rest = rest[1:]
            cmd = cmd[:2] + ["env", "-i", f"PATH={DEFAULT_PATH}", f"{CLUSTER_ENV}={self.cluster_id}", *rest]
        return super()._popen(cmd, **params)

    def start(self, controllers):
        commands = ["export -n PS1", "ip link set lo up",
                    "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
                    f"ip link add {BRIDGE} type bridge stp_state 0 forward_delay 0",
                    f"ip link set {BRIDGE} up"]
        # br_netfilter, if the host loaded it, must not hand bridged frames to this namespace's
        # (empty) netfilter: the bridge is a plain switch.
        commands.append("for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -w $f ] && echo 0 > $f; done; true")
        commands += [self._attach_command(intf.name) for intf in self.intfList() if intf.name != "lo"]
        output = self.cmd(" && ".join(commands) + " && echo __ok__")
        if "__ok__" not in output:
            raise RuntimeError(f"starting Linux bridge {self.name} failed: {output.strip()}")

    @staticmethod
    def _attach_command(interface: str) -> str:
        quoted = shlex.quote(interface)
        return f"ip link set {quoted} master {BRIDGE} && ip link set {quoted} up"

    def attach(self, interface: str) -> None:
        """Enslave a port added after start (a pod's veth end)."""
        output = self.cmd(self._attach_command(interface) + " && echo __ok__")
        if "__ok__" not in output:
            raise RuntimeError(f"attaching {interface} to {self.name} failed: {output.strip()}")

    def detach(self, interface: str) -> None:
        self.cmd(f"ip link del {shlex.quote(interface)} 2>/dev/null")

    def connected(self) -> bool:
        return True

    def stop(self, deleteIntfs=True):  # noqa: N803 (Mininet's name)
        self.terminate()
