"""Every shipped topology comes up and carries Service traffic."""
import pytest

from testbed import Cluster
from testbed.net import addressing
from testbed.topology import available

from tests.support.live import curl

pytestmark = pytest.mark.usefixtures("require_root")


@pytest.mark.parametrize("topo", [t for t in available() if t != "default"])
def test_topology_carries_service_traffic(topo, proxy_mode):
    with Cluster(topo=topo, seed=5, proxy_mode=proxy_mode) as cluster:
        cluster.apply("examples/myapp.yaml")
        pods = {p["metadata"]["name"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("myapp-")}
        client = cluster.client()
        assert {curl(client, "http://myapp-svc/hostname.html") for _ in range(20)} == pods
        external = cluster.external()
        for index in range(len(cluster.topology.nodes)):
            assert curl(external, f"http://{addressing.node_ip(index)}:32223/hostname.html") in pods
        assert curl(external, "http://172.18.255.200/hostname.html") in pods
