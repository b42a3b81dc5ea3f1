"""Cluster DNS in a running emulation: the coredns pods run Unbound, fed from the control plane.

As CoreDNS's kubernetes plugin watches the API server, a SyncLoop watches Services, EndpointSlices and
Pods, recomputes the records (records.py) and pushes the difference to every DNS pod's server. Clients
reach the servers the way pods do in a cluster: through the kube-dns Service VIP (10.96.0.10).
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..net.hosts import CLUSTER_ENV
from ..net.runner import NamespaceRunner
from ..sync import SyncLoop
from .records import RecordSet, cluster_records
from .unbound import UnboundServer

if TYPE_CHECKING:
    from ..controlplane import ControlPlane


class ClusterDNS:
    def __init__(self, cp: "ControlPlane", emulation):
        self.cp = cp
        self.emulation = emulation
        self.servers: dict[int, UnboundServer] = {}
        self._lock = threading.Lock()
        self.loop = SyncLoop("cluster-dns", cp.store, {"Service", "EndpointSlice", "Pod"}, self._sync)
        self.errors = self.loop.errors

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()
        with self._lock:
            for server in self.servers.values():
                server.stop()
            self.servers.clear()

    def synced(self) -> bool:
        return self.loop.synced()

    def records(self) -> RecordSet:
        # Snapshot under the lock, compute outside it: stored objects are replaced, never changed
        # in place, so the lists stay consistent; 10,000 Services take ~0.3 s to turn into records
        # and must not hold up the control plane (or the proxies) meanwhile.
        with self.cp.lock:
            services, slices, pods = (self.cp.store.list(kind) for kind in ("Service", "EndpointSlice", "Pod"))
        return cluster_records(services, slices, pods, domain=self.cp.config.cluster_domain)

    def _sync(self) -> None:
        with self._lock:
            if not self.servers:
                return  # no DNS pod runs (yet): nothing to feed; a starting server loads everything
        records = self.records()
        with self._lock:
            for server in self.servers.values():
                server.sync(records)

    def start_server(self, runtime) -> int:
        """Start Unbound in a DNS pod (called by the kubelet); returns its pid."""
        server = UnboundServer(runtime.dir / "unbound",
                               NamespaceRunner(pid=runtime.host.pid, env={CLUSTER_ENV: self.emulation.cluster_id}),
                               domain=self.cp.config.cluster_domain, service_cidr=self.cp.config.service_cidr,
                               cluster_cidr=self.cp.config.cluster_cidr)
        with self._lock:
            server.start(self.records())
            self.servers[server.pid] = server
        self.loop.trigger()  # catch up with anything that changed while it started
        return server.pid

    def stop_server(self, pid: int | None) -> None:
        with self._lock:
            server = self.servers.pop(pid, None)
        if server is not None:
            server.stop()

    def server_log(self, pid: int | None) -> str:
        server = self.servers.get(pid)
        if server is None:
            return ""
        paths = [server.workdir / "unbound.stderr", server.log_path]
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())
