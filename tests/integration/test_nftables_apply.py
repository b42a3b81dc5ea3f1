"""NftablesProxier and `testbed render nftables` against the real kernel, in throwaway namespaces.

Each test makes its own network namespaces `tbtest-nft-<pid>-<n>` (`testbed clean` removes
leftovers) and never touches the host's ruleset, which must be the same afterwards:
- the rendered text loads with `nft -c -f` (for every node of the examples, and kube-proxy's own
  expected output for its TestOverallNFTablesRules);
- connections to a ClusterIP and a NodePort are DNATed by the kernel to the endpoints, a partial
  sync changes that, a Service without endpoints is refused at once, `cleanup()` removes the table;
- after partial syncs the kernel's table equals one loaded from a full render.
"""
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testbed import Cluster
from testbed.backends.nftables import STALE_CHAIN_DELAY, NftablesProxier, render_nftables
from testbed.net.runner import NamespaceRunner
from testbed.proxy.model import Endpoint, NodeInfo, ServicePort
from testbed.proxy.render import node_infos
from tests.integration.test_iptables_apply import CLIENT, SERVER, host_rulesets

NODE = NodeInfo(name="node1", ip="172.18.0.11", pod_cidr="10.244.1.0/24", cluster_cidr="10.244.0.0/16")
CLIENT_IP = "10.244.1.50"
ENDPOINT_IPS = ("10.244.1.10", "10.244.1.11")
KUBE_PROXY_EXPECTED = Path(__file__).parents[1] / "golden" / "nftables" / "kube-proxy-TestOverallNFTablesRules.nft"
_counter = itertools.count()


def nft_available() -> bool:
    return subprocess.run(["nft", "--version"], capture_output=True).returncode == 0


@pytest.fixture
def make_netns(require_root):
    if not nft_available():
        pytest.skip("nft is not installed")
    before = host_rulesets()
    names = []

    def make() -> NamespaceRunner:
        name = f"tbtest-nft-{os.getpid()}-{next(_counter)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        names.append(name)
        runner = NamespaceRunner(netns_path=f"/run/netns/{name}")
        runner.run(["ip", "link", "set", "lo", "up"])
        return runner

    yield make
    for name in names:
        subprocess.run(["ip", "netns", "del", name], check=False)
        assert not os.path.exists(f"/run/netns/{name}")
    assert host_rulesets() == before


@pytest.fixture
def wired(make_netns):
    """A namespace whose veth carries the node IP, a pod-like client and two endpoints with servers."""
    runner = make_netns()
    runner.run(["ip", "link", "add", "tbnft0", "type", "veth", "peer", "name", "tbnft1"])
    for link in ("tbnft0", "tbnft1"):
        runner.run(["ip", "link", "set", link, "up"])
    for address in (f"{NODE.ip}/16", f"{CLIENT_IP}/32", *(f"{ip}/32" for ip in ENDPOINT_IPS)):
        runner.run(["ip", "addr", "add", address, "dev", "tbnft0"])
    runner.run(["ip", "route", "add", "default", "dev", "tbnft0"])
    servers = [runner.popen([sys.executable, "-c", SERVER, ip, "8080"]) for ip in ENDPOINT_IPS]
    try:
        deadline = time.monotonic() + 10
        while [connect(runner, ip, 8080, 1)[0] for ip in ENDPOINT_IPS] != list(ENDPOINT_IPS):
            if time.monotonic() > deadline:
                raise RuntimeError("test servers did not start")
            time.sleep(0.05)
        yield runner
    finally:
        for server in servers:
            server.kill()
            server.wait()


def connect(runner: NamespaceRunner, ip: str, port: int, count: int) -> list[str]:
    proc = runner.run([sys.executable, "-c", CLIENT, ip, str(port), str(count), CLIENT_IP], timeout=60)
    return proc.stdout.split("\n")[:-1]


def web(endpoints=ENDPOINT_IPS, **fields) -> ServicePort:
    fields.setdefault("service_type", "NodePort")
    fields.setdefault("node_port", 30080)
    return ServicePort(namespace="default", name="web", port_name="http", protocol="TCP", port=80,
                       cluster_ip="10.96.0.20", endpoints=tuple(Endpoint(ip, 8080, "node1") for ip in endpoints),
                       **fields)


def other() -> ServicePort:
    return ServicePort(namespace="default", name="other", port_name="", protocol="UDP", port=53,
                       cluster_ip="10.96.0.21", endpoints=(Endpoint("10.244.2.5", 53, "node2"),))


def empty() -> ServicePort:
    return ServicePort(namespace="default", name="empty", port_name="", protocol="TCP", port=80,
                       cluster_ip="10.96.0.22")


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def in_object_order(text: str) -> str:
    """kube-proxy's expected text is grouped by Service (its tests compare it sorted, never load it):
    objects first, then rules in their order, then elements, as knftables' Dump() writes them."""
    order = ["table", "chain", "set", "map", "rule", "element"]
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return "\n".join(sorted(lines, key=lambda line: order.index(line.split()[1]))) + "\n"


