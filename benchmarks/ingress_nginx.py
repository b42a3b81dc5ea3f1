"""The ingress controller's nginx part alone, without a cluster (needs root for a throwaway
network namespace; no cluster lock): with N Ingress paths (N Ingresses of one path over N/10 hosts)

- render: the routing model and nginx.conf text (pure, what every sync computes);
- nginx -t on the candidate (what every change pays before a reload);
- reload: SIGHUP until the new configuration answers and no old worker accepts connections
  (what an apply waits for after nginx -t);
- wrk through nginx to an echo server against the echo server directly, on the namespace's
  loopback (nginx's own cost, without the emulated network; benchmarks/ingress.py measures it in a
  cluster), and nginx proxying to its own default backend (nginx alone).
Raw samples go to results/bench-ingress-nginx-<timestamp>.json.
Usage: sudo .venv/bin/python benchmarks/ingress_nginx.py [--paths 0 1000] [--repeats 5] [--seconds 5]
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from testbed import Cluster  # noqa: E402
from testbed.ingress import nginx  # noqa: E402
from testbed.ingress.model import ClusterObjects, build_model  # noqa: E402
from testbed.ingress.settings import settings_from_configmap  # noqa: E402
from tests.support.nginx_netns import NginxNamespace, local_service  # noqa: E402
from common import write_result  # noqa: E402
from ingress import ingress, parse_wrk  # noqa: E402

FORMAT = "testbed-bench-ingress-nginx/1"


def objects(cluster) -> ClusterObjects:
    return ClusterObjects(cluster.get("Ingress", namespace=None), cluster.get("IngressClass", namespace=None),
                          cluster.get("Service", namespace=None), cluster.get("EndpointSlice", namespace=None),
                          cluster.get("Secret", namespace=None), None)


def measure(netns: NginxNamespace, paths: int, repeats: int) -> list[dict]:
    cluster = Cluster(network=False, seed=1, addons=["ingress"])
    hosts = max(1, paths // 10)
    cluster.apply(local_service("bench", 8081) + [ingress(f"load-{i}", f"host-{i % hosts}.example", [f"/p{i}"], "bench")
                                                  for i in range(paths)])
    netns.load(cluster)
    samples = []
    for i in range(repeats):
        cluster.apply(ingress(f"change-{i}", "change.example", [f"/c{i}"], "bench"))
        started = time.perf_counter()
        model = build_model(objects(cluster), settings_from_configmap(None))
        text = nginx.render(model)
        render = time.perf_counter() - started
        candidate = netns.dir / "check.conf"
        candidate.write_text(text.replace(nginx.CONF_DIR + "/", f"{netns.dir}/")
                             .replace(nginx.STATE_DIR, str(netns.dir))
                             .replace("access_log /dev/stdout", f"access_log {netns.dir}/access.log"))
        started = time.perf_counter()
        check = subprocess.run(["ip", "netns", "exec", netns.name, "nginx", "-t", "-p", str(netns.dir), "-c",
                                str(candidate)], capture_output=True, text=True)
        test_seconds = time.perf_counter() - started
        assert check.returncode == 0, check.stderr
        started = time.perf_counter()
        netns.load(cluster)       # renders again, nginx -t, SIGHUP, waits until served
        load = time.perf_counter() - started
        samples.append({"paths": paths, "render_seconds": render, "nginx_t_seconds": test_seconds,
                        "reload_with_render_and_test_seconds": load, "config_bytes": len(text)})
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", type=int, nargs="+", default=[0, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "results"))
    args = parser.parse_args()
    report = {"format": FORMAT, "metadata": {
        "date": datetime.now(timezone.utc).isoformat(), "kernel": platform.release(),
        "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
        "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
        "note": "2 shared cores; other work may run meanwhile"}, "samples": []}
    netns = NginxNamespace({"bench-pod": (8081, "default")})
    try:
        for paths in args.paths:
            samples = measure(netns, paths, args.repeats)
            report["samples"] += samples
            for key in ("render_seconds", "nginx_t_seconds", "reload_with_render_and_test_seconds"):
                values = sorted(s[key] for s in samples)
                print(f"{paths} paths: {key} median {values[len(values) // 2]:.3f} (max {values[-1]:.3f})")
        cluster = Cluster(network=False, seed=1, addons=["ingress"])
        cluster.apply(local_service("bench", 8081) + [ingress("bench", "bench.example", ["/"], "bench")])
        netns.load(cluster)
        report["wrk"] = {}
        # the echo server (Python) limits the first two; the third is nginx proxying to nginx (the
        # default backend's 404): what nginx itself sustains here
        for name, header, url in (("through_nginx", "-H 'Host: bench.example'", "http://127.0.0.1/"),
                                  ("direct", "", "http://127.0.0.1:8081/"),
                                  ("nginx_to_default_backend", "-H 'Host: nobody.example'", "http://127.0.0.1/")):
            out = netns.cmd(f"wrk -t2 -c16 -d{args.seconds}s --latency {header} {url}")
            report["wrk"][name] = parse_wrk(out)
            run = report["wrk"][name]
            print(f"wrk {name}: {run['requests_per_second']} req/s, p50 {run.get('p50_ms')} ms, p99 {run.get('p99_ms')} ms")
    finally:
        netns.close()
    write_result(args.out, "ingress-nginx", report)


if __name__ == "__main__":
    main()
