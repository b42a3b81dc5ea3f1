"""How fast the SDN controller programs Services into a real Open vSwitch bridge.

One node bridge `tb-sdnbench` (userspace datapath, fail_mode secure) of a 3-node topology is
connected to a fresh controller process; then:
- full program: one `set_state` with N Services x 2 endpoints (every fourth a NodePort), timed at
  the client from request to answer (the answer comes after the bridge's barrier reply), with the
  controller's compute time and the flow and group counts the bridge then holds;
- single change, repeated: one Service gets one endpoint replaced (`upsert_service`), timed the same;
- resync: a restarted controller reads the bridge's flows back and finds them all in place.
Targets (the brief): full program of 10,000 Services <= 5 s, a single change <= 50 ms.
Raw samples and the run's metadata go to results/bench-sdn-<timestamp>.json.

Needs root. Usage: .venv/bin/python benchmarks/sdn_program.py [--services 10000] [--changes 50]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testbed.net.ovs import OvsDaemons, choose_datapath, vsctl  # noqa: E402
from common import NODES, endpoint, service_ports, write_result  # noqa: E402
from testbed.sdn.client import SdnControllerProcess  # noqa: E402
from testbed.sdn.wiring import Wiring  # noqa: E402

FORMAT = "testbed-bench-sdn/1"
BRIDGE = "tb-sdnbench"
NODE = "node1"


def ofctl(*args: str) -> str:
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args], capture_output=True, text=True, check=True).stdout


def bridge_counts() -> dict:
    aggregate = ofctl("dump-aggregate", BRIDGE)
    flows = int(aggregate.split("flow_count=")[1].split()[0])
    groups = sum(1 for line in ofctl("dump-groups", BRIDGE).splitlines() if "group_id=" in line)
    return {"flows": flows, "groups": groups}


def metadata(datapath) -> dict:
    def out(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO).stdout.strip()
        except OSError:
            return ""
    return {"format": FORMAT, "time": datetime.now(timezone.utc).isoformat(), "host": platform.node(),
            "kernel": platform.release(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "ovs_version": out("ovs-vswitchd", "--version").splitlines()[0] if out("ovs-vswitchd", "--version") else "",
            "datapath": datapath.type, "datapath_reason": datapath.reason,
            "commit": out("git", "rev-parse", "--short", "HEAD"), "dirty": bool(out("git", "status", "--porcelain"))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--ofp-port", type=int, default=16699)
    args = parser.parse_args()

    OvsDaemons().ensure()
    datapath = choose_datapath()
    topology = Wiring.for_nodes(NODES, zone_base=42000)
    bridge = topology.bridge(NODE)
    ports = service_ports(args.services)
    work = Path(tempfile.mkdtemp(prefix="tbsdn-bench-"))
    controller = SdnControllerProcess(ofp_port=args.ofp_port, socket_path=work / "sdn.sock")
    result = {"metadata": metadata(datapath), "parameters": {"services": args.services, "endpoints_per_service": 2,
                                                              "nodes": NODES, "node": NODE, "changes": args.changes}}
    try:
        vsctl("--may-exist", "add-br", BRIDGE, "--", "set", "bridge", BRIDGE, f"datapath_type={datapath.type}",
              "protocols=OpenFlow13", "fail_mode=secure", f"other-config:datapath-id={bridge.dpid:016x}")
        vsctl("set-controller", BRIDGE, f"tcp:127.0.0.1:{args.ofp_port}")
        controller.start()
        client = controller.client()
        client.set_state(topology, [])
        client.wait_programmed([NODE], timeout=30)

        started = time.perf_counter()
        ack = client.set_state(topology, ports)
        full = time.perf_counter() - started
        counts = bridge_counts()
        result["full_program"] = {"seconds": full, "controller_seconds": ack.seconds,
                                  "compute_seconds": ack.compute_seconds, "flows_sent": ack.flows_added, **counts}
        print(f"full program of {args.services} Services: {full:.2f} s (compute {ack.compute_seconds:.2f} s), "
              f"{counts['flows']} flows, {counts['groups']} groups on {BRIDGE}")

        samples = []
        for n in range(args.changes):
            i = (n * 7919) % args.services
            changed = dataclasses.replace(ports[i], endpoints=(endpoint(i, 0), endpoint(i, 1, generation=n + 1)))
            started = time.perf_counter()
            ack = client.upsert_service("default", changed.name, [changed])
            samples.append({"seconds": time.perf_counter() - started, "controller_seconds": ack.seconds,
                            "flows_added": ack.flows_added})
            ports[i] = changed
        seconds = sorted(s["seconds"] for s in samples)
        result["single_change"] = {"samples": samples, "median_seconds": statistics.median(seconds),
                                   "p95_seconds": seconds[int(0.95 * (len(seconds) - 1))]}
        print(f"single Service change at {args.services}: median {1000 * statistics.median(seconds):.1f} ms, "
              f"p95 {1000 * result['single_change']['p95_seconds']:.1f} ms")

        controller.stop()
        controller.start()
        client = controller.client()
        started = time.perf_counter()
        client.set_state(topology, ports)
        status = client.wait_programmed([NODE], timeout=120)
        resync = status[NODE]["last_resync"]
        result["resync_after_controller_restart"] = {"seconds": time.perf_counter() - started, **resync}
        print(f"resync after a controller restart: {time.perf_counter() - started:.2f} s, "
              f"{resync['flows_on_switch']} flows read, {resync['flows_added']} added, {resync['flows_deleted']} deleted")
    finally:
        controller.stop()
        vsctl("--if-exists", "del-br", BRIDGE, check=False)

    write_result(REPO / "results", "sdn", result)


if __name__ == "__main__":
    main()
