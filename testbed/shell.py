"""`testbed up`: bring a cluster up, apply manifests, and hand the user Mininet's CLI with kubectl.

Whatever ends the session - `exit`, Ctrl-D, Ctrl-C, SIGTERM or SIGHUP - tears the cluster down:
the signals are turned into KeyboardInterrupt so that the `finally` below always runs.
"""
from __future__ import annotations

import signal
import sys
import time

from .cluster import Cluster
from .manifests import load


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_interactive(paths: list[str], topo: str = "default", proxy_mode: str = "iptables",
                    stdin=None, service_cidr: str | None = None, options: dict | None = None) -> int:
    documents = load(paths) if paths else []   # bad files fail before anything is built
    cluster = Cluster(topo=topo, proxy_mode=proxy_mode, service_cidr=service_cidr, **(options or {}))
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    started = time.monotonic()
    try:
        print(f"*** bringing up topology {cluster.topology.name!r} ({', '.join(cluster.topology.nodes)}), "
              f"proxy mode {proxy_mode}", flush=True)
        cluster.start()
        emulation = cluster.emulation
        print(f"*** up in {time.monotonic() - started:.1f} s: datapath {emulation.datapath.type} "
              f"({emulation.datapath.reason})", flush=True)
        if documents:
            for line in cluster.apply(documents):
                print(line)
        from .kubectl import Kubectl
        from .kubectl.shell import TestbedCLI
        print("*** cluster ready: kubectl commands (get, describe, apply, ...), `client CMD` and `external CMD`, "
              "and Mininet commands (node1 ip addr, pingall, ...); `help` lists them; exit or Ctrl-D (or Ctrl-C) "
              "tears it down", flush=True)
        TestbedCLI(emulation.net, Kubectl(cluster), cluster=cluster, stdin=stdin or sys.stdin)
    except KeyboardInterrupt:
        print("\n*** interrupted", flush=True)
    finally:
        print("*** tearing down", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        try:
            cluster.stop()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        print("*** done", flush=True)
    return 0
