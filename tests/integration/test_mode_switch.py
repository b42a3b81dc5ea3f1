"""Switching a running cluster's data plane (Cluster.set_proxy_mode): pods keep running, Services
keep answering in the new mode, and every node ends up exactly as a fresh node of the new mode:
no rule, set, address, route or flow of the old mode is left behind."""
import difflib
import os
import re

import pytest

from testbed import Cluster
from testbed.net import addressing
from testbed.proxy.backend import get_backend, modes

from tests.support.live import curl

SEED = 13


def runnable_modes() -> list[str]:
    return [m for m in modes() if get_backend(m).unavailable() is None]


def node_state(cluster, node: str) -> dict:
    """A node's data-plane state, with what differs run to run (counters, ages) taken out."""
    host = cluster.node(node)

    def run(command: str) -> str:
        return host.cmd(command + " 2>/dev/null").strip()
    bridge = addressing.bridge_name(node)
    flows = run(f"ovs-ofctl -O OpenFlow13 --no-stats dump-flows {bridge}").splitlines()
    return {
        "iptables": re.sub(r"\[\d+:\d+\]", "", re.sub(r"^#.*$", "", run("iptables-save"), flags=re.M)),
        "nft": run("nft list ruleset"),
        "ipvs": run("ipvsadm -Sn"),
        "ipset": run("ipset save"),
        "addresses": run("ip -4 -o addr show | awk '{print $2, $4}' | sort"),
        "routes": run("ip route show table all | sort"),
        "flows": sorted(re.sub(r"(cookie=0x[0-9a-f]+, ?)", "", f).strip() for f in flows
                        if "OFPST_FLOW" not in f and f.strip()),
        "groups": run(f"ovs-ofctl -O OpenFlow13 dump-groups {bridge} | grep -v OFPST | sort"),
    }


@pytest.fixture(scope="module")
def fresh_states():
    """Each mode's node states in a fresh cluster with the examples applied."""
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces, Open vSwitch)")
    states = {}
    for mode in runnable_modes():
        with Cluster(topo="default", proxy_mode=mode, seed=SEED) as cluster:
            cluster.apply("examples/myapp.yaml")
            cluster.client()             # the switched cluster has it too
            states[mode] = {node: node_state(cluster, node) for node in cluster.topology.nodes}
    return states


def test_switching_through_every_mode_leaves_each_node_as_a_fresh_one(fresh_states):
    order = runnable_modes()
    if len(order) < 2:
        pytest.skip("fewer than two proxy modes can run on this kernel")
    with Cluster(topo="default", proxy_mode=order[0], seed=SEED) as cluster:
        cluster.apply("examples/myapp.yaml")
        cluster.client()
        pods_before = {p["metadata"]["uid"] for p in cluster.get("pods", namespace=None)}
        names = {p["metadata"]["name"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("myapp-")}
        for mode in order[1:] + order[:1]:
            cluster.set_proxy_mode(mode)
            assert cluster.emulation.dataplane.label == get_backend(mode).label(cluster.proxy_options)
            assert {curl(cluster.client(), "http://myapp-svc/hostname.html") for _ in range(20)} <= names
            assert curl(cluster.external(), f"http://{addressing.node_ip(0)}:32223/hostname.html") in names
            for node in cluster.topology.nodes:
                state, fresh = node_state(cluster, node), fresh_states[mode][node]
                different = {key: difflib.unified_diff(str(fresh[key]).splitlines(), str(state[key]).splitlines(),
                                                      "fresh", "switched", lineterm="")
                             for key in state if state[key] != fresh[key]}
                assert not different, (mode, node, {k: "\n".join(v) for k, v in different.items()})
        assert {p["metadata"]["uid"] for p in cluster.get("pods", namespace=None)} == pods_before
