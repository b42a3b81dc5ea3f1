"""Open vSwitch uses the kernel datapath in the guest: the testbed's own choice (testbed.net.ovs) picks
`system` there, and a real bridge of that type forwards through the kernel's openvswitch module
(its flows show up in the kernel datapath, `ovs-dpctl dump-flows`)."""
import pytest

from testbed.net.ovs import OvsDaemons, choose_datapath, vsctl
from tests.vm.support import sh

USER = "vm-test-ovs-datapath"


@pytest.fixture
def ovs():
    daemons = OvsDaemons()
    daemons.acquire(USER)
    yield daemons
    daemons.release(USER)


def test_testbed_chooses_the_kernel_datapath():
    datapath = choose_datapath()
    assert datapath.type == "system", datapath.reason


def test_kernel_datapath_bridge_forwards(ovs, netns):
    bridge = "tbvm-br0"
    vsctl("--may-exist", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=system")
    try:
        a, b = netns.add("a"), netns.add("b")
        ports = []
        for ns, address in ((a, "192.168.78.1/24"), (b, "192.168.78.2/24")):
            port = f"tbvm-{ns[-1]}{netns.prefix[-4:]}"
            sh(f"ip link add {port} type veth peer name eth0 netns {ns}")
            sh(f"ip link set {port} up")
            netns.run(ns, f"ip addr add {address} dev eth0")
            netns.run(ns, "ip link set eth0 up")
            vsctl("add-port", bridge, port)
            ports.append(port)
        netns.run(a, "ping -c 3 -i 0.3 -W 5 192.168.78.2", timeout=30)
        datapaths = sh("ovs-dpctl show")
        assert "system@ovs-system" in datapaths and all(p in datapaths for p in ports), datapaths
        flows = sh("ovs-dpctl dump-flows")
        assert "in_port" in flows and "actions" in flows, flows   # the kernel module carried the pings
    finally:
        vsctl("--if-exists", "del-br", bridge)
