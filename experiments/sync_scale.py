"""sync-scale: how long a data plane takes to take in N Services, and one change among them (3 nodes).

Selector-less Services with two endpoints each (no pods behind them: this measures the rules, not
the pods), applied at once to the default 3-node cluster, every node syncing concurrently. Samples:
`full_sync_s` (all syncs the apply caused), `apply_to_programmed_s`, `change_sync_s` (one more
Service), `rules` (rules or flows per node). proxy-scale measures the same on one node with real
endpoints and traffic.

    python experiments/sync_scale.py --modes iptables-legacy,sdn --services 1,1000
"""
from __future__ import annotations

import sys
import time

from testbed.experiments.common import mode_labels, selectorless_services
from testbed.results import sample

NAME = "sync-scale"
DESCRIPTION = "data-plane sync time at N Services (full, and one Service changed) per mode, 3 nodes"
GRID = {"mode": mode_labels(), "services": [1, 100, 1000]}
QUICK = {"services": [1, 100]}
REPEATS = 1


def _sync_time_of(cluster, action) -> tuple[float, float]:
    history = cluster.emulation.dataplane.loop.sync_seconds
    before = len(history)
    started = time.monotonic()
    action()
    return sum(history[before:]), time.monotonic() - started


def setup(point, ctx):
    cluster = ctx.cluster_for(point["mode"], cluster_dns=False)
    cluster.start()
    return cluster


def measure(cluster, point, ctx):
    count = point["services"]
    full, wall = _sync_time_of(cluster, lambda: cluster.apply(selectorless_services(count)))
    change, change_wall = _sync_time_of(cluster, lambda: cluster.apply(selectorless_services(1, offset=count)))
    yield sample("full_sync_s", full, "s")
    yield sample("apply_to_programmed_s", wall, "s")
    yield sample("change_sync_s", change, "s", target="add")
    yield sample("change_apply_to_programmed_s", change_wall, "s", target="add")
    yield sample("rules", cluster.emulation.dataplane.rule_count(), "rules")


def teardown(cluster):
    cluster.stop()


if __name__ == "__main__":
    from testbed.experiments import script_main
    sys.exit(script_main(NAME, sys.argv[1:]))
