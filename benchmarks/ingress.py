"""The ingress controller, measured in a running cluster (needs root; one cluster at a time):

1. throughput and latency with wrk (Debian's package): through the ingress (LoadBalancer IP, Host
   header) from the client pod and from the external host, against the same pods directly (pod IP,
   from the client pod);
2. reload time: how long a change takes from the new configuration to every controller pod
   serving it (render + `nginx -t` + SIGHUP + checksum seen), with 1,000 Ingress paths (1,000
   Ingresses of one path each, over 100 hosts) and with none; target <= 2 s;
3. apply to serving: from `Cluster.apply` of a new Ingress until the external host gets its
   backend's answer, with the 1,000 paths in place and without;
4. an endpoint change: the backend scaled up by one until the new pod answers through the ingress
   (a reload each time: Debian's nginx has no Lua to swap endpoints without one).

Raw samples go, with the run's metadata, to results/bench-ingress-<timestamp>.json.
Usage: flock /tmp/testbed-live.lock .venv/bin/python benchmarks/ingress.py [--mode iptables]
       [--paths 1000] [--seconds 10] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from testbed import Cluster  # noqa: E402
from common import write_result  # noqa: E402

FORMAT = "testbed-bench-ingress/1"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def deployment(name: str, replicas: int) -> list[dict]:
    labels = {"app": name}
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
             "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                      "template": {"metadata": {"labels": labels},
                                   "spec": {"containers": [{"name": name, "image": "nginx",
                                                            "ports": [{"containerPort": 80}]}]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
             "spec": {"selector": labels, "ports": [{"port": 80}]}}]


def ingress(name: str, host: str, paths: list[str], service: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": host, "http": {"paths": [
                {"path": p, "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}
                for p in paths]}}]}}


def parse_wrk(text: str) -> dict:
    """wrk --latency output -> requests/s and latency percentiles (ms)."""
    result = {"raw": text}
    match = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    result["requests_per_second"] = float(match.group(1)) if match else None
    for percentile, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([0-9.]+)(us|ms|s)\s*$", text, re.M):
        result[f"p{percentile}_ms"] = float(value) * UNITS[unit]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    result["non_2xx"] = int(errors.group(1)) if errors else 0
    return result


def wrk(host, url: str, seconds: int, header: str = "", connections: int = 16) -> dict:
    command = f"wrk -t2 -c{connections} -d{seconds}s --latency {header} {url}"
    return {"command": command, **parse_wrk(host.cmd(command))}


def served(cluster, ip: str, host: str, path: str, pod_prefix: str, timeout: float = 30) -> float:
    """Seconds until the external host gets an answer from a `pod_prefix` pod."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        out = cluster.external().cmd(f"curl -s -m 2 -H 'Host: {host}' http://{ip}{path}")
        try:
            if json.loads(out)["pod"].startswith(pod_prefix):
                return time.monotonic() - started
        except (ValueError, KeyError):
            pass
        time.sleep(0.005)
    raise TimeoutError(f"{host}{path} not served within {timeout} s")


def apply_to_serving(cluster, ip: str, label: str, repeats: int) -> list[dict]:
    samples = []
    for i in range(repeats):
        host = f"new-{label}-{i}.example"
        started = time.monotonic()
        cluster.apply(ingress(f"new-{label}-{i}", host, ["/"], "bench"))
        applied = time.monotonic() - started
        extra = served(cluster, ip, host, "/", "bench-")
        samples.append({"paths": label, "apply_seconds": applied, "apply_to_serving_seconds": applied + extra})
    return samples


def reloads(cluster, controller, label: str, repeats: int) -> list[dict]:
    """One path added per repeat (a configuration change), timed inside the controller."""
    samples = []
    for i in range(repeats):
        before = len(controller.reload_seconds)
        started = time.monotonic()
        cluster.apply(ingress(f"reload-{label}-{i}", f"reload-{label}.example", [f"/r{i}"], "bench"))
        wall = time.monotonic() - started
        samples.append({"paths": label, "reload_seconds": controller.reload_seconds[before:], "apply_seconds": wall,
                        "config_bytes": len(controller.applied.text)})
    return samples


