"""IptablesProxier in a real network namespace, with both iptables backends (nft and legacy).

Each test makes a throwaway namespace `tbipt-<pid>-<n>` with a veth pair (both ends inside it) whose one end carries the
node IP, a pod-like client address and two endpoint addresses; small TCP servers in it answer
with the address they serve. Connections to the ClusterIP are DNATed by the rules under test to
one of them, so the kernel's own NAT is checked, not just the rule text. The host's iptables and
nftables rulesets must be the same before and after.
"""
import itertools
import os
import re
import subprocess
import sys
import time

import pytest

from testbed.net.runner import NamespaceRunner
from testbed.backends.iptables import JUMP_RULES, IptablesProxier, endpoint_chain_name, service_chain_names
from testbed.proxy.model import Endpoint, NodeInfo, ServicePort

NODE = NodeInfo(name="node1", ip="172.18.0.11", pod_cidr="10.244.1.0/24", cluster_cidr="10.244.0.0/16")
CLIENT_IP = "10.244.1.50"
ENDPOINT_IPS = ("10.244.1.10", "10.244.1.11")
CLUSTER_IP = "10.96.0.20"
_counter = itertools.count()

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)
while True:
    c, _ = s.accept(); c.sendall(sys.argv[1].encode()); c.close()
"""
CLIENT = """
import socket, sys
for _ in range(int(sys.argv[3])):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1, source_address=(sys.argv[4], 0))
        print(c.recv(64).decode() or "empty"); c.close()
    except OSError as e:
        print("error", type(e).__name__)
"""


def host_rulesets() -> tuple[str, str]:
    """The host's own rules, without timestamps and packet counters (the host keeps running)."""
    save = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout
    save = "\n".join(line for line in save.splitlines() if not line.startswith("#"))
    save = re.sub(r"\[\d+:\d+\]", "[counters]", save)
    nft = re.sub(r"counter packets \d+ bytes \d+", "counter", nft)
    return save, nft


@pytest.fixture
def netns(require_root):
    name = f"tbipt-{os.getpid()}-{next(_counter)}"
    before = host_rulesets()
    subprocess.run(["ip", "netns", "add", name], check=True)
    path = f"/run/netns/{name}"
    servers: list[subprocess.Popen] = []
    try:
        runner = NamespaceRunner(netns_path=path)
        runner.run(["ip", "link", "set", "lo", "up"])
        runner.run(["ip", "link", "add", "tbipt0", "type", "veth", "peer", "name", "tbipt1"])
        for link in ("tbipt0", "tbipt1"):
            runner.run(["ip", "link", "set", link, "up"])
        for address in (f"{NODE.ip}/16", f"{CLIENT_IP}/32", *(f"{ip}/32" for ip in ENDPOINT_IPS)):
            runner.run(["ip", "addr", "add", address, "dev", "tbipt0"])
        runner.run(["ip", "route", "add", "default", "dev", "tbipt0"])
        for ip in ENDPOINT_IPS:
            servers.append(runner.popen([sys.executable, "-c", SERVER, ip, "8080"]))
        _wait_listening(runner)
        yield runner
    finally:
        for server in servers:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", name], check=False)
    assert not os.path.exists(path)
    assert host_rulesets() == before


def _wait_listening(runner: NamespaceRunner) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answers = [_connect(runner, ip, 8080, 1)[0] for ip in ENDPOINT_IPS]
        if answers == list(ENDPOINT_IPS):
            return
        time.sleep(0.05)
    raise RuntimeError("test servers did not start")


def _connect(runner: NamespaceRunner, ip: str, port: int, count: int) -> list[str]:
    proc = runner.run([sys.executable, "-c", CLIENT, ip, str(port), str(count), CLIENT_IP], timeout=60)
    return proc.stdout.split("\n")[:-1]


def web(endpoints=ENDPOINT_IPS) -> ServicePort:
    return ServicePort(namespace="default", name="web", port_name="http", protocol="TCP", port=80,
                       cluster_ip=CLUSTER_IP, service_type="NodePort", node_port=30080,
                       endpoints=tuple(Endpoint(ip, 8080, "node1") for ip in endpoints))


def other() -> ServicePort:
    return ServicePort(namespace="default", name="other", port_name="", protocol="UDP", port=53,
                       cluster_ip="10.96.0.21", endpoints=(Endpoint("10.244.2.5", 53, "node2"),))


def _has_iptables_legacy(runner) -> bool:
    return runner.run(["iptables-legacy-save"], check=False).returncode == 0


@pytest.mark.parametrize("restore_command", ["iptables-restore", "iptables-legacy-restore"])
def test_sync_change_and_cleanup_in_a_namespace(netns, restore_command):
    if restore_command.startswith("iptables-legacy") and not _has_iptables_legacy(netns):
        pytest.skip("kernel without the legacy ip_tables modules")
    proxier = IptablesProxier(netns, NODE, restore_command)
    try:
        first = proxier.sync([web(), other()])
        saved = netns.run([proxier.save_command]).stdout
        names = service_chain_names(web())
        for chain in (names.cluster, names.external, "KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING",
                      *(endpoint_chain_name(web(), e) for e in web().endpoints)):
            assert f":{chain} " in saved
        assert '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in saved
        assert first.full and first.rules > 0
        answers = _connect(netns, CLUSTER_IP, 80, 40)
        assert set(answers) == set(ENDPOINT_IPS)  # both chosen: P(miss) = 2 * 0.5**40
        assert set(_connect(netns, NODE.ip, 30080, 40)) == set(ENDPOINT_IPS)  # the NodePort

        second = proxier.sync([web(ENDPOINT_IPS[:1]), other()], frozenset({("default", "web")}))
        assert not second.full and second.changed_services == ("default/web",)
        saved = netns.run([proxier.save_command]).stdout
        assert endpoint_chain_name(web(), web().endpoints[1]) not in saved
        assert sum(line.startswith("-A PREROUTING") for line in saved.splitlines()) == 1
        assert set(_connect(netns, CLUSTER_IP, 80, 10)) == {ENDPOINT_IPS[0]}

        third = proxier.sync([web(ENDPOINT_IPS[:1]), other()], frozenset())  # unchanged: nothing rewritten
        assert third.changed_services == () and third.rules_written < second.rules_written
    finally:
        proxier.cleanup()
    saved = netns.run([proxier.save_command]).stdout
    assert "KUBE-" not in saved
    assert all(f"-j {j.target}" not in saved for j in JUMP_RULES)
    assert set(_connect(netns, CLUSTER_IP, 80, 1)) != {ENDPOINT_IPS[0]}  # the VIP is gone
