"""Live clusters for the integration tests: one per proxy mode, shared by a module's tests.

The modes are the backend registry's (testbed/proxy/backend.py): a new backend runs the whole
live suite without any change here. TESTBED_MODES=ipvs,nftables narrows the list (the micro-VM
runs only the modes this host's kernel lacks). A mode this kernel cannot run is skipped with its
reason.
"""
import os

import pytest

from testbed import Cluster
from testbed.proxy.backend import get_backend, modes

MODES = [m for m in modes() if not os.environ.get("TESTBED_MODES") or m in os.environ["TESTBED_MODES"].split(",")]


def pytest_generate_tests(metafunc):
    if "proxy_mode" in metafunc.fixturenames:
        metafunc.parametrize("proxy_mode", MODES, scope="module")


def skip_unless_runnable(proxy_mode: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces, Open vSwitch)")
    reason = get_backend(proxy_mode).unavailable()
    if reason:
        pytest.skip(f"{proxy_mode} mode cannot run on this kernel: {reason}")


@pytest.fixture(autouse=True)
def _runnable_mode(request):
    """Every test that takes a proxy_mode, with or without the shared cluster, skips a mode this
    kernel cannot run (IPVS here) instead of failing at Cluster start."""
    if "proxy_mode" in request.fixturenames:
        skip_unless_runnable(request.getfixturevalue("proxy_mode"))


@pytest.fixture(scope="module")
def live(proxy_mode, request):
    skip_unless_runnable(proxy_mode)
    with Cluster(topo="default", proxy_mode=proxy_mode, seed=11) as cluster:
        cluster.apply("examples/")
        yield cluster
