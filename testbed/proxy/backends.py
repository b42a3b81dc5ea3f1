"""The Service data plane of a running emulation, one class per kind of backend behind one interface.

    make_dataplane(mode, emulation) -> DataPlane

A DataPlane is told about the emulation's life (start/stop, pods added and removed, LoadBalancer IPs
to announce) and keeps the Service rules in step with the control plane through a SyncLoop.
`KernelDataPlane` runs one kube-proxy-like proxier per node namespace (iptables mode; the nftables,
IPVS and userspace proxiers plug in the same way); the SDN mode's data plane lives in testbed.sdn.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import TestbedError
from ..sync import SyncLoop

if TYPE_CHECKING:
    from ..net.emulation import Emulation

NOT_YET = {
    "userspace": "the userspace proxy mode is not implemented yet",
    "nftables": "the nftables proxy mode is not implemented yet",
    "ipvs": "the ipvs proxy mode is not implemented yet",
}


def kernel_has_ipvs() -> bool:
    return Path("/proc/net/ip_vs").exists() or Path("/sys/module/ip_vs").exists()


class KernelDataPlane:
    """kube-proxy on every node: one proxier per node namespace, all synced by one loop."""

    def __init__(self, emulation: "Emulation", make_proxier: Callable, label: str):
        self.emulation = emulation
        self.make_proxier = make_proxier
        self.label = label
        self.proxiers: dict[str, object] = {}
        self.loop = SyncLoop("kube-proxy", emulation.cp.store, {"Service", "EndpointSlice"}, self._sync)
        self.errors = self.loop.errors
        self.last_results: dict[str, object] = {}

    def openflow_controller(self):
        return None  # the bridges are plain L2 switches in kernel modes

    def node_setup_commands(self, node: str) -> list[str]:
        return []

    def start(self) -> None:
        for node in self.emulation.node_names:
            self.proxiers[node] = self.make_proxier(self.emulation.node_runner(node), self.emulation.node_info(node))
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()  # the rules live in the node namespaces, which go away with them

    def synced(self) -> bool:
        return self.loop.synced()

    def _sync(self) -> None:
        """Every node's kube-proxy syncs at the same time, as real ones do (each is its own process
        on its own node); the loop's sync time is therefore the slowest node's."""
        ports = self.emulation.cp.service_ports()
        with ThreadPoolExecutor(max_workers=len(self.proxiers)) as pool:
            futures = {node: pool.submit(proxier.sync, ports) for node, proxier in self.proxiers.items()}
            for node, future in futures.items():
                self.last_results[node] = future.result()

    def rule_count(self) -> int:
        """Rules in the largest node's ruleset (what the last sync installed)."""
        return max((getattr(r, "rules", 0) for r in self.last_results.values()), default=0)

    def pod_added(self, pod: dict, sandbox: dict) -> None:
        pass

    def pod_removed(self, sandbox: dict) -> None:
        pass

    def announce(self, old: dict[str, str], new: dict[str, str]) -> None:
        """MetalLB L2 in the kernel: the announcing node holds the IP as a local route (so its kernel
        answers ARP for it); a node that stops announcing drops it."""
        for ip, node in old.items():
            if new.get(ip) != node:
                self.emulation.node_runner(node).run(
                    ["ip", "route", "del", "local", f"{ip}/32", "dev", "lo", "table", "local"], check=False)
        for ip, node in new.items():
            if old.get(ip) != node:
                self.emulation.node_runner(node).run(
                    ["ip", "route", "replace", "local", f"{ip}/32", "dev", "lo", "table", "local"])


def make_dataplane(mode: str, emulation: "Emulation"):
    if mode == "iptables":
        from .iptables import IptablesProxier
        command = "iptables-legacy-restore" if emulation.iptables_backend == "legacy" else "iptables-restore"
        return KernelDataPlane(emulation, lambda runner, node: IptablesProxier(runner, node, command),
                               f"iptables ({emulation.iptables_backend})")
    if mode == "sdn":
        from ..sdn.dataplane import SdnDataPlane
        return SdnDataPlane(emulation)
    if mode == "ipvs" and not kernel_has_ipvs():
        raise TestbedError("ipvs mode needs the kernel's IPVS (ip_vs module), which this kernel does not have "
                           "(and the testbed's ipvs proxier is not implemented yet)")
    if mode in NOT_YET:
        raise TestbedError(NOT_YET[mode])
    raise TestbedError(f"unknown proxy mode {mode!r}")
