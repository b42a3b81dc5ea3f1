"""Tests that run inside `testbed vm` (`make test-vm`), under Debian's kernel: real IPVS, the OVS
kernel datapath, netem. They check the guest's kernel and what the testbed does with it, so outside
a guest this folder is not collected at all (`make test` on the host never sees it); `make test-vm`
boots the guest and runs `pytest tests/vm` there.

Everything they create lives in the guest (namespaces, bridges, daemons); they still clean up, so
that one test's leftovers cannot make another pass or fail.
"""
import pytest

from testbed.vm import in_guest
from tests.vm.support import Namespaces

collect_ignore_glob = [] if in_guest() else ["test_*.py"]


@pytest.fixture
def netns():
    namespaces = Namespaces()
    yield namespaces
    namespaces.cleanup()
