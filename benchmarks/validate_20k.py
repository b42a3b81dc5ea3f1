"""Benchmark: `testbed validate` of 20,000 Services (one YAML file), as the CLI runs it.

The file is generated (each Service with labels, a selector, two named ports, every twentieth a
NodePort) and validated in a fresh interpreter: read (libyaml events -> values, limits), decode
(types, as the API server's decoder), default, validate, admit (ClusterIPs and NodePorts planned,
nothing allocated). Reported: the wall time of the whole validate and of reading alone, and the
process's peak RSS (ru_maxrss, input text included).

    .venv/bin/python benchmarks/validate_20k.py [--services 20000] [--out results/]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if "--measure" not in sys.argv or not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import write_result  # noqa: E402


def services_yaml(count: int) -> str:
    documents = []
    for i in range(count):
        node_port = i % 20 == 19   # 1,000 NodePort Services x 2 ports fit the 2,768 node ports
        documents.append(
            f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  labels:\n    app: svc-{i}\n"
            f"    tier: backend\nspec:\n  type: {'NodePort' if node_port else 'ClusterIP'}\n  selector:\n"
            f"    app: svc-{i}\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n    protocol: TCP\n"
            f"  - name: metrics\n    port: 9090\n    targetPort: metrics\n")
    return "---\n".join(documents)


def measure(path: str) -> dict:
    """In this (fresh) interpreter: what `testbed validate -f PATH` does, timed."""
    from testbed import manifests
    from testbed.cluster import Cluster
    started = time.perf_counter()
    if hasattr(manifests, "read"):
        documents, problems = manifests.read([path])
    else:   # commits before issue 8 (for before/after numbers: PYTHONPATH=<their tree>)
        documents, problems = manifests.load([path]), []
    read_seconds = time.perf_counter() - started
    errors = Cluster(network=False).control_plane.validate(documents)
    seconds = time.perf_counter() - started
    assert not problems and not errors, (problems[:3], errors[:3])
    return {"objects": len(documents), "validate_seconds": round(seconds, 3),
            "read_seconds": round(read_seconds, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def run(services: int, repeats: int = 3, tree: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": tree} if tree else None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "services.yaml"
        path.write_text(services_yaml(services))
        runs = [json.loads(subprocess.run([sys.executable, __file__, "--measure", str(path)], capture_output=True,
                                          text=True, check=True, env=env).stdout.strip().splitlines()[-1])
                for _ in range(repeats)]
        size = path.stat().st_size
    best = min(runs, key=lambda r: r["validate_seconds"])
    best = {k: v for k, v in best.items() if k != "objects"}
    return {"services": services, "file_bytes": size, "tree": tree or "this one", "runs": runs, **best,
            "python": platform.python_version(), "machine": platform.machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="results")
    parser.add_argument("--tree", help="measure another source tree (e.g. an older commit's, for before/after)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    report = run(args.services, args.repeats, args.tree)
    print(json.dumps(report, indent=1))
    write_result(args.out, "validate-20k", report)


if __name__ == "__main__":
    main()
