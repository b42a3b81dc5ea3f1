"""SDN mode's load-balancing algorithms on a live cluster (the kernel modes have only random)."""
import json
import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from testbed import Cluster

from tests.support.live import curl

KEEPALIVE = Path(__file__).resolve().parents[2] / "testbed" / "workloads" / "keepalive.py"


@pytest.fixture(scope="module")
def sdn():
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces, Open vSwitch)")
    with Cluster(proxy_mode="sdn", seed=21) as cluster:
        objects = []
        for algorithm in ("rr", "sh", "lc", "maglev"):
            objects.append({"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": algorithm, "annotations": {"testbed.io/lb-algorithm": algorithm}},
                            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        objects.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                                 "template": {"metadata": {"labels": {"app": "web"}},
                                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
        cluster.apply(objects)
        yield cluster


def pods(cluster) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("web-")}


def test_rr_is_a_strict_rotation(sdn):
    client = sdn.client()
    answers = [curl(client, "http://rr/hostname.html") for _ in range(12)]
    assert set(answers) == pods(sdn)
    period = answers[:3]
    assert len(set(period)) == 3 and answers == period * 4, answers


def test_sh_keeps_a_client_on_one_endpoint(sdn):
    for host in (sdn.client(), sdn.pod(sorted(pods(sdn))[0])):
        assert len({curl(host, "http://sh/hostname.html") for _ in range(10)}) == 1


def test_maglev_is_consistent_for_a_source(sdn):
    answers = {curl(sdn.client(), "http://maglev/hostname.html") for _ in range(20)}
    assert answers <= pods(sdn) and answers  # each connection has its own source port: spread allowed


def test_lc_sends_new_connections_away_from_long_ones(sdn):
    """Two idle established connections held to two of the three pods; six sequential short
    connections then all go to the third, at once: a closed connection stops counting as active
    when its client's FIN passes (IPVS' active/inactive counts), not when its flow expires."""
    client = sdn.client()
    vip = sdn.get("svc", "lc")["spec"]["clusterIP"]
    out = sdn.emulation.run_dir / "hold.json"
    # two connections, one request each, then idle for 12 s: lc puts them on two endpoints
    argv = [sys.executable, "-I", "-S", str(KEEPALIVE), vip, "80", "2", "10", "12", "0"]
    client.cmd(" ".join(shlex.quote(a) for a in argv) + f" > {out} 2>&1 &")
    time.sleep(1.0)
    answers = [curl(client, "http://lc/hostname.html") for _ in range(6)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (out.exists() and out.read_text().strip()):
        time.sleep(0.2)
    result = json.loads(out.read_text().strip().splitlines()[-1])
    busy = {d["backend"] for d in result["details"]}
    assert len(busy) == 2 and result["lost"] == 0
    assert answers == [(pods(sdn) - busy).pop()] * 6, (answers, busy)
