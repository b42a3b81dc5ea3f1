"""iperf3 throughput through a Service VIP against the same path by pod IP."""
from __future__ import annotations

import json
from pathlib import Path

from testbed.experiments.common import cluster_for, data_plane_label, mode_labels

NAME = "throughput"
DESCRIPTION = "iperf3 through the ClusterIP vs. straight to the pod IP (modes)"
GRID = {"mode": mode_labels(), "seconds": [5]}
REPEATS = 3


def run(point: dict, repeat: int) -> list[dict]:
    with cluster_for(point["mode"], seed=repeat + 1) as cluster:
        cluster.apply([
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "iperf", "labels": {"app": "iperf"}},
             "spec": {"nodeSelector": {"kubernetes.io/hostname": "node2"},
                      "containers": [{"name": "iperf", "image": "networkstatic/iperf3",
                                      "ports": [{"containerPort": 5201}]}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "load"},
             "spec": {"nodeSelector": {"kubernetes.io/hostname": "node1"},
                      "containers": [{"name": "load", "image": "busybox", "command": ["sleep", "infinity"]}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "iperf"},
             "spec": {"selector": {"app": "iperf"}, "ports": [{"port": 5201}]}}])
        label = data_plane_label(cluster)
        targets = {"pod-ip": cluster.get("pod", "iperf")["status"]["podIP"],
                   "cluster-ip": cluster.get("svc", "iperf")["spec"]["clusterIP"]}
        client = cluster.pod("load")
        rows = []
        for path, address in targets.items():
            output = client.cmd(f"iperf3 -c {address} -p 5201 -t {point['seconds']} -J")
            result = json.loads(output[output.index("{"):])
            if "error" in result:
                rows.append({**label, "path": path, "error": result["error"]})
                continue
            end = result["end"]
            rows.append({**label, "path": path, "gbps": end["sum_received"]["bits_per_second"] / 1e9,
                         "retransmits": end["sum_sent"].get("retransmits", 0)})
    return rows


def report(frame, out_dir: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    summary = frame.groupby(["mode", "path"])["gbps"].mean().unstack("path")
    lines = ["| mode | pod IP Gbit/s | ClusterIP Gbit/s | ratio VIP/pod |", "|---|---|---|---|"]
    for mode, row in summary.iterrows():
        lines.append(f"| {mode} | {row['pod-ip']:.2f} | {row['cluster-ip']:.2f} | {row['cluster-ip'] / row['pod-ip']:.3f} |")
    ax = summary.plot.bar(figsize=(6, 3.5))
    ax.set_ylabel("Gbit/s")
    ax.figure.tight_layout()
    ax.figure.savefig(out_dir / "throughput.png", dpi=120)
    plt.close(ax.figure)
    return lines + ["", "![throughput](throughput.png)"]
