"""How a Service spreads new connections over its endpoints, per proxy mode and algorithm."""
from __future__ import annotations

from pathlib import Path

from testbed.experiments.common import (algorithm_annotations, cluster_for, connection_rate, data_plane_label, deployment,
                                        mode_labels)

NAME = "lb-distribution"
DESCRIPTION = "share of new connections each endpoint gets (modes x algorithms)"
GRID = {"mode": mode_labels(), "algorithm": ["random", "rr", "sh", "maglev"], "replicas": [3], "seconds": [5.0]}
REPEATS = 1


def run(point: dict, repeat: int) -> list[dict]:
    annotations = algorithm_annotations(point["mode"], point["algorithm"])
    with cluster_for(point["mode"], seed=repeat + 1) as cluster:
        cluster.apply(deployment("lb", point["replicas"], annotations=annotations))
        counts = connection_rate(cluster.client(), "lb", 80, point["seconds"], concurrency=1)
        label = data_plane_label(cluster)
        pods = sorted(p["metadata"]["name"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("lb-"))
    total = max(1, counts["ok"])
    return [{**label, "backend": pod, "connections": counts["backends"].get(pod, 0),
             "share": counts["backends"].get(pod, 0) / total, "errors": counts["errors"]} for pod in pods]


def report(frame, out_dir: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lines = ["| mode | algorithm | backends | min share | max share | errors |", "|---|---|---|---|---|---|"]
    groups = frame.groupby(["mode", "algorithm"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for (mode, algorithm), group in groups:
        shares = group.groupby("backend")["share"].mean().sort_index()
        lines.append(f"| {mode} | {algorithm} | {len(shares)} | {shares.min():.3f} | {shares.max():.3f} | "
                     f"{int(group['errors'].sum())} |")
        ax.bar([f"{mode}/{algorithm}\n#{j}" for j in range(len(shares))], shares.values)
    ax.set_ylabel("share of connections")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "lb-distribution.png", dpi=120)
    plt.close(fig)
    return lines + ["", "![share per backend](lb-distribution.png)"]
