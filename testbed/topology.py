"""Topologies: plain graphs of names, read from topologies/<name>.yaml (or any YAML path).

A topology names the cluster's nodes, the fabric switches between them and where the external host
attaches. Turning it into namespaces, bridges and links is the emulation's job (net/emulation.py), so a
topology can be loaded and checked without root.

    name: default
    nodes: [node1, node2, node3]
    switches: [fabric]
    links: [[node1, fabric], [node2, fabric], [node3, fabric]]
    external: fabric

A link may carry TCLink-style parameters as a third element, `[node1, fabric, {bw: 100, delay: 5ms,
loss: 1}]` (net/links.py: HTB for bw, netem for the rest; refused where the kernel lacks them).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import TestbedError
from .validation import is_dns1123_label

TOPOLOGY_DIR = Path(__file__).resolve().parent.parent / "topologies"


@dataclass(frozen=True)
class Topology:
    name: str
    nodes: tuple[str, ...]
    switches: tuple[str, ...]
    links: tuple[tuple[str, str], ...]
    external: str
    description: str = ""
    link_shapes: tuple = ()        # (end, end, net.links.LinkShape) for the links with parameters

    def uplink_of(self, node: str) -> str:
        """The switch a node's bridge connects to."""
        return next(b if a == node else a for a, b in self.links if node in (a, b))

    def switch_links(self) -> list[tuple[str, str]]:
        return [(a, b) for a, b in self.links if a in self.switches and b in self.switches]


def available() -> list[str]:
    return sorted(p.stem for p in TOPOLOGY_DIR.glob("*.yaml"))


def load_topology(name_or_path: str = "default") -> Topology:
    path = Path(name_or_path)
    if not path.suffix:
        path = TOPOLOGY_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise TestbedError(f"unknown topology {name_or_path!r}: available: {', '.join(available())} "
                           f"(or a path to a YAML file)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise TestbedError(f"{path}: invalid YAML: {err}") from None
    return parse_topology(data, str(path))


def parse_topology(data: dict, source: str = "<topology>") -> Topology:
    def fail(message: str):
        raise TestbedError(f"{source}: {message}")
    nodes = tuple(data.get("nodes") or ())
    switches = tuple(data.get("switches") or ())
    from .net.links import parse_shape
    raw_links = [list(link) if isinstance(link, (list, tuple)) else [link] for link in data.get("links") or ()]
    shapes = tuple((link[0], link[1], parse_shape(link[2], f"{source}: links: {link[:2]}"))
                   for link in raw_links if len(link) == 3 and isinstance(link[2], dict))
    links = tuple(tuple(link[:2]) if len(link) == 3 and isinstance(link[2], dict) else tuple(link) for link in raw_links)
    if not nodes:
        fail("nodes: Required value: a topology needs at least one node")
    for name in nodes + switches:
        if not is_dns1123_label(name) or len(name) > 12:
            fail(f"{name!r}: names must be DNS-1123 labels of at most 12 characters (they name interfaces)")
    if len(set(nodes + switches)) != len(nodes) + len(switches):
        fail("node and switch names must be unique")
    for link in links:
        if len(link) != 2 or not all(end in nodes + switches for end in link):
            fail(f"links: {list(link)}: a link joins two known nodes or switches")
    for node in nodes:
        uplinks = [link for link in links if node in link]
        if len(uplinks) != 1 or not any(end in switches for end in uplinks[0] if end != node):
            fail(f"node {node}: must have exactly one link, to a switch")
    external = data.get("external")
    if external not in switches:
        fail(f"external: {external!r}: must name the switch the external host attaches to")
    return Topology(name=data.get("name") or source, nodes=nodes, switches=switches, links=links,
                    external=external, description=data.get("description", ""), link_shapes=shapes)
