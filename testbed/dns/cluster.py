"""Cluster DNS in a running emulation: the coredns pods run Unbound, fed from the API objects.

As CoreDNS's kubernetes plugin watches the API server, a SyncLoop watches Services, EndpointSlices and
Pods, recomputes the records (records.py) and pushes the difference to every DNS pod's server. Clients
reach the servers the way pods do in a cluster: through the kube-dns Service VIP (10.96.0.10).

The component is the coredns containers' managed workload (testbed/components.py): the kubelet makes
the pods, and hands each coredns container to `start()`, which runs Unbound inside the pod.
"""
from __future__ import annotations

import threading

from ..components import ComponentContext, ManagedContainer
from ..sync import LoopComponent, SyncLoop
from .records import RecordSet, cluster_records
from .unbound import UnboundServer


class ClusterDNS(LoopComponent):
    name = "cluster-dns"

    def __init__(self, ctx: ComponentContext):
        self.api = ctx.api
        self.config = ctx.api.config
        self.servers: dict[int, UnboundServer] = {}
        self._lock = threading.Lock()
        self.loop = SyncLoop(self.name, ctx.api.store, {"Service", "EndpointSlice", "Pod"}, self._sync)

    # -- component ----------------------------------------------------------------------------
    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()
        with self._lock:
            for server in self.servers.values():
                server.stop()
            self.servers.clear()

    def records(self) -> RecordSet:
        # A snapshot under the lock, computed outside it: 10,000 Services take ~0.3 s to turn into
        # records and must not hold up the control plane (or the proxies) meanwhile.
        services, slices, pods = self.api.snapshot("Service", "EndpointSlice", "Pod")
        return cluster_records(services, slices, pods, domain=self.config.cluster_domain)

    def _sync(self) -> None:
        with self._lock:
            if not self.servers:
                return  # no DNS pod runs (yet): nothing to feed; a starting server loads everything
        records = self.records()
        with self._lock:
            for server in self.servers.values():
                server.sync(records)

    # -- managed workload: the coredns containers ------------------------------------------------
    def start_container(self, container: ManagedContainer) -> int:
        server = UnboundServer(container.directory / "unbound", container.runner,
                               domain=self.config.cluster_domain, service_cidr=self.config.service_cidr,
                               cluster_cidr=self.config.cluster_cidr)
        with self._lock:
            server.start(self.records())
            self.servers[server.pid] = server
        self.loop.trigger()  # catch up with anything that changed while it started
        return server.pid

    def stop_container(self, pid: int) -> None:
        with self._lock:
            server = self.servers.pop(pid, None)
        if server is not None:
            server.stop()

    def container_logs(self, pid: int) -> str:
        server = self.servers.get(pid)
        if server is None:
            return ""
        paths = [server.workdir / "unbound.stderr", server.log_path]
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())