def endpoint_change(cluster, controller, ip: str, repeats: int) -> list[dict]:
    """Scale the backend up by one: seconds until the new pod answers through the ingress (the
    pod's start, its readiness, the EndpointSlice, the controller's reload), and the reload's part."""
    samples = []
    for _ in range(repeats):
        before = {p["metadata"]["name"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("bench-")}
        reloads_before = len(controller.reload_seconds)
        started = time.monotonic()
        cluster.scale("deployment", "bench", len(before) + 1)
        new = {p["metadata"]["name"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("bench-")} - before
        deadline = time.monotonic() + 30
        seen = set()
        while not new <= seen and time.monotonic() < deadline:
            out = cluster.external().cmd(f"curl -s -m 2 -H 'Host: bench.example' http://{ip}/")
            try:
                seen.add(json.loads(out)["pod"])
            except (ValueError, KeyError):
                pass
        samples.append({"replicas": len(before) + 1, "scale_to_served_seconds": time.monotonic() - started,
                        "reload_seconds": controller.reload_seconds[reloads_before:], "served": new <= seen})
    cluster.scale("deployment", "bench", 2)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", default="iptables")
    parser.add_argument("--paths", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "results"))
    args = parser.parse_args()
    report = {"format": FORMAT, "metadata": {
        "date": datetime.now(timezone.utc).isoformat(), "kernel": platform.release(), "machine": platform.machine(),
        "cpus": __import__("os").cpu_count(), "mode": args.mode,
        "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0:1],
        "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
        "note": "2 shared cores: other clusters and builds may run meanwhile; compare ratios within a run"}}
    with Cluster(topo="default", proxy_mode=args.mode, seed=41) as cluster:
        cluster.apply(deployment("bench", 2) + [ingress("bench", "bench.example", ["/"], "bench")])
        controller = cluster.emulation.addon_components["ingress"]
        ip = cluster.get("ingress", "bench")["status"]["loadBalancer"]["ingress"][0]["ip"]
        pod_ip = next(p["status"]["podIP"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("bench-"))
        client = cluster.client()
        report["traffic"] = {
            "ingress_from_client_pod": wrk(client, f"http://{ip}/", args.seconds, "-H 'Host: bench.example'"),
            "pod_direct_from_client_pod": wrk(client, f"http://{pod_ip}/", args.seconds),
            "ingress_from_external_host": wrk(cluster.external(), f"http://{ip}/", args.seconds,
                                              "-H 'Host: bench.example'"),
            # the ingress path alone: nginx answers from its default backend (404), no echo server
            "ingress_default_backend_from_external_host": wrk(cluster.external(), f"http://{ip}/", args.seconds,
                                                              "-H 'Host: nobody.example'"),
        }
        for name, run in report["traffic"].items():
            print(f"{name}: {run['requests_per_second']} req/s, p50 {run.get('p50_ms')} ms, "
                  f"p99 {run.get('p99_ms')} ms, non-2xx {run['non_2xx']}")
        report["endpoint_change"] = endpoint_change(cluster, controller, ip, args.repeats)
        for sample in report["endpoint_change"]:
            print(f"endpoint change to {sample['replicas']} replicas: served after "
                  f"{sample['scale_to_served_seconds']:.2f} s, reloads {sample['reload_seconds']}")
        report["reload"] = reloads(cluster, controller, "0", args.repeats)
        report["apply_to_serving"] = apply_to_serving(cluster, ip, "0", args.repeats)
        hosts = max(1, args.paths // 10)
        started = time.monotonic()
        cluster.apply([ingress(f"load-{i}", f"host-{i % hosts}.example", [f"/p{i}"], "bench")
                       for i in range(args.paths)])
        report["load_apply_seconds"] = time.monotonic() - started
        report["load_reload_seconds"] = controller.reload_seconds[-1]
        print(f"{args.paths} paths applied in {report['load_apply_seconds']:.2f} s "
              f"(reload {report['load_reload_seconds']:.2f} s)")
        served(cluster, ip, f"host-{(args.paths - 1) % hosts}.example", f"/p{args.paths - 1}", "bench-")
        report["reload"] += reloads(cluster, controller, str(args.paths), args.repeats)
        report["apply_to_serving"] += apply_to_serving(cluster, ip, str(args.paths), args.repeats)
    for label in ("0", str(args.paths)):
        reload_times = sorted(t for s in report["reload"] if s["paths"] == label for t in s["reload_seconds"])
        serving = sorted(s["apply_to_serving_seconds"] for s in report["apply_to_serving"] if s["paths"] == label)
        if reload_times and serving:
            print(f"{label} paths: reload median {reload_times[len(reload_times) // 2]:.3f} s "
                  f"(max {reload_times[-1]:.3f}), apply-to-serving median {serving[len(serving) // 2]:.3f} s")
    write_result(args.out, "ingress", report)


if __name__ == "__main__":
    main()
