"""SDN mode under failure: established connections across a controller restart (target: none lost),
and the resync after ovs-vswitchd restarts (bridges come back empty; the controller reprograms them)."""
from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

from testbed.experiments.common import algorithm_annotations, cluster_for, data_plane_label, deployment, selectorless_services

NAME = "sdn-restart"
DESCRIPTION = "SDN: connections kept across a controller restart; resync time after ovs-vswitchd restarts"
GRID = {"event": ["controller", "vswitchd"], "algorithm": ["random", "rr"], "connections": [20], "seconds": [8.0],
        "services": [0]}
REPEATS = 1
KEEPALIVE = Path(__file__).resolve().parent.parent / "testbed" / "workloads" / "keepalive.py"


def run(point: dict, repeat: int) -> list[dict]:
    annotations = algorithm_annotations("sdn", point["algorithm"])
    with cluster_for("sdn", seed=repeat + 1) as cluster:
        if point["services"]:  # load the bridges with that many more Services (rules only, no pods;
            # in their own namespace, so the test pods' environment stays small)
            cluster.apply(selectorless_services(point["services"], namespace="scale"))
        cluster.apply(deployment("hold", 3, annotations=annotations))
        label = data_plane_label(cluster)
        vip = cluster.get("svc", "hold")["spec"]["clusterIP"]
        client = cluster.client()
        out = cluster.emulation.run_dir / "keepalive.json"
        argv = [sys.executable, "-I", "-S", str(KEEPALIVE), vip, "80", str(point["connections"]),
                str(point["seconds"]), "0.2"]
        client.cmd(" ".join(shlex.quote(a) for a in argv) + f" > {shlex.quote(str(out))} 2>&1 &")
        time.sleep(2.0)
        dataplane = cluster.emulation.dataplane
        if point["event"] == "controller":
            timing = dataplane.restart_controller()
            resync = {"restart_to_programmed_seconds": timing["restart_to_programmed_seconds"]}
        else:
            restarted = cluster.emulation.ovs.restart_vswitchd()
            status = dataplane.client.wait_programmed(timeout=60, after=restarted)
            # from the moment ovs-vswitchd was started again to the last bridge's resync
            resync = {"restart_to_programmed_seconds": max(b["synced_at"] for b in status.values()) - restarted,
                      "resync_seconds_max": max(b["last_resync"]["seconds"] for b in status.values()),
                      "flows_reinstalled": sum(b["last_resync"]["flows_added"] for b in status.values())}
        deadline = time.monotonic() + point["seconds"] + 10
        while time.monotonic() < deadline and not out.exists() or not out.read_text().strip():
            time.sleep(0.2)
        time.sleep(0.5)
        result = json.loads(out.read_text().strip().splitlines()[-1])
        flows = dataplane.rule_count()
    return [{**label, **resync, "flows_per_bridge": flows, "opened": result["opened"], "lost": result["lost"],
             "requests": result["requests"], "new_connections_ok": result["new_ok"],
             "new_connections_failed": result["new_failed"]}]


def report(frame, out_dir: Path) -> list[str]:
    lines = ["| event | algorithm | Services | flows/bridge | connections held | lost | restart to programmed s "
             "| new conns ok / failed |", "|---|---|---|---|---|---|---|---|"]
    for _, r in frame.iterrows():
        lines.append(f"| {r['event']} | {r['algorithm']} | {r['services']} | {r['flows_per_bridge']} "
                     f"| {r['opened']} | {r['lost']} | "
                     f"{r['restart_to_programmed_seconds']:.2f} | {r['new_connections_ok']} / {r['new_connections_failed']} |")
    return lines
