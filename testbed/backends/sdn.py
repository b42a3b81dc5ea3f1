"""SDN mode: an OS-Ken (Ryu API) OpenFlow 1.3 controller does the Service work inside Open vSwitch.

The pipeline (testbed/sdn/pipeline.py, docs/sdn-pipeline.md) is computed purely from the Service
ports and the wiring; the controller process sends it to every node bridge. `testbed render
openflow` prints one bridge's flows and groups in ovs-ofctl syntax, for the pods the control plane
has placed, with the switch ports the emulation gives them (pods start in name order on each node).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from ..net import addressing
from ..proxy.backend import Backend, ClusterLayout, register
from ..proxy.loadbalancer import announcements
from ..proxy.model import NodeInfo, ServicePort

ALGORITHMS = ("random", "rr", "wrr", "lc", "wlc", "sh", "dh", "sed", "nq", "maglev")


def layout_wiring(ports: Sequence[ServicePort], layout: ClusterLayout):
    """The SDN wiring for a layout: bridges for its nodes, its pods on ports 10, 11, ... of their
    node's bridge in (namespace, name) order, and the LoadBalancer announcements."""
    from ..sdn.wiring import Pod, Wiring
    names = [n.name for n in layout.nodes]
    wiring = Wiring.for_nodes(names)
    slots: dict[str, int] = defaultdict(int)
    for pod in sorted(layout.pods, key=lambda p: (p.namespace, p.name)):
        if pod.node not in names:
            continue
        slots[pod.node] += 1
        wiring = wiring.with_pod(Pod(pod.namespace, pod.name, pod.node, pod.ip, addressing.pod_mac(pod.ip),
                                         addressing.FIRST_POD_PORT + slots[pod.node]))
    return wiring.with_announcements(announcements(ports, names))


def render(ports: Sequence[ServicePort], node: NodeInfo, layout: ClusterLayout | None = None) -> str:
    from ..sdn.pipeline import render_openflow
    layout = layout or ClusterLayout.single(node)
    return render_openflow(ports, layout_wiring(ports, layout), node.name)


def _make_dataplane(ctx, backend):
    from ..sdn.dataplane import SdnDataPlane
    return SdnDataPlane(ctx, backend)


register(Backend(
    mode="sdn",
    summary="an OS-Ken (Ryu API) OpenFlow 1.3 controller, started per cluster on loopback, programs every node "
            "bridge (fail_mode secure): conntrack NAT for ClusterIPs, NodePorts, LoadBalancer and external IPs, "
            "ARP answers, traffic policies, hairpin, affinity (`learn`), reject without endpoints; algorithms per "
            "Service with `testbed.io/lb-algorithm` (weights in `testbed.io/lb-weights`); "
            "[docs/sdn-pipeline.md](docs/sdn-pipeline.md)",
    render=render,
    render_format="openflow",
    make_dataplane=_make_dataplane,
    required_tools=("ovs-ofctl",),
    # Nodes keep no Service rules: they route the service CIDR on-link, so the node's own traffic
    # to a VIP reaches the bridge, whose pipeline answers ARP for it.
    node_setup=lambda node, options: [f"ip route add {node.service_cidr} dev eth0"],
    node_teardown=lambda node, options: [f"ip route del {node.service_cidr} dev eth0"],
    algorithms=ALGORITHMS,
    needs_openflow=True,
    describe=lambda options: "sdn (OS-Ken controller, OpenFlow 1.3)",
    state_command="ovs-ofctl -O OpenFlow13 dump-flows {bridge}",
))
