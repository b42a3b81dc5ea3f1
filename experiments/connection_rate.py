"""New connections per second through a ClusterIP, per proxy mode and algorithm."""
from __future__ import annotations

from pathlib import Path

from testbed.experiments.common import (algorithm_annotations, cluster_for, connection_rate, data_plane_label, deployment,
                                        mode_labels)

NAME = "connection-rate"
DESCRIPTION = "new connections per second through a Service VIP (modes x algorithms)"
GRID = {"mode": mode_labels(), "algorithm": ["random", "rr", "lc", "maglev"], "replicas": [3], "seconds": [5.0],
        "concurrency": [4]}
REPEATS = 1


def run(point: dict, repeat: int) -> list[dict]:
    annotations = algorithm_annotations(point["mode"], point["algorithm"])
    with cluster_for(point["mode"], seed=repeat + 1) as cluster:
        cluster.apply(deployment("rate", point["replicas"], annotations=annotations))
        vip = cluster.get("svc", "rate")["spec"]["clusterIP"]
        counts = connection_rate(cluster.client(), vip, 80, point["seconds"], point["concurrency"])
        label = data_plane_label(cluster)
    return [{**label, "connections": counts["ok"], "errors": counts["errors"], "seconds": counts["seconds"],
             "connections_per_second": counts["ok"] / counts["seconds"]}]


def report(frame, out_dir: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    summary = frame.groupby(["mode", "algorithm"])["connections_per_second"].agg(["mean", "min", "max"]).reset_index()
    lines = ["| mode | algorithm | conn/s mean | min | max |", "|---|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['algorithm']} | {r['mean']:.0f} | {r['min']:.0f} | {r['max']:.0f} |"
              for _, r in summary.iterrows()]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([f"{m}\n{a}" for m, a in zip(summary["mode"], summary["algorithm"])], summary["mean"])
    ax.set_ylabel("new connections / s")
    fig.tight_layout()
    fig.savefig(out_dir / "connection-rate.png", dpi=120)
    plt.close(fig)
    return lines + ["", "![connections per second](connection-rate.png)"]
