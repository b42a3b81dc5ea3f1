"""The data plane of the kube-proxy modes: one proxier per node namespace, synced by one loop.

A real cluster runs one kube-proxy per node; each watches the API server and syncs its own node.
Here one SyncLoop watches Services and EndpointSlices, one change tracker turns the events into
`(ports, changed)`, and every node's proxier syncs with them at the same time (threads: each
sync is mostly a child process, iptables-restore or nft, working in its node's namespace). The
loop's sync time is therefore the slowest node's, as "all nodes programmed" is in a cluster.

Which proxier runs is the backend's business (testbed/backends/); this class never names a mode.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping

from ..sync import LoopComponent, SyncLoop
from .backend import Backend, DataPlaneContext, NodeContext, Proxier, SyncResult
from .tracker import ServiceChangeTracker

log = logging.getLogger(__name__)


class KernelDataPlane(LoopComponent):
    def __init__(self, ctx: DataPlaneContext, backend: Backend):
        self.ctx = ctx
        self.backend = backend
        self.name = f"kube-proxy ({backend.label(ctx.options)})"
        self.label = backend.label(ctx.options)
        self.proxiers: dict[str, Proxier] = {}
        self.tracker: ServiceChangeTracker | None = None
        self.loop = SyncLoop(self.name, ctx.api.store, {"Service", "EndpointSlice"}, self._sync)
        self.last_results: dict[str, SyncResult] = {}

    # -- lifecycle --------------------------------------------------------------------------
    def openflow_controller(self):
        return None  # the bridges are plain L2 switches in kernel modes

    def start(self) -> None:
        nodes = self.ctx.nodes
        self.tracker = ServiceChangeTracker.for_api(self.ctx.api)
        for node in nodes.node_names:
            context = NodeContext(node=nodes.info(node), runner=nodes.runner(node),
                                  run_dir=nodes.directory("proxy", node), cluster_id=nodes.cluster_id,
                                  options=self.ctx.options)
            self.proxiers[node] = self.backend.make_proxier(context)
        self.loop.start()

    def stop(self) -> None:
        """Stop syncing and end what the proxiers run. Their kernel state stays: it lives in the
        node namespaces, which the emulation removes (or `cleanup()` empties for a mode switch)."""
        self.loop.stop()
        for node, proxier in self.proxiers.items():
            try:
                proxier.stop()
            except Exception:
                log.exception("stopping the proxier of %s", node)
        if self.tracker is not None:
            self.tracker.close()

    def cleanup(self) -> None:
        """Remove this mode's state from every node (a live mode switch)."""
        for proxier in self.proxiers.values():
            proxier.cleanup()

    # -- state ------------------------------------------------------------------------------
    def activity(self) -> str | None:
        state = self.loop.activity()
        return f"{state} on {len(self.proxiers)} nodes" if state else None

    def _sync(self) -> None:
        ports, changed = self.tracker.update()
        with ThreadPoolExecutor(max_workers=max(1, len(self.proxiers))) as pool:
            futures = {node: pool.submit(proxier.sync, ports, changed) for node, proxier in self.proxiers.items()}
            failures = []
            for node, future in futures.items():
                try:
                    self.last_results[node] = future.result()
                except Exception as err:
                    failures.append(f"{node}: {err}")
        if failures:
            raise RuntimeError("; ".join(failures))

    def rule_count(self) -> int:
        """Rules in the largest node's ruleset (what the last sync installed)."""
        return max((r.rules for r in self.last_results.values()), default=0)

    # -- events from the emulation ----------------------------------------------------------
    def pod_added(self, pod: dict, sandbox: dict) -> None:
        pass

    def pod_removed(self, sandbox: dict) -> None:
        pass

    def announce(self, old: Mapping[str, str], new: Mapping[str, str]) -> None:
        """MetalLB layer 2 in the kernel: the announcing node holds the IP as a local route (so its
        kernel answers ARP for it); a node that stops announcing drops it. Under strict ARP the node
        answers only for addresses of the interface the request came in on, so the IP becomes an
        address of the node's interface instead."""
        for ip, node in old.items():
            if new.get(ip) != node:
                self.ctx.nodes.runner(node).run(self._hold_command(node, ip, hold=False), check=False)
        for ip, node in new.items():
            if old.get(ip) != node:
                self.ctx.nodes.runner(node).run(self._hold_command(node, ip, hold=True))

    def _hold_command(self, node: str, ip: str, hold: bool) -> list[str]:
        if not self.backend.strict_arp:
            return ["ip", "route", "replace" if hold else "del", "local", f"{ip}/32", "dev", "lo", "table", "local"]
        # eth0: every node's link to the node network, as the emulation names it (net/addressing.py)
        return ["ip", "addr", "replace" if hold else "del", f"{ip}/32", "dev", "eth0"]
