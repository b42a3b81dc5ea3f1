"""Benchmark: 10,000 Services with selectors, per proxy mode (issue 7's "done when").

For each mode (sdn, iptables with the nft backend, iptables with the legacy backend):
1. bring up the default cluster (3 nodes) without cluster DNS, run a Deployment `web` (3 pods);
2. apply 10,000 Services selecting app=web (3 endpoints each: the EndpointSlice controller fills
   them) in one apply, and time it until every node's data plane is programmed (`apply` returns
   when every component has caught up);
3. start a probe pod with `enableServiceLinks: false` (with Service links its environment would
   hold ~70,000 variables, too many to exec, as in Kubernetes) and time it until Ready;
4. from the probe pod, time TCP connects to the first and to the last created Service's VIP
   (p50, p99 over COUNT connects each).

The web pods start before the Services exist, so their environment stays small. Results go to
results/bench-scale-10k-<stamp>.json with the datapath, backend and kernel recorded.

    sudo .venv/bin/python benchmarks/scale_10k.py [--services 10000] [--modes sdn,iptables,iptables-legacy] [--count 500]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import write_result  # noqa: E402
from testbed.experiments.common import WORKLOADS, cluster_for, data_plane_label, run_workload  # noqa: E402

WEB = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
       "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}}
PROBE = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"},
         "spec": {"enableServiceLinks": False,
                  "containers": [{"name": "probe", "image": "busybox", "command": ["sleep", "infinity"]}]}}


def services(count: int) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"scale-{i}"},
             "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}} for i in range(count)]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def connect_times(pod, vip: str, count: int) -> dict:
    """COUNT sequential connects to VIP:80 (the experiments' timed_targets workload, no warm-up)."""
    result = run_workload(pod, WORKLOADS / "timed_targets.py", "connect", count, 0, f"vip={vip}:80")
    samples = result["samples_us"]["vip"]
    return {"p50_us": percentile(samples, 0.5), "p99_us": percentile(samples, 0.99),
            "mean_us": round(statistics.fmean(samples), 1) if samples else None,
            "samples": len(samples), "errors": result["errors"]["vip"]}


def one_mode(mode: str, count: int, connects: int) -> dict:
    started = time.monotonic()
    with cluster_for(mode, cluster_dns=False) as cluster:
        cluster.apply(WEB)
        cluster.wait_ready(60)
        up = time.monotonic() - started
        applied = time.monotonic()
        cluster.apply(services(count))
        programmed = time.monotonic() - applied
        rules = cluster.emulation.dataplane.rule_count()
        probe_started = time.monotonic()
        cluster.apply(PROBE)
        cluster.wait_ready(120)
        pod_start = time.monotonic() - probe_started
        probe = cluster.pod("probe")
        first = cluster.get("svc", "scale-0")["spec"]["clusterIP"]
        last = cluster.get("svc", f"scale-{count - 1}")["spec"]["clusterIP"]
        latency = {"first": connect_times(probe, first, connects), "last": connect_times(probe, last, connects)}
        label = data_plane_label(cluster)
    return {**label, "mode": mode, "services": count, "endpoints_per_service": 3, "cluster_up_seconds": round(up, 2),
            "apply_to_programmed_seconds": round(programmed, 2), "rules_or_flows_per_node": rules,
            "pod_start_seconds": round(pod_start, 2), "connect": latency}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--modes", default="sdn,iptables,iptables-legacy")
    parser.add_argument("--count", type=int, default=500, help="connects per target")
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    runs = []
    for mode in args.modes.split(","):
        run = one_mode(mode, args.services, args.count)
        print(json.dumps(run), flush=True)
        runs.append(run)
    write_result(args.out, "scale-10k", {"benchmark": "scale_10k", "kernel": platform.release(), "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
