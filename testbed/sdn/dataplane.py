"""SDN mode in a running emulation: the OS-Ken controller owns the Service data plane.

The testbed starts the controller (a managed process listening on loopback), points every node bridge
at it (fail_mode secure, OpenFlow 1.3), and keeps it told: the full state once, then per-Service
upserts and deletions as the control plane changes, pods as the kubelet adds and removes them, and
which node announces each LoadBalancer IP. Every change returns after the controller's barrier on
every bridge, so `Cluster.apply` returns only when the flows are in place. Nodes keep no kube-proxy
rules in this mode; they only route the service CIDR on-link, so host-network traffic to a VIP
reaches the bridge (whose pipeline answers ARP for it).
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Mapping

from mininet.node import RemoteController

from ..net.hosts import CLUSTER_ENV
from ..net.runner import NamespaceRunner
from ..proxy.backend import Backend, DataPlaneContext
from ..proxy.model import ServicePort
from ..proxy.tracker import ServiceChangeTracker
from ..sync import LoopComponent, SyncLoop
from .client import SdnControllerProcess
from .wiring import Pod, Wiring


ROOT = NamespaceRunner()   # ovs-ofctl talks to ovs-vswitchd from the root namespace
BATCH_THRESHOLD = 50   # more changed Services than this in one sync: send the full state instead


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SdnDataPlane(LoopComponent):
    name = "sdn-controller"

    def __init__(self, ctx: DataPlaneContext, backend: Backend):
        self.ctx = ctx
        self.label = backend.label(ctx.options) if backend.describe else "sdn (OS-Ken controller, OpenFlow 1.3)"
        nodes = ctx.nodes
        self.port = free_loopback_port()
        self.process = SdnControllerProcess(ofp_port=self.port, socket_path=nodes.directory() / "sdn.sock",
                                            env={CLUSTER_ENV: nodes.cluster_id})
        self.process.start()
        self.client = self.process.client()
        self.wiring = Wiring.for_nodes(list(nodes.node_names))
        self.announcements: dict[str, str] = {}
        self._sent: dict[tuple[str, str], tuple[ServicePort, ...]] = {}
        self.tracker: ServiceChangeTracker | None = None
        self.loop = SyncLoop(self.name, ctx.api.store, {"Service", "EndpointSlice"}, self._sync)
        self._lock = threading.RLock()  # the sync loop and the LB speaker both send Service updates

    def openflow_controller(self):
        return RemoteController("c0", ip="127.0.0.1", port=self.port)

    def start(self) -> None:
        self.tracker = ServiceChangeTracker.for_api(self.ctx.api)
        self._send_everything()
        self.loop.start()

    def _send_everything(self) -> None:
        with self._lock:
            self.tracker.update()
            self._send_state()
        self.client.wait_programmed(timeout=30)

    def _send_state(self) -> None:
        wanted = dict(self.tracker.by_service())
        self.client.set_state(self.wiring.with_announcements(self.announcements),
                                              [p for key in sorted(wanted) for p in wanted[key]])
        self._sent = wanted

    def restart_controller(self) -> dict:
        """Stop the controller process and start a new one (for experiments on fail-secure bridges):
        the bridges keep their flows meanwhile; the new controller gets the full state and
        reconciles each bridge when it reconnects. Returns timings in seconds."""
        stopped = time.monotonic()
        self.client.close()
        self.process.stop()
        down = time.monotonic()
        self.process.start()
        self.client = self.process.client()
        started_at = time.time()
        self._send_everything()
        status = self.client.wait_programmed(timeout=60, after=started_at - 1)
        return {"stop_seconds": down - stopped, "restart_to_programmed_seconds": time.monotonic() - down,
                "bridges": status}

    def stop(self) -> None:
        self.loop.stop()
        self.client.close()
        self.process.stop()
        if self.tracker is not None:
            self.tracker.close()

    def cleanup(self) -> None:
        """Remove every flow and group this mode put on the node bridges (after stop(): the
        controller is gone, and fail-secure bridges would keep its flows forever)."""
        for bridge in self.wiring.bridges:
            for what in ("del-flows", "del-groups"):
                ROOT.run(["ovs-ofctl", "-O", "OpenFlow13", what, bridge.name])

    def activity(self) -> str | None:
        state = self.loop.activity()
        return f"{state} (OpenFlow to {len(self.wiring.bridges)} bridges)" if state else None

    def _sync(self) -> None:
        with self._lock:
            _, changed = self.tracker.update()
            wanted = self.tracker.by_service()
            if len(changed) > BATCH_THRESHOLD:
                # Many at once (a big apply): one full state, one barrier per bridge, instead of a
                # round trip per Service; the controller still touches only flows whose cookie changed.
                self._send_state()
                return
            for key in sorted(changed):
                if key in wanted:
                    self.client.upsert_service(*key, wanted[key], announcements=self.announcements)
                    self._sent[key] = wanted[key]
                elif key in self._sent:
                    self.client.delete_service(*key)
                    del self._sent[key]

    def rule_count(self) -> int:
        """Flows on the largest node bridge."""
        return max((b.get("flows", 0) for b in self.client.status().values()), default=0)

    def pod_added(self, pod: dict, sandbox: dict) -> None:
        entry = Pod(namespace=pod["metadata"]["namespace"], name=pod["metadata"]["name"], node=sandbox["node"],
                    ip=sandbox["ip"], mac=sandbox["mac"], ofport=sandbox["ofport"])
        with self._lock:
            self.wiring = self.wiring.with_pod(entry)
            self.client.add_pod(entry)
        sandbox["pod_key"] = (entry.namespace, entry.name)

    def pod_removed(self, sandbox: dict) -> None:
        if "pod_key" in sandbox:
            with self._lock:
                self.wiring = self.wiring.without_pod(*sandbox["pod_key"])
                self.client.remove_pod(*sandbox["pod_key"])

    def announce(self, old: Mapping[str, str], new: Mapping[str, str]) -> None:
        """The controller answers ARP for a LoadBalancer IP on the announcing node's uplink."""
        moved = {ip for ip in set(old) | set(new) if old.get(ip) != new.get(ip)}
        with self._lock:
            self.announcements = dict(new)
            for key, ports in self._sent.items():
                if any(ip in moved for port in ports for ip in port.load_balancer_ips):
                    self.client.upsert_service(*key, ports, announcements=self.announcements)
