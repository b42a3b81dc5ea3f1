"""How long a data plane takes to take in N Services, and one change among them."""
from __future__ import annotations

import time
from pathlib import Path

from testbed.experiments.common import cluster_for, data_plane_label, mode_labels, selectorless_services

NAME = "sync-scale"
DESCRIPTION = "data-plane sync time at N Services (full, and one Service changed) per mode"
GRID = {"mode": mode_labels(), "services": [1, 100, 1000]}
REPEATS = 1


def _sync_time_of(cluster, action) -> tuple[float, float, int]:
    """Run `action`; return the data plane's sync time it caused (all syncs until settled, summed),
    the wall time from the call until everything settled, and how many syncs that took."""
    history = cluster.emulation.dataplane.loop.sync_seconds
    before = len(history)
    started = time.monotonic()
    action()
    wall = time.monotonic() - started
    return sum(history[before:]), wall, len(history) - before


def run(point: dict, repeat: int) -> list[dict]:
    count = point["services"]
    with cluster_for(point["mode"], cluster_dns=False) as cluster:
        label = data_plane_label(cluster)
        full_sync, full_wall, full_syncs = _sync_time_of(cluster, lambda: cluster.apply(selectorless_services(count)))
        # one more Service among N
        change_sync, change_wall, _ = _sync_time_of(cluster, lambda: cluster.apply(selectorless_services(1, offset=count)))
        rules = cluster.emulation.dataplane.rule_count()
    return [{**label, "full_sync_seconds": full_sync, "full_syncs": full_syncs, "apply_to_synced_seconds": full_wall,
             "change_sync_seconds": change_sync, "change_apply_to_synced_seconds": change_wall,
             "rules_per_node": rules}]


def report(frame, out_dir: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lines = ["| mode | services | full sync s | one change s | rules (iptables) or flows (sdn) per node |",
             "|---|---|---|---|---|"]
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
