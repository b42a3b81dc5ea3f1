"""Live clusters for the integration tests: one per proxy mode, shared by a module's tests."""
import os

import pytest

from testbed import Cluster

MODES = ["iptables", "sdn"]


def pytest_generate_tests(metafunc):
    if "proxy_mode" in metafunc.fixturenames:
        metafunc.parametrize("proxy_mode", MODES, scope="module")


@pytest.fixture(scope="module")
def live(proxy_mode, request):
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces, Open vSwitch)")
    with Cluster(topo="default", proxy_mode=proxy_mode, seed=11) as cluster:
        cluster.apply("examples/")
        yield cluster
