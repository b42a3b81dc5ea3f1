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
from typing import Iterable

from ..sync import LoopComponent, SyncLoop
from .model import ServicePort
from .tracker import ServiceChangeTracker


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


class LoadBalancerSpeaker(LoopComponent):
    """Elects the announcing node of every LoadBalancer IP and tells the data plane when one moves."""
    name = "lb-speaker"

    def __init__(self, ctx):
        self.ctx = ctx
        self.current: dict[str, str] = {}
        self.tracker: ServiceChangeTracker | None = None
        self.loop = SyncLoop(self.name, ctx.api.store, {"Service", "EndpointSlice"}, self._sync)

    def start(self) -> None:
        self.tracker = ServiceChangeTracker.for_api(self.ctx.api)
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()
        if self.tracker is not None:
            self.tracker.close()

    def _sync(self) -> None:
        ports, _ = self.tracker.update()
        wanted = announcements(ports, list(self.ctx.nodes.node_names))
        if wanted != self.current:
            self.ctx.announce(self.current, wanted)
        self.current = wanted
