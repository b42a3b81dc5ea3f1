"""How long a data plane takes to take in N Services, and one change among them."""
from __future__ import annotations

import time
from pathlib import Path

from testbed.experiments.common import cluster_for, data_plane_label

NAME = "sync-scale"
DESCRIPTION = "data-plane sync time at N Services (full, and one Service changed) per mode"
GRID = {"mode": ["iptables", "iptables-legacy"], "services": [1, 100, 1000]}
REPEATS = 1


def services(count: int, offset: int = 0) -> list[dict]:
    """Selector-less Services with two endpoints each (addresses in node2's and node3's pod CIDRs;
    no processes behind them: this measures the rules, not the pods)."""
    objects = []
    for i in range(offset, offset + count):
        name = f"scale-{i}"
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                        "spec": {"ports": [{"port": 80, "targetPort": 8080}]}})
        objects.append({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
                        "subsets": [{"addresses": [{"ip": f"10.244.1.{2 + i % 250}"}, {"ip": f"10.244.2.{2 + i % 250}"}],
                                     "ports": [{"port": 8080}]}]})
    return objects


def _last_sync(cluster) -> float:
    return cluster.emulation.dataplane.loop.sync_seconds[-1]


def run(point: dict, repeat: int) -> list[dict]:
    count = point["services"]
    with cluster_for(point["mode"], cluster_dns=False) as cluster:
        label = data_plane_label(cluster)
        cluster.emulation.settle_timeout = max(60.0, count * 0.05)
        started = time.monotonic()
        cluster.apply(services(count))
        full_wall = time.monotonic() - started
        full_sync = _last_sync(cluster)
        started = time.monotonic()
        cluster.apply(services(1, offset=count))  # one more Service among N
        change_wall = time.monotonic() - started
        change_sync = _last_sync(cluster)
        results = getattr(cluster.emulation.dataplane, "last_results", {})
        rules = max((getattr(r, "rules", 0) for r in results.values()), default=None)
    return [{**label, "full_sync_seconds": full_sync, "apply_to_synced_seconds": full_wall,
             "change_sync_seconds": change_sync, "change_apply_to_synced_seconds": change_wall,
             "rules_per_node": rules}]


def report(frame, out_dir: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lines = ["| mode | services | full sync s | one change s | rules/node |", "|---|---|---|---|---|"]
    summary = frame.groupby(["mode", "services"]).agg(
        full=("full_sync_seconds", "median"), change=("change_sync_seconds", "median"),
        rules=("rules_per_node", "max")).reset_index()
    for _, r in summary.iterrows():
        lines.append(f"| {r['mode']} | {r['services']} | {r['full']:.3f} | {r['change']:.3f} | {r['rules']} |")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for mode, group in summary.groupby("mode"):
        axes[0].plot(group["services"], group["full"], marker="o", label=mode)
        axes[1].plot(group["services"], group["change"], marker="o", label=mode)
    for ax, title in zip(axes, ("full sync", "one Service changed")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Services")
        ax.set_ylabel("seconds")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "sync-scale.png", dpi=120)
    plt.close(fig)
    return lines + ["", "![sync time](sync-scale.png)"]
