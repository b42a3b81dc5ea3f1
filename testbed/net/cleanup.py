"""`testbed clean`: remove what a crashed run left, and only what the testbed made.

What belongs to the testbed is recognisable without guessing:
- processes whose environment holds TESTBED_CLUSTER=<id> (every shell and workload it starts);
- Open vSwitch bridges with external_ids:testbed-cluster=<id>;
- root-namespace interfaces named tb* whose peer or bridge is gone (veth ends, taps);
- named network namespaces the tests create (tbipt-*, tbdns-*, tbsdn-*);
- run directories /run/testbed/<id>/.
A cluster whose owner process is still alive is left alone.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .hosts import CLUSTER_ENV
from .ovs import OvsDaemons, vsctl

RUN_ROOT = Path("/run/testbed")
TEST_NETNS_PREFIXES = ("tbipt-", "tbdns-", "tbsdn-", "tbtest-")


def _owner_alive(cluster: str) -> bool:
    try:
        state = json.loads((RUN_ROOT / cluster / "state.json").read_text())
        os.kill(int(state["owner_pid"]), 0)
        return int(state["owner_pid"]) != os.getpid()
    except (OSError, ValueError, KeyError):
        return False


def _marked_processes() -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    marker = CLUSTER_ENV.encode() + b"="
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(marker):
                found.setdefault(item[len(marker):].decode(errors="replace"), []).append(int(entry.name))
                break
    return found


def _kill(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in alive):
            time.sleep(0.05)
        pids = alive


def _testbed_bridges() -> dict[str, str]:
    """bridge -> owning cluster id, for bridges the testbed marked."""
    if subprocess.run(["ovs-vsctl", "--timeout=2", "show"], capture_output=True).returncode != 0:
        return {}
    bridges = {}
    for bridge in vsctl("list-br", check=False).split():
        owner = vsctl("--if-exists", "get", "Bridge", bridge, "external_ids:testbed-cluster", check=False).strip()
        if owner:
            bridges[bridge] = owner.strip('"')
    return bridges


def clean_cluster(cluster: str) -> list[str]:
    """Remove every trace of one cluster (used on normal shutdown as well)."""
    done = []
    pids = _marked_processes().get(cluster, [])
    if pids:
        _kill(pids)
        done.append(f"killed {len(pids)} processes of cluster {cluster}")
    for bridge, owner in _testbed_bridges().items():
        if owner == cluster:
            vsctl("--if-exists", "del-br", bridge, check=False)
            done.append(f"deleted bridge {bridge}")
    for line in _delete_orphan_interfaces():
        done.append(line)
    (RUN_ROOT / "ovs" / "users" / cluster).unlink(missing_ok=True)
    directory = RUN_ROOT / cluster
    if directory.exists():
        shutil.rmtree(directory, ignore_errors=True)
        done.append(f"removed {directory}")
    return done


def _delete_orphan_interfaces() -> list[str]:
    """tb* veth ends in the root namespace whose bridge port no longer exists."""
    done = []
    try:
        links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout or "[]")
    except json.JSONDecodeError:
        return done
    ports = set()
    if subprocess.run(["ovs-vsctl", "--timeout=2", "show"], capture_output=True).returncode == 0:
        for bridge in vsctl("list-br", check=False).split():
            ports.update(vsctl("list-ports", bridge, check=False).split())
    for link in links:
        name = link.get("ifname", "")
        if name.startswith("tb") and link.get("link_type") == "ether" and name not in ports \
                and link.get("linkinfo", {}).get("info_kind", "veth") == "veth" and "master" not in link:
            if subprocess.run(["ip", "link", "del", name], capture_output=True).returncode == 0:
                done.append(f"deleted interface {name}")
    return done


def clean_dead_clusters(report_live: bool = False) -> list[str]:
    """Remove every cluster whose owner process is gone."""
    done: list[str] = []
    clusters = set(_marked_processes())
    clusters |= set(_testbed_bridges().values())
    if RUN_ROOT.exists():
        clusters |= {p.name for p in RUN_ROOT.iterdir() if p.is_dir() and p.name != "ovs"}
    for cluster in sorted(clusters):
        if _owner_alive(cluster):
            if report_live:
                done.append(f"left cluster {cluster} alone: its owner is running")
            continue
        done += clean_cluster(cluster)
    return done


def clean() -> list[str]:
    """Everything left by testbed runs whose owner is gone (and by tests)."""
    done = clean_dead_clusters(report_live=True)
    for name in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n"):
        name = name.split(" ")[0]
        if name.startswith(TEST_NETNS_PREFIXES):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            done.append(f"deleted network namespace {name}")
    OvsDaemons().stop_if_ours()
    return done or ["nothing to clean"]
