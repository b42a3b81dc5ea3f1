"""proxy-scale: what N Services cost each Service data plane, from 1 to 10,000 Services.

For every mode label of the backend registry (iptables on the nft and on the legacy backend,
nftables, ipvs where the kernel has it, userspace, sdn) and every N, on a fresh one-node cluster:

1. a Deployment `web` (3 pods of the echo server), an iperf3 pod with its Service `bulk`, and a probe
   pod without Service links start first, so their environments stay small;
2. N Services named svc-00000 ... selecting app=web are applied at once: every Service has the same
   3 endpoints (pods are finite, so the endpoints of all Services are spread over those 3 pods; the
   rules and flows per Service are what they would be with distinct pods). Metrics: `full_sync_s`
   (all syncs that apply caused until the node was programmed), `apply_to_programmed_s` (wall time),
   `rules` (rules or flows on the node);
3. one Service more, then its deletion: `change_sync_s` (target add / delete);
4. from the probe pod, interleaved, to the VIP of the first-created and of the last-created Service
   (target first / last; zero-padded names, so they are also first and last in name order, which is
   the order of kube-proxy's iptables KUBE-SERVICES chain here): `connect_us` (TCP connect, ≥ 500
   samples each), `http_us` (one GET on a new connection);
5. `rps` with wrk and `Connection: close` (every request a new connection: where the rule count
   shows), and during it the machine's softirq and system CPU time per request
   (`softirq_us_per_request`, `system_us_per_request`; machine-wide: namespaces share the CPUs);
6. `bulk_gbps` with iperf3 through the `bulk` VIP and to the pod IP (target vip / pod-ip). Conntrack
   remembers the NAT decision after the first packet, so bulk throughput does not depend on N.

Kernel modes run on Linux bridges where Open vSwitch has only its userspace datapath (which adds
~0.7 ms to every connect and hides the rule-count effect); sdn needs OVS. Each row records its datapath.

    python experiments/proxy_scale.py --modes iptables,nftables --services 1,10000
"""
from __future__ import annotations

import sys
import time

from testbed.experiments.common import (WORKLOADS, cpu_jiffies, deployment, iperf3, mode_labels, probe_pod, run_workload,
                                        wrk)
from testbed.results import sample

NAME = "proxy-scale"
DESCRIPTION = "connect time, request rate, sync time and rules at 1 to 10,000 Services, per mode"
GRID = {"mode": mode_labels(), "services": [1, 100, 1000, 5000, 10000]}
QUICK = {"services": [1, 1000]}
REPEATS = 1
PREFERRED_SWITCH = "linuxbridge"
TOPOLOGY = "single"
ENDPOINTS = 3
CONNECTS = 500
USER_HZ_US = 1e6 / 100          # /proc/stat ticks (USER_HZ is 100 on Linux)


def service_name(i: int) -> str:
    return f"svc-{i:05d}"


def services(count: int, first: int = 0) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": service_name(i)},
             "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}}
            for i in range(first, first + count)]


def bulk_server() -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bulk", "labels": {"app": "bulk"}},
             "spec": {"containers": [{"name": "iperf", "image": "networkstatic/iperf3", "ports": [{"containerPort": 5201}]}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bulk"},
             "spec": {"selector": {"app": "bulk"}, "ports": [{"port": 5201}]}}]


def timed_sync(cluster, action) -> tuple[float, float]:
    """Run `action`; return (sum of the data plane's syncs it caused, wall time until settled)."""
    history = cluster.emulation.dataplane.loop.sync_seconds
    before = len(history)
    started = time.monotonic()
    action()
    return sum(history[before:]), time.monotonic() - started


def setup(point, ctx):
    cluster = ctx.cluster_for(point["mode"], topo=TOPOLOGY, cluster_dns=False)
    cluster.start()
    ctx.note("pods")
    cluster.apply(deployment("web", ENDPOINTS)[:1] + bulk_server() + [probe_pod()])
    cluster.wait_ready(60)
    return cluster


def measure(cluster, point, ctx):
    n = point["services"]
    ctx.note(f"applying {n} Services")
    full, wall = timed_sync(cluster, lambda: cluster.apply(services(n)))
    yield sample("full_sync_s", full, "s")
    yield sample("apply_to_programmed_s", wall, "s")
    yield sample("rules", cluster.emulation.dataplane.rule_count(), "rules")
    ctx.note("one Service change")
    added, _ = timed_sync(cluster, lambda: cluster.apply(services(1, first=n)))
    removed, _ = timed_sync(cluster, lambda: cluster.delete("service", service_name(n)))
    yield sample("change_sync_s", added, "s", target="add")
    yield sample("change_sync_s", removed, "s", target="delete")

    probe = cluster.pod("probe")
    vips = {"first": cluster.get("svc", service_name(0))["spec"]["clusterIP"],
            "last": cluster.get("svc", service_name(n - 1))["spec"]["clusterIP"]}
    targets = [f"{name}={vip}:80" for name, vip in vips.items()]
    ctx.note("connect times")
    connects = run_workload(probe, WORKLOADS / "timed_targets.py", "connect", CONNECTS, 20, *targets)
    for target, values in connects["samples_us"].items():
        for seq, value in enumerate(values):
            yield sample("connect_us", value, "us", target=target, seq=seq)
        yield sample("connect_errors", connects["errors"][target], "connections", target=target)
    ctx.note("HTTP latency")
    requests = run_workload(probe, WORKLOADS / "timed_targets.py", "http", ctx.pick(300, 100), 10, *targets)
    for target, values in requests["samples_us"].items():
        for seq, value in enumerate(values):
            yield sample("http_us", value, "us", target=target, seq=seq)

    seconds = ctx.pick(3, 1)
    for target, vip in vips.items():
        ctx.note(f"wrk to {target}")
        before = cpu_jiffies()
        load = wrk(probe, f"http://{vip}/hostname.html", seconds)
        after = cpu_jiffies()
        yield sample("rps", load["requests_per_second"], "requests/s", target=target)
        yield sample("rps_errors", load["errors"], "requests", target=target)
        for q, value in load["latency_us"].items():
            yield sample("wrk_latency_us", value, "us", target=target, quantile=q)
        if load["requests"]:
            for kind in ("softirq", "system"):
                yield sample(f"{kind}_us_per_request", (after[kind] - before[kind]) * USER_HZ_US / load["requests"],
                             "us", target=target)

    bulk = {"vip": cluster.get("svc", "bulk")["spec"]["clusterIP"], "pod-ip": cluster.get("pod", "bulk")["status"]["podIP"]}
    for target, address in bulk.items():
        ctx.note(f"iperf3 to {target}")
        result = iperf3(probe, address, ctx.pick(2, 1))
        yield sample("bulk_gbps", result["gbps"], "Gbit/s", target=target)


def teardown(cluster):
    cluster.stop()


if __name__ == "__main__":
    from testbed.experiments import script_main
    sys.exit(script_main(NAME, sys.argv[1:]))
