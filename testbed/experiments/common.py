"""What several experiments share: bringing a cluster up for a point, and labelling modes."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from ..cluster import Cluster
from ..errors import TestbedError
from ..proxy.backend import variant, variants

CONN_RATE = Path(__file__).resolve().parent.parent / "workloads" / "conn_rate.py"


def cluster_for(mode: str, **options) -> Cluster:
    """An experiment's mode label (`iptables` = nft backend, `iptables-legacy`, `sdn`, ... : the
    backends' variants in the registry) -> a Cluster (not started)."""
    backend, backend_options = variant(mode)
    return Cluster(topo=options.pop("topo", "default"), proxy_mode=backend.mode, seed=options.pop("seed", 1),
                   **backend_options, **options)


def mode_labels() -> list[str]:
    """Every experiment mode label the registry knows (for grids)."""
    return list(variants())


def algorithm_annotations(mode: str, algorithm: str) -> dict:
    """The Service annotation for an algorithm. A mode that does not offer it (iptables balances
    only at random, as kube-proxy) is an error, not a silently wrong label."""
    backend, _ = variant(mode)
    if algorithm not in backend.algorithms:
        raise TestbedError(f"{mode} mode offers {', '.join(backend.algorithms)}; not the {algorithm!r} algorithm")
    if algorithm == backend.algorithms[0]:
        return {}
    return {"testbed.io/lb-algorithm": algorithm}


def data_plane_label(cluster: Cluster) -> dict:
    """Columns saying exactly what ran: mode, backend, datapath."""
    emulation = cluster.emulation
    return {"proxy_mode": cluster.proxy_mode, "dataplane": emulation.dataplane.label,
            "datapath": emulation.datapath.type}


def deployment(name: str, replicas: int, image: str = "nginx", port: int = 80, node: str | None = None,
               annotations: dict | None = None) -> list[dict]:
    spec = {"containers": [{"name": name, "image": image, "ports": [{"containerPort": port}]}]}
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
             "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                      "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}},
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": name, "annotations": annotations or {}},
             "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": port}]}}]


def connection_rate(pod, host: str, port: int, seconds: float, concurrency: int = 4) -> dict:
    output = pod.cmd(" ".join(shlex.quote(a) for a in (sys.executable, "-I", "-S", str(CONN_RATE), host, str(port),
                                                        str(seconds), str(concurrency))))
    return json.loads(output.strip().splitlines()[-1])


def selectorless_services(count: int, offset: int = 0, namespace: str = "default") -> list[dict]:
    """Selector-less Services with two endpoints each (addresses in node2's and node3's pod CIDRs;
    no processes behind them: this measures the rules, not the pods). Outside `default`, the
    Namespace object comes first, and pods in `default` do not get their environment variables."""
    objects = [] if namespace == "default" else [{"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": namespace}}]
    for i in range(offset, offset + count):
        name = f"scale-{i}"
        meta = {"name": name, "namespace": namespace}
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": meta,
                        "spec": {"ports": [{"port": 80, "targetPort": 8080}]}})
        objects.append({"apiVersion": "v1", "kind": "Endpoints", "metadata": dict(meta),
                        "subsets": [{"addresses": [{"ip": f"10.244.1.{2 + i % 250}"}, {"ip": f"10.244.2.{2 + i % 250}"}],
                                     "ports": [{"port": 8080}]}]})
    return objects
