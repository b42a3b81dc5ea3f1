"""Access to the emulated nodes, as components need it: names, a runner per node, node facts.

Components (data planes, DNS, the ingress controller) get a NodeAccess instead of the whole
Emulation: they can run programs in a node's namespaces, learn its addresses, and keep files in
their own corner of the cluster's run directory, and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..proxy.model import NodeInfo
from .hosts import CLUSTER_ENV
from .netns import netns_file
from .runner import NamespaceRunner


@dataclass(frozen=True)
class NodeAccess:
    cluster_id: str
    run_dir: Path
    node_names: tuple[str, ...]
    infos: dict[str, NodeInfo] = field(hash=False)
    pids: dict[str, int] = field(hash=False)        # a process in each node's namespaces

    def info(self, node: str) -> NodeInfo:
        return self.infos[node]

    def runner(self, node: str) -> NamespaceRunner:
        """Runs programs in the node's network and mount namespaces, marked as the cluster's."""
        return NamespaceRunner(pid=self.pids[node], env={CLUSTER_ENV: self.cluster_id})

    def netns(self, node: str) -> str:
        return netns_file(self.pids[node])

    def directory(self, *parts: str) -> Path:
        """A directory under the cluster's run directory (created)."""
        path = self.run_dir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path
