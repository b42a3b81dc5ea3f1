"""Linux bridges as the node and fabric switches (switch="linuxbridge"): the kernel's datapath for
the kernel proxy modes where Open vSwitch has only its userspace datapath. The bridges and every
switch-side veth end live in namespaces of their own: nothing appears in the root namespace."""
import json
import os
import subprocess

import pytest

from testbed import Cluster
from testbed.errors import TestbedError
from testbed.net import addressing

from tests.support.live import curl


def root_links() -> set[str]:
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    return {link["ifname"] for link in links}


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces)")
    before = root_links()
    with Cluster(topo="default", proxy_mode="iptables", switch="linuxbridge", seed=7) as c:
        c.apply("examples/myapp.yaml")
        c.during = root_links()
        yield c
    assert root_links() == before


def test_services_answer_across_linux_bridges(cluster):
    pods = {p["metadata"]["name"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("myapp-")}
    assert {curl(cluster.client(), "http://myapp-svc/hostname.html") for _ in range(30)} == pods
    assert curl(cluster.external(), f"http://{addressing.node_ip(1)}:32223/hostname.html") in pods
    lb_ip = cluster.get("svc", "myapp-svc-lb")["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert curl(cluster.external(), f"http://{lb_ip}/hostname.html") in pods
    assert cluster.emulation.datapath.type == "linuxbridge"


def test_nothing_of_the_switches_is_in_the_root_namespace(cluster):
    assert not {name for name in cluster.during if name.startswith("tb")}


def test_sdn_mode_needs_open_vswitch():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with pytest.raises(TestbedError, match="needs switch='ovs'"):
        Cluster(proxy_mode="sdn", switch="linuxbridge").start()
