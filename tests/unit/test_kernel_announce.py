"""How a kernel mode's LoadBalancer speaker holds an IP on the announcing node: a local route (the
node's kernel answers ARP for any local address), or, under strict ARP (ipvs mode, as MetalLB asks),
an address of the node's interface, the only kind an arp_ignore=1 kernel answers for."""
from dataclasses import dataclass, field
from types import SimpleNamespace

from testbed.proxy.backend import DataPlaneContext, get_backend
from testbed.proxy.kernel import KernelDataPlane
from testbed.proxy.model import NodeInfo

@dataclass
class Runner:
    commands: list = field(default_factory=list)

    def run(self, argv, check=True, **kwargs):
        self.commands.append(argv)
        return SimpleNamespace(stdout="", returncode=0)


class Nodes:
    def __init__(self):
        self.runners = {"node2": Runner(), "node3": Runner()}

    def runner(self, node):
        return self.runners[node]

    def info(self, node):
        return NodeInfo(node, "172.18.0.11", "10.244.2.0/24", "10.244.0.0/16")


def announced(mode):
    import testbed.backends  # noqa: F401  (registers the modes)
    nodes = Nodes()
    plane = KernelDataPlane(DataPlaneContext(nodes=nodes, api=SimpleNamespace(store=None), service_cidr="10.96.0.0/12",
                                             cluster_cidr="10.244.0.0/16"), get_backend(mode))
    plane.announce({"172.18.255.200": "node3"}, {"172.18.255.200": "node2"})
    return nodes.runners


def test_a_local_route_by_default():
    runners = announced("iptables")
    assert runners["node3"].commands == [["ip", "route", "del", "local", "172.18.255.200/32", "dev", "lo", "table", "local"]]
    assert runners["node2"].commands == [["ip", "route", "replace", "local", "172.18.255.200/32", "dev", "lo",
                                          "table", "local"]]


def test_an_interface_address_under_strict_arp():
    runners = announced("ipvs")
    assert runners["node3"].commands[-1] == ["ip", "addr", "del", "172.18.255.200/32", "dev", "eth0"]
    assert runners["node2"].commands[-1] == ["ip", "addr", "replace", "172.18.255.200/32", "dev", "eth0"]


def test_ipvs_mode_sets_strict_arp_and_its_cleanup_undoes_it():
    from testbed.backends.ipvs import STRICT_ARP_DEFAULTS, SYSCTLS
    assert ("net.ipv4.conf.all.arp_ignore", "1") in SYSCTLS and ("net.ipv4.conf.all.arp_announce", "2") in SYSCTLS
    assert dict(STRICT_ARP_DEFAULTS) == {"net.ipv4.conf.all.arp_ignore": "0", "net.ipv4.conf.all.arp_announce": "0"}
