"""The LoadBalancer speaker: which node announces each LoadBalancer IP, and (kernel modes) making that
node answer ARP for it.

MetalLB's layer-2 mode elects one node per IP; with externalTrafficPolicy Local only nodes with a ready
local endpoint are candidates (traffic must not land where no endpoint is). The election is a pure
function of the Services, so every component (and the SDN controller) agrees on it. In the kernel
proxy modes the announcing node gets the IP as a local route in its own namespace, which makes its
kernel answer ARP for it; the kube-proxy rules there then DNAT the traffic. In SDN mode the controller
answers ARP instead (the data plane says which, through `announce`).
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Iterable

from ..sync import SyncLoop
from .model import ServicePort

if TYPE_CHECKING:
    from ..controlplane import ControlPlane


def announcements(ports: Iterable[ServicePort], nodes: list[str]) -> dict[str, str]:
    """LoadBalancer IP -> the node that announces it."""
    chosen: dict[str, str] = {}
    for port in ports:
        for ip in port.load_balancer_ips:
            candidates = nodes
            if port.external_policy_local:
                local = {e.node_name for e in port.endpoints if e.ready}
                candidates = [n for n in nodes if n in local]
                if not candidates:
                    continue
            if ip in chosen and chosen[ip] in candidates:
                continue
            # Rendezvous hashing: stable, and only IPs of a failed node move.
            chosen[ip] = max(candidates, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())
    return chosen


class LoadBalancerSpeaker:
    def __init__(self, cp: "ControlPlane", emulation):
        self.cp = cp
        self.emulation = emulation
        self.current: dict[str, str] = {}
        self.loop = SyncLoop("lb-speaker", cp.store, {"Service", "EndpointSlice"}, self._sync)
        self.errors = self.loop.errors

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()

    def synced(self) -> bool:
        return self.loop.synced()

    def _sync(self) -> None:
        wanted = announcements(self.cp.service_ports(), self.emulation.node_names)
        self.emulation.dataplane.announce(self.current, wanted)
        self.current = wanted
