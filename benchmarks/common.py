"""What the benchmarks share: the synthetic Service load of the data-plane benchmarks (N Services
with 2 endpoints each, spread over 3 nodes' pod CIDRs, every fourth a NodePort: the same load for
iptables and SDN), what every run records about itself, and how a run's JSON is written to
results/."""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from testbed.net.addressing import SERVICE_CIDR
from testbed.proxy.model import Endpoint, ServicePort

REPO = Path(__file__).resolve().parent.parent
NODES = 3
NODEPORT_EVERY = 4
FIRST_NODE_PORT = 30000


def endpoint(service_index: int, k: int, generation: int = 0) -> Endpoint:
    """Endpoint k of Service `service_index`; another `generation` gives another address and port."""
    node = (2 * service_index + k) % NODES
    host = 2 + (service_index * 2 + k + generation * 7) % 250
    return Endpoint(f"10.244.{node}.{host}", 8080 + generation, f"node{node}")


def service_ports(count: int) -> list[ServicePort]:
    ports = []
    for i in range(count):
        nodeport = i % NODEPORT_EVERY == NODEPORT_EVERY - 1
        ports.append(ServicePort(
            namespace="default", name=f"svc-{i}", port_name="http", protocol="TCP", port=80,
            cluster_ip=str(SERVICE_CIDR.network_address + 10 + i),
            service_type="NodePort" if nodeport else "ClusterIP",
            node_port=FIRST_NODE_PORT + i // NODEPORT_EVERY if nodeport else None,
            endpoints=(endpoint(i, 0), endpoint(i, 1))))
    return ports


def write_result(out_dir: str | Path, name: str, report: dict) -> Path:
    """results/bench-<name>-<timestamp>.json; prints and returns the path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    return path


def command_output(*args: str) -> str:
    """A program's stripped standard output, run from the repository ("" when it is missing)."""
    try:
        return subprocess.run(args, capture_output=True, text=True, cwd=REPO).stdout.strip()
    except OSError:
        return ""


def first_line(*args: str) -> str:
    output = command_output(*args)
    return output.splitlines()[0] if output else ""


def run_metadata(**facts) -> dict:
    """What every benchmark records about its run (kernel, Python, commit and whether the tree had
    uncommitted changes, CPUs, start time), with the benchmark's own facts after kernel and Python."""
    return {"kernel": platform.release(), "python": platform.python_version(), **facts,
            "commit": command_output("git", "rev-parse", "HEAD"),
            "dirty": bool(command_output("git", "status", "--porcelain")),
            "cpus": os.cpu_count(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def sync_row(result) -> dict:
    """A proxier's SyncResult as a sample row: its fields, the changed Services counted, and the
    render and apply seconds summed."""
    row = dataclasses.asdict(result)
    row["changed_services"] = len(result.changed_services)
    row["seconds_total"] = result.seconds_render + result.seconds_apply
    return row
