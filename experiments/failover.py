"""failover: a pod deleted under steady load. How many requests fail, and how long until none do.

A Deployment of 3 replicas behind a Service; a client pod opens one short connection (one GET,
1 s timeout) every INTERVAL seconds for SECONDS. After a quarter of that time the experiment
deletes the pod that served the most recent request (`kubectl delete pod`: the kubelet stops it,
the EndpointSlice controller drops it, the data plane syncs; the ReplicaSet starts a replacement).
Samples: `errors` (failed requests from the deletion on), `recovery_s` (from the deletion to the
last failed request; 0 when none failed), `answered_by_deleted` (requests the deleted pod still
answered after the deletion began), `requests`, `delete_s` (the delete call until everything
settled).

    python experiments/failover.py --modes iptables,sdn
"""
from __future__ import annotations

import json
import sys
import time

from testbed.experiments.common import WORKLOADS, deployment, mode_labels, run_workload
from testbed.results import sample

NAME = "failover"
DESCRIPTION = "a pod deleted under steady load: failed requests and time to recovery, per mode"
GRID = {"mode": mode_labels(), "interval": [0.02], "seconds": [8.0]}
QUICK = {"seconds": [5.0]}
REPEATS = 1


def setup(point, ctx):
    cluster = ctx.cluster_for(point["mode"], seed=ctx.repeat + 1, cluster_dns=False)
    cluster.start()
    cluster.apply(deployment("web", 3))
    cluster.wait_ready(60)
    return cluster


def failures_after(attempts: list, since: float) -> tuple[int, float, int]:
    """(failed attempts from `since` on, seconds from `since` to the last failure, attempts) (pure)."""
    after = [a for a in attempts if a[0] >= since]
    failed = [a for a in after if not a[1]]
    return len(failed), (failed[-1][0] - since) if failed else 0.0, len(after)


def measure(cluster, point, ctx):
    vip = cluster.get("svc", "web")["spec"]["clusterIP"]
    out = cluster.emulation.run_dir / "steady-load.json"
    client = cluster.client()
    run_workload(client, WORKLOADS / "steady_load.py", vip, 80, point["seconds"], point["interval"], background_to=out)
    time.sleep(point["seconds"] / 4)
    victim = client.cmd(f"curl -s -m 1 http://{vip}/hostname.html").strip()
    pods = {p["metadata"]["name"] for p in cluster.get("pods")}
    if victim not in pods:
        victim = sorted(p for p in pods if p.startswith("web-"))[0]
    ctx.note(f"deleting {victim}")
    deleted_at = time.time()
    cluster.delete("pod", victim)
    yield sample("delete_s", time.time() - deleted_at, "s")
    deadline = time.monotonic() + point["seconds"] + 10
    while time.monotonic() < deadline and (not out.exists() or not out.read_text().strip()):
        time.sleep(0.2)
    attempts = json.loads(out.read_text().strip().splitlines()[-1])["attempts"]
    errors, recovery, requests = failures_after(attempts, deleted_at)
    yield sample("errors", errors, "requests", target="vip", victim=victim)
    yield sample("recovery_s", recovery, "s", target="vip", victim=victim)
    yield sample("requests", requests, "requests", target="vip", victim=victim)
    yield sample("answered_by_deleted", sum(1 for a in attempts if a[0] >= deleted_at and a[2] == victim), "requests",
                 target="vip", victim=victim)


def teardown(cluster):
    cluster.stop()


if __name__ == "__main__":
    from testbed.experiments import script_main
    sys.exit(script_main(NAME, sys.argv[1:]))
