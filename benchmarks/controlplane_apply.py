"""Benchmark: apply 10,000 Services with 20,000 endpoints to the control plane (no network).

Two shapes of the same load, each in a fresh process-local control plane:
- `endpoints`: selector-less Services plus an Endpoints object each (2 addresses), which the
  EndpointSlice mirroring controller turns into slices (as for Services pointing outside the cluster);
- `pods`: Services with selectors plus 2 bare Pods each (20,000 pods, scheduled, given IPs and run by
  the hollow kubelet), from which the EndpointSlice controller builds the slices.
Input is built as Python objects (what `Cluster.apply(list_of_dicts)` takes); YAML parsing of the same
objects is timed separately. Each shape runs in its own interpreter; memory is the process's peak
RSS (ru_maxrss, which includes the input objects) and the tracemalloc peak of Python allocations
made during the apply.

    .venv/bin/python benchmarks/controlplane_apply.py [--services 10000] [--out results/]
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testbed.controlplane import ClusterConfig, ControlPlane  # noqa: E402
from testbed.manifests import parse_objects, parse_text  # noqa: E402
from common import write_result  # noqa: E402


def endpoint_objects(n: int) -> list[dict]:
    objects = []
    for i in range(n):
        name = f"svc-{i}"
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                        "spec": {"ports": [{"port": 80, "targetPort": 8080}]}})
        objects.append({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
                        "subsets": [{"addresses": [{"ip": f"10.{100 + i // 32768}.{(i // 128) % 256}.{(2 * i) % 256}"},
                                                   {"ip": f"10.{100 + i // 32768}.{(i // 128) % 256}.{(2 * i + 1) % 256}"}],
                                     "ports": [{"port": 8080}]}]})
    return objects


def pod_objects(n: int) -> list[dict]:
    objects = []
    for i in range(n):
        name = f"svc-{i}"
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}})
        for r in range(2):
            objects.append({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": f"{name}-{r}", "labels": {"app": name}},
                            "spec": {"containers": [{"name": "app", "image": "nginx",
                                                     "ports": [{"containerPort": 8080}]}]}})
    return objects


def nodes(count: int) -> list[str]:
    return [f"node{i + 1}" for i in range(count)]


def run_in_subprocess(shape: str, services: int) -> dict:
    """Each shape in a fresh interpreter, so peak RSS belongs to that shape alone."""
    out = subprocess.run([sys.executable, __file__, "--shape", shape, "--services", str(services)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(shape: str, services: int) -> dict:
    # 20,000 pods need more pod IPs than three /24s hold: use enough nodes for the pods shape.
    node_count = 3 if shape == "endpoints" else 100
    cp = ControlPlane(ClusterConfig.for_nodes(nodes(node_count), seed=1, cluster_dns=False))
    objects = endpoint_objects(services) if shape == "endpoints" else pod_objects(services)
    documents = parse_objects(objects)
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    cp.apply(documents)
    seconds_untraced = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # the same apply under tracemalloc (slower) for the peak of Python allocations
    cp2 = ControlPlane(ClusterConfig.for_nodes(nodes(node_count), seed=1, cluster_dns=False))
    documents2 = parse_objects(endpoint_objects(services) if shape == "endpoints" else pod_objects(services))
    del cp, documents
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    cp2.apply(documents2)
    seconds = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    endpoints = sum(len(s.get("endpoints") or []) for s in cp2.store.list("EndpointSlice"))
    return {"shape": shape, "services": services, "endpoints": endpoints,
            "slices": cp2.store.count("EndpointSlice"), "pods": cp2.store.count("Pod"),
            "apply_seconds": round(seconds_untraced, 3), "apply_seconds_traced": round(seconds, 3),
            "python_peak_mb": round(traced_peak / 2**20, 1),
            "rss_before_apply_mb": round(rss_before / 1024, 1),
            "rss_peak_after_apply_mb": round(rss_after / 1024, 1)}


def yaml_parse_seconds(services: int) -> float:
    import yaml
    text = yaml.safe_dump_all(endpoint_objects(services))
    started = time.perf_counter()
    parse_text(text, "bench.yaml")
    return round(time.perf_counter() - started, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--out", default="results")
    parser.add_argument("--shape", choices=("endpoints", "pods"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.shape:
        print(json.dumps(run(args.shape, args.services)))
        return
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = {"benchmark": "controlplane_apply", "format": 1, "python": platform.python_version(),
              "machine": platform.machine(), "cpus": __import__("os").cpu_count(), "commit": commit,
              "runs": [run_in_subprocess(shape, args.services) for shape in ("endpoints", "pods")],
              "yaml_parse_seconds": yaml_parse_seconds(args.services)}
    for row in report["runs"]:
        print(f"{row['shape']:9} {row['services']} services, {row['endpoints']} endpoints, {row['slices']} slices, "
              f"{row['pods']} pods: apply {row['apply_seconds']} s, Python peak {row['python_peak_mb']} MB, "
              f"process RSS {row['rss_before_apply_mb']} MB before (input built), "
              f"peak {row['rss_peak_after_apply_mb']} MB")
    print(f"YAML parse of the endpoints-shape input: {report['yaml_parse_seconds']} s")
    write_result(args.out, "controlplane", report)


if __name__ == "__main__":
    main()
