"""What the benchmarks share: the synthetic Service load of the data-plane benchmarks (N Services
with 2 endpoints each, spread over 3 nodes' pod CIDRs, every fourth a NodePort: the same load for
iptables and SDN), and how a run's JSON is written to results/."""
from __future__ import annotations

import json
import time
from pathlib import Path

from testbed.net.addressing import SERVICE_CIDR
from testbed.proxy.model import Endpoint, ServicePort

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
