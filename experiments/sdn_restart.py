"""sdn-restart: an OpenFlow data plane under failure. Established connections across a controller
restart (target: none lost), and the resync after ovs-vswitchd restarts (the userspace datapath
comes back empty; the controller reprograms every bridge).

20 keep-alive connections send a request every 0.2 s (2 s timeout) while the event happens; a side
thread opens a new connection every 50 ms. Optionally the bridges carry N more Services (rules
only, in their own namespace). Samples: `lost`, `opened`, `requests`, `new_connections_ok` /
`_failed`, `restart_to_programmed_s`, `resync_s_max`, `flows_reinstalled`, `flows_per_bridge`.
Runs in the modes whose backend programs the bridges over OpenFlow (the registry says which).

    python experiments/sdn_restart.py --events controller --services 0,10000
"""
from __future__ import annotations

import json
import sys
import time

from testbed.experiments.common import (KEEPALIVE, algorithm_annotations, deployment, mode_labels, run_workload,
                                        selectorless_services)
from testbed.proxy.backend import variant
from testbed.results import sample

NAME = "sdn-restart"
DESCRIPTION = "OpenFlow modes: connections kept across a controller restart; resync time after ovs-vswitchd restarts"
GRID = {"mode": [m for m in mode_labels() if variant(m)[0].needs_openflow], "event": ["controller", "vswitchd"],
        "algorithm": ["random", "rr"], "connections": [20], "seconds": [8.0], "services": [0]}
QUICK = {"algorithm": ["random"], "seconds": [5.0]}
REPEATS = 1


def setup(point, ctx):
    cluster = ctx.cluster_for(point["mode"], seed=ctx.repeat + 1)
    cluster.start()
    if point["services"]:
        ctx.note(f"loading {point['services']} Services")
        cluster.apply(selectorless_services(point["services"], namespace="scale"))
    cluster.apply(deployment("hold", 3, annotations=algorithm_annotations(point["mode"], point["algorithm"])))
    return cluster


def measure(cluster, point, ctx):
    vip = cluster.get("svc", "hold")["spec"]["clusterIP"]
    out = cluster.emulation.run_dir / "keepalive.json"
    run_workload(cluster.client(), KEEPALIVE, vip, 80, point["connections"], point["seconds"], 0.2, background_to=out)
    time.sleep(2.0)
    dataplane = cluster.emulation.dataplane
    ctx.note(f"restarting {point['event']}")
    if point["event"] == "controller":
        yield sample("restart_to_programmed_s", dataplane.restart_controller()["restart_to_programmed_seconds"], "s")
    else:
        restarted = cluster.emulation.ovs.restart_vswitchd()
        status = dataplane.client.wait_programmed(timeout=60, after=restarted)
        yield sample("restart_to_programmed_s", max(b["synced_at"] for b in status.values()) - restarted, "s")
        yield sample("resync_s_max", max(b["last_resync"]["seconds"] for b in status.values()), "s")
        yield sample("flows_reinstalled", sum(b["last_resync"]["flows_added"] for b in status.values()), "flows")
    deadline = time.monotonic() + point["seconds"] + 10
    while time.monotonic() < deadline and (not out.exists() or not out.read_text().strip()):
        time.sleep(0.2)
    time.sleep(0.5)
    result = json.loads(out.read_text().strip().splitlines()[-1])
    yield sample("flows_per_bridge", dataplane.rule_count(), "flows")
    for metric, key in (("opened", "opened"), ("lost", "lost"), ("requests", "requests"),
                        ("new_connections_ok", "new_ok"), ("new_connections_failed", "new_failed")):
        yield sample(metric, result[key], "connections" if metric != "requests" else "requests", target="vip")


def teardown(cluster):
    cluster.stop()


if __name__ == "__main__":
    from testbed.experiments import script_main
    sys.exit(script_main(NAME, sys.argv[1:]))
