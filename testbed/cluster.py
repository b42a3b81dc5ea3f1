"""The Python API: `with Cluster(topo=..., proxy_mode=...) as c:`.

A Cluster is a control plane (always) plus, with `network=True` (the default), an emulated network that
carries real traffic: Mininet namespaces for nodes and pods, Open vSwitch bridges, real workload
processes, cluster DNS and the chosen Service data plane. With `network=False` it is the control plane
alone (pods are run by the hollow kubelet), which needs no root and starts in milliseconds.
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from .controlplane import ClusterConfig, ControlPlane
from .errors import ArgumentError, ManifestError, Problem, TestbedError, in_document_order
from .kinds import KINDS, lookup_kind
from .manifests import from_source_with_problems
from .topology import Topology, load_topology

PROXY_MODES = ("userspace", "iptables", "ipvs", "nftables", "sdn")


def resolve_kind(kind: str) -> str:
    if not isinstance(kind, str):
        raise ArgumentError(f"a kind is a string such as \"service\", not a {type(kind).__name__}")
    info = KINDS.get(kind) or lookup_kind(kind)
    if info is None:
        raise TestbedError(f'the server doesn\'t have a resource type "{kind}"')
    return info.kind


class Cluster:
    def __init__(self, topo: str | Topology = "default", proxy_mode: str = "iptables", *,
                 network: bool = True, seed: int | None = None, cluster_dns: bool = True, **network_options: Any):
        if proxy_mode not in PROXY_MODES:
            raise TestbedError(f"unknown proxy mode {proxy_mode!r}: choose one of {', '.join(PROXY_MODES)}")
        self.topology = topo if isinstance(topo, Topology) else load_topology(topo)
        self.proxy_mode = proxy_mode
        self.network = network
        config = ClusterConfig.for_nodes(list(self.topology.nodes), seed=seed, cluster_dns=cluster_dns)
        self.control_plane = ControlPlane(config, hollow_kubelet=not network)
        self.emulation = None
        self._network_options = network_options
        self._previous_sigterm = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "Cluster":
        if self.network and self.emulation is None:
            self._handle_termination()
            from .net.emulation import Emulation
            self.emulation = Emulation(self.control_plane, self.topology, self.proxy_mode, **self._network_options)
            try:
                self.emulation.start()
            except BaseException:
                self.emulation.stop()
                self.emulation = None
                raise
        return self

    def stop(self) -> None:
        if self.emulation is not None:
            self.emulation.stop()
            self.emulation = None
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def _handle_termination(self) -> None:
        """A script killed with SIGTERM (the default of `kill`) would die without leaving its `with`
        block, stranding namespaces and processes. Unless the program handles SIGTERM itself, turn it
        into SystemExit so the teardown runs."""
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            def terminate(signum, frame):
                raise SystemExit(128 + signum)
            self._previous_sigterm = signal.signal(signal.SIGTERM, terminate)

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- objects ---------------------------------------------------------------------------
    def apply(self, source: str | Path | dict | list, field_validation: str = "Warn") -> list[str]:
        """Create or update objects from a path, YAML/JSON text, or dicts; all or nothing.

        `field_validation` is the API server's (kubectl's --validate): unknown fields are a
        ManifestWarning ("Warn"), an error ("Strict") or ignored ("Ignore")."""
        documents, problems = from_source_with_problems(source)
        if problems:   # what cannot be read, and every problem of what can
            raise ManifestError(in_document_order(problems + self.control_plane.validate(documents, field_validation)))
        if not documents:
            if isinstance(source, (list, tuple)) and not source:
                return []   # nothing, programmatically (an experiment's 0 Services)
            raise TestbedError("no objects passed to apply")   # kubectl's words for an empty file or text
        lines = self.control_plane.apply(documents, field_validation)
        self._settle()
        return lines

    def validate(self, source, field_validation: str = "Warn") -> list[Problem]:
        """Every problem an apply of `source` would be refused for (unreadable documents included)."""
        documents, problems = from_source_with_problems(source)
        return in_document_order(problems + self.control_plane.validate(documents, field_validation))

    def delete(self, kind: str, name: str, namespace: str = "default") -> str:
        line = self.control_plane.delete(resolve_kind(kind), name, namespace)
        self._settle()
        return line

    def get(self, kind: str, name: str | None = None, namespace: str | None = "default"):
        """Objects as `kubectl get -o json` shows them; a list when no name is given
        (namespace=None: all namespaces)."""
        return self.control_plane.get(resolve_kind(kind), name, namespace)

    def scale(self, kind: str, name: str, replicas: int, namespace: str = "default") -> str:
        line = self.control_plane.scale(resolve_kind(kind), name, replicas, namespace)
        self._settle()
        return line

    def set_image(self, kind: str, name: str, images: dict[str, str], namespace: str = "default",
                  change_cause: str | None = None) -> str:
        line = self.control_plane.set_image(resolve_kind(kind), name, images, namespace, change_cause)
        self._settle()
        return line

    def rollout_history(self, kind: str, name: str, namespace: str = "default") -> list[tuple[int, str]]:
        return self.control_plane.rollout_history(resolve_kind(kind), name, namespace)

    def rollout_undo(self, kind: str, name: str, namespace: str = "default", to_revision: int | None = None) -> str:
        line = self.control_plane.rollout_undo(resolve_kind(kind), name, namespace, to_revision)
        self._settle()
        return line

    def _settle(self) -> None:
        """With a network, wait (bounded) until pods run and the data plane reflects the change."""
        if self.emulation is not None:
            self.emulation.settle()

    # -- the network -----------------------------------------------------------------------
    def _emulation(self):
        if self.emulation is None:
            raise TestbedError("this cluster has no network (network=False, or not started: use `with Cluster(...)`)")
        return self.emulation

    def nodes(self) -> list:
        return self._emulation().node_hosts()

    def node(self, name: str):
        return self._emulation().node_host(name)

    def pod(self, name: str, namespace: str = "default"):
        return self._emulation().pod_host(namespace, name)

    def client(self):
        """A client pod in the default namespace, with cluster DNS and Service environment variables."""
        return self._emulation().client_pod()

    def external(self):
        """A host outside the cluster, in front of the nodes, without cluster DNS."""
        return self._emulation().external_host()

    def exec(self, pod: str, command: str, namespace: str = "default") -> str:
        return self.pod(pod, namespace).cmd(command)

    def logs(self, pod: str, namespace: str = "default") -> str:
        return self._emulation().pod_logs(namespace, pod)

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until every pod is Ready and every data plane has synced."""
        if self.emulation is not None:
            self.emulation.wait_ready(timeout)
