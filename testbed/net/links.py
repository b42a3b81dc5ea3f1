"""Link shaping as Mininet's TCLink gives it: bandwidth (HTB), delay, jitter and loss (netem).

A topology's link may carry a third element, `[node1, fabric, {bw: 100, delay: 5ms, loss: 1}]`
(bw in Mbit/s, delay and jitter with a unit, loss in percent, max_queue_size in packets): both
ends of that link get the same qdiscs, as TCLink configures both of its interfaces. The commands
are Mininet's TCIntf ones (mininet/link.py): an HTB root `5:` with class `5:1` at the rate, and a
netem qdisc `10:` under it (or at the root without a rate).

HTB is in every kernel the testbed meets; netem (sch_netem) is not: this machine's kernel has no
netem, so a link with delay, jitter or loss is refused with the reason, naming `testbed vm`
(Debian's kernel, which has it). Nothing is silently left unshaped.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import TestbedError

_TIME = re.compile(r"^\d+(\.\d+)?(us|ms|s)$")
KEYS = ("bw", "delay", "jitter", "loss", "max_queue_size")


@dataclass(frozen=True)
class LinkShape:
    bw: float | None = None            # Mbit/s
    delay: str | None = None           # "5ms"
    jitter: str | None = None          # "1ms"
    loss: float | None = None          # percent
    max_queue_size: int | None = None  # packets (netem limit)

    @property
    def needs_netem(self) -> bool:
        return bool(self.delay or self.jitter or self.loss or self.max_queue_size)

    def describe(self) -> str:
        parts = [f"{self.bw:g} Mbit/s" if self.bw else "", f"delay {self.delay}" if self.delay else "",
                 f"jitter {self.jitter}" if self.jitter else "", f"loss {self.loss:g}%" if self.loss else ""]
        return ", ".join(p for p in parts if p) or "unshaped"


def parse_shape(values: Mapping[str, Any], where: str = "link") -> LinkShape:
    """A link's parameter mapping -> LinkShape; every bad key or value is an error naming it."""
    unknown = [k for k in values if k not in KEYS]
    if unknown:
        raise TestbedError(f"{where}: unknown link parameter {unknown[0]!r} (known: {', '.join(KEYS)})")
    bw = values.get("bw")
    if bw is not None and (not isinstance(bw, (int, float)) or isinstance(bw, bool) or bw <= 0 or bw > 100_000):
        raise TestbedError(f"{where}: bw: {bw!r}: a bandwidth in Mbit/s, more than 0 and at most 100000")
    for key in ("delay", "jitter"):
        value = values.get(key)
        if value is not None and not _TIME.match(str(value)):
            raise TestbedError(f"{where}: {key}: {value!r}: a time such as 5ms, 200us or 1s")
    if values.get("jitter") and not values.get("delay"):
        raise TestbedError(f"{where}: jitter needs a delay")
    loss = values.get("loss")
    if loss is not None and (not isinstance(loss, (int, float)) or isinstance(loss, bool) or not 0 <= loss <= 100):
        raise TestbedError(f"{where}: loss: {loss!r}: a percentage from 0 to 100")
    queue = values.get("max_queue_size")
    if queue is not None and (not isinstance(queue, int) or isinstance(queue, bool) or queue < 1):
        raise TestbedError(f"{where}: max_queue_size: {queue!r}: a number of packets, at least 1")
    return LinkShape(bw=float(bw) if bw is not None else None, delay=values.get("delay"), jitter=values.get("jitter"),
                     loss=float(loss) if loss is not None else None, max_queue_size=queue)


def tc_commands(interface: str, shape: LinkShape) -> list[str]:
    """The tc commands Mininet's TCIntf.config runs for such a link end (pure)."""
    dev = shlex.quote(interface)
    commands = [f"tc qdisc del dev {dev} root 2>/dev/null; true"]
    parent = "root"
    if shape.bw:
        commands += [f"tc qdisc add dev {dev} root handle 5:0 htb default 1",
                     f"tc class add dev {dev} parent 5:0 classid 5:1 htb rate {shape.bw:g}Mbit burst 15k"]
        parent = "parent 5:1"
    if shape.needs_netem:
        netem = ""
        if shape.delay:
            netem += f" delay {shape.delay}" + (f" {shape.jitter}" if shape.jitter else "")
        if shape.loss:
            netem += f" loss {shape.loss:g}%"
        if shape.max_queue_size:
            netem += f" limit {shape.max_queue_size}"
        commands.append(f"tc qdisc add dev {dev} {parent} handle 10: netem{netem}")
    return commands


def missing_support(shape: LinkShape, has_module=None) -> str | None:
    """Why this kernel cannot shape a link so (None: it can)."""
    if has_module is None:
        from .kernel import module_loaded_or_loadable as has_module
    if shape.bw and not has_module("sch_htb"):
        return "bw needs the HTB qdisc (sch_htb), which this kernel lacks"
    if shape.needs_netem and not has_module("sch_netem"):
        return ("delay, jitter, loss and max_queue_size need netem (sch_netem), which this kernel lacks: run under "
                "`testbed vm -- ...` (Debian's kernel has it), or use bw alone")
    return None


def link_interfaces(net, end_a: str, end_b: str) -> list:
    """The two Mininet interfaces of the link between two emulation nodes (bridges, switches)."""
    for link in net.links:
        names = {link.intf1.node.name, link.intf2.node.name}
        if names == {end_a, end_b}:
            return [link.intf1, link.intf2]
    raise TestbedError(f"no link between {end_a} and {end_b}")


def apply_shape(interfaces, shape: LinkShape) -> None:
    """Shape both ends of a link (each command runs in its interface's own namespace)."""
    reason = missing_support(shape)
    if reason:
        raise TestbedError(reason)
    for intf in interfaces:
        output = intf.node.cmd(" && ".join(tc_commands(intf.name, shape)) + " && echo __ok__")
        if "__ok__" not in output:
            raise TestbedError(f"shaping {intf.name} ({shape.describe()}) failed: {output.strip()}")


def shape_topology_links(emulation) -> None:
    """Apply the topology's shaped links to a started emulation: a node's link is its bridge's
    uplink; a switch-to-switch link is the fabric veth pair between them."""
    from . import addressing
    prefix = addressing.ROOT_PREFIX
    for a, b, shape in emulation.topology.link_shapes:
        ends = [addressing.bridge_name(end) if end in emulation.topology.nodes else f"{prefix}-{end}" for end in (a, b)]
        apply_shape(link_interfaces(emulation.net, *ends), shape)
