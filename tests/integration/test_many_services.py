"""Pods in a namespace with many Services get thousands of environment variables (as in Kubernetes);
they must still start, serve, and let `cmd()` work (a pty line holds only 4 KiB)."""
from pathlib import Path

import pytest

from testbed import Cluster
from testbed.experiments.common import selectorless_services

from tests.support.live import curl

pytestmark = pytest.mark.usefixtures("require_root")


def environ(pid: int) -> dict[str, str]:
    items = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in items if b"=" in item)


def test_pods_start_with_thousands_of_service_variables():
    with Cluster(topo="single", seed=3, cluster_dns=False) as cluster:
        cluster.apply(selectorless_services(600))
        cluster.apply("examples/myapp.yaml")
        client = cluster.client()
        assert client.cmd("env | grep -c '^SCALE_[0-9]*_SERVICE_HOST='").strip() == "600"
        pods = {p["metadata"]["name"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("myapp-")}
        vip = cluster.get("svc", "myapp-svc")["spec"]["clusterIP"]
        assert {curl(client, f"http://{vip}/hostname.html") for _ in range(10)} <= pods
        # the workload process itself (the wrapper's child) has them, and a clean environment otherwise
        container = cluster.emulation.kubelet.pods[("default", sorted(pods)[0])].containers["myapp"]
        child = int(Path(f"/proc/{container.pid}/task/{container.pid}/children").read_text().split()[0])
        env = environ(child)
        assert sum(1 for name in env if name.startswith("SCALE_")) == 600 * 7
        assert env["MYAPP_SVC_SERVICE_HOST"] == vip and env["HOSTNAME"] == sorted(pods)[0]
        # what a container runtime gives, and nothing of the testbed's own environment but the
        # cluster marker `testbed clean` finds processes by
        assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" and env["HOME"] == "/root"
        assert not any(name.startswith(("PIP_", "VIRTUAL_ENV", "PYTEST")) for name in env)
        assert [name for name in env if name.startswith("TESTBED_")] == ["TESTBED_CLUSTER"]
