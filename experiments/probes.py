"""probes: every scapy probe in every mode, as tidy samples (what `testbed probe ...` shows, tabulated).

The articles' myapp manifests (Deployment, ClusterIP, NodePort 32223 and LoadBalancer Services) on
the default cluster; then: a SYN from the client pod to myapp-svc's VIP captured on both sides
(`syn_answered`, `vip_rewritten_back`, `source_preserved`, `syn_rtt_us`, with the endpoint that
served and the addresses it saw), NodePort and LoadBalancer SYNs from the external host, ARP for
every ClusterIP and LoadBalancer IP from the external host (`arp_answered`: only announced
LoadBalancer IPs should be), DNS queries with their timing (`dns_rtt_us`), and the rules or flows a
connection met (`trace_steps`, with the matched rules in a column).

    python experiments/probes.py --modes iptables,iptables-legacy,sdn
"""
from __future__ import annotations

import sys
from pathlib import Path

from testbed import probes
from testbed.experiments.common import mode_labels

NAME = "probes"
DESCRIPTION = "scapy probes per mode: SYN rewrite and reply, NodePort source, ARP answers, DNS timing, rule trace"
GRID = {"mode": mode_labels()}
QUICK: dict = {}
REPEATS = 1
MANIFEST = Path(__file__).resolve().parent.parent / "examples" / "myapp.yaml"
NAMES = ["myapp-svc.default.svc.cluster.local", "kubernetes.default.svc.cluster.local", "nothing.default.svc.cluster.local"]


def setup(point, ctx):
    cluster = ctx.cluster_for(point["mode"], seed=ctx.repeat + 1)
    cluster.start()
    cluster.apply(str(MANIFEST))
    return cluster


def measure(cluster, point, ctx):
    for name, run in (("syn", lambda: [probes.syn(cluster, "myapp-svc")]),
                      ("nodeport", lambda: probes.nodeport(cluster, "myapp-svc-lb")),
                      ("arp", lambda: probes.arp(cluster)),
                      ("dns", lambda: probes.dns(cluster, NAMES, count=ctx.pick(20, 5))),
                      ("trace", lambda: [probes.trace(cluster, "myapp-svc")])):
        ctx.note(name)
        for row in probes.to_samples(run(), cluster, name, point["mode"]):
            yield {**row, "probe": name}


def teardown(cluster):
    cluster.stop()


if __name__ == "__main__":
    from testbed.experiments import script_main
    sys.exit(script_main(NAME, sys.argv[1:]))