def test_rendered_text_loads_with_nft_check(make_netns):
    runner = make_netns()
    cluster = Cluster(network=False, seed=1)
    cluster.apply("examples/")
    for node in node_infos(cluster):
        runner.run(["nft", "-c", "-f", "-"], input=render_nftables(cluster.service_ports(), node))
    runner.run(["nft", "-c", "-f", "-"], input=in_object_order(KUBE_PROXY_EXPECTED.read_text()))
    assert runner.run(["nft", "list", "ruleset"]).stdout.strip() == ""    # -c changed nothing
    runner.run(["nft", "-f", "-"], input=render_nftables(cluster.service_ports(), node_infos(cluster)[0]))
    assert "service-ips" in runner.run(["nft", "list", "table", "ip", "kube-proxy"]).stdout


def test_sync_change_and_cleanup_in_a_namespace(wired):
    clock = Clock()
    proxier = NftablesProxier(wired, NODE, clock=clock)
    try:
        first = proxier.sync([web(), other(), empty()])
        assert first.full and first.rules > 0
        listing = wired.run(["nft", "list", "table", "ip", "kube-proxy"]).stdout
        assert "numgen random mod 2 vmap" in listing and "10.96.0.20 . tcp . 80" in listing
        assert set(connect(wired, "10.96.0.20", 80, 40)) == set(ENDPOINT_IPS)   # P(miss) = 2 * 0.5**40
        assert set(connect(wired, NODE.ip, 30080, 40)) == set(ENDPOINT_IPS)     # the NodePort
        started = time.monotonic()
        assert connect(wired, "10.96.0.22", 80, 1) == ["error ConnectionRefusedError"]   # reject, not a timeout
        assert time.monotonic() - started < 1

        second = proxier.sync([web(ENDPOINT_IPS[:1]), other(), empty()], frozenset({("default", "web")}))
        assert not second.full and second.changed_services == ("default/web",)
        assert set(connect(wired, "10.96.0.20", 80, 10)) == {ENDPOINT_IPS[0]}
        assert second.details["stale_chains_flushed"] == 1
        clock.now += STALE_CHAIN_DELAY
        third = proxier.sync([web(ENDPOINT_IPS[:1]), other(), empty()], frozenset())
        assert third.details["stale_chains_deleted"] == 1 and not third.changed_services
    finally:
        proxier.cleanup()
    assert "kube-proxy" not in wired.run(["nft", "list", "tables"]).stdout
    assert set(connect(wired, "10.96.0.20", 80, 1)) != {ENDPOINT_IPS[0]}       # the VIP is gone


def test_affinity_keeps_a_client_on_one_endpoint(wired):
    proxier = NftablesProxier(wired, NODE)
    try:
        proxier.sync([web(affinity_timeout=60)])
        answers = connect(wired, "10.96.0.20", 80, 20)
        assert len(set(answers)) == 1 and answers[0] in ENDPOINT_IPS
        listing = wired.run(["nft", "list", "table", "ip", "kube-proxy"]).stdout
        assert f"elements = {{ {CLIENT_IP} " in listing       # the set the data path filled
    finally:
        proxier.cleanup()


def canonical_table(runner: NamespaceRunner) -> dict:
    """The table from `nft -j list table`, without handles, elements sorted."""
    objects = json.loads(runner.run(["nft", "-j", "list", "table", "ip", "kube-proxy"]).stdout)["nftables"]
    result: dict = {"chains": {}, "rules": {}, "sets": {}}
    for item in objects:
        kind, body = next(iter(item.items()))
        body = {k: v for k, v in body.items() if k != "handle"}
        if kind == "chain":
            result["chains"][body["name"]] = body
        elif kind == "rule":
            result["rules"].setdefault(body["chain"], []).append(json.dumps(body, sort_keys=True))
        elif kind in ("set", "map"):
            elements = sorted(json.dumps(e, sort_keys=True) for e in body.pop("elem", ()))
            result["sets"][body["name"]] = (json.dumps(body, sort_keys=True), elements)
    return result


def test_partial_syncs_leave_the_kernel_as_a_full_load_would(make_netns):
    synced, reference = make_netns(), make_netns()
    clock = Clock()
    proxier = NftablesProxier(synced, NODE, clock=clock)
    ports = {p.name: p for p in (web(), other(), empty())}
    steps = [
        ("web", web(ENDPOINT_IPS[:1], affinity_timeout=30)),
        ("empty", ServicePort("default", "empty", "", "TCP", 80, "10.96.0.22", endpoints=(Endpoint("10.244.1.12", 80),))),
        ("other", None),
        ("web", web(ENDPOINT_IPS, affinity_timeout=60, external_policy_local=True, load_balancer_ips=("172.18.255.200",),
                    service_type="LoadBalancer", load_balancer_source_ranges=("172.18.0.0/16",))),
        ("lb2", ServicePort("default", "lb2", "", "TCP", 443, "10.96.0.23", service_type="LoadBalancer", node_port=30443,
                            load_balancer_ips=("172.18.255.201",), endpoints=(Endpoint("10.244.2.7", 8443, "node2"),))),
    ]
    proxier.sync(list(ports.values()))
    for name, replacement in steps:
        if replacement is None:
            del ports[name]
        else:
            ports[name] = replacement
        clock.now += 0.4
        result = proxier.sync(list(ports.values()), frozenset({("default", name)}))
        assert not result.full
    clock.now += STALE_CHAIN_DELAY
    proxier.sync(list(ports.values()), frozenset())
    reference.run(["nft", "-f", "-"], input=render_nftables(list(ports.values()), NODE))
    assert canonical_table(synced) == canonical_table(reference)
