"""Bring-up and clean-up leave the machine as they found it."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from testbed import Cluster
from testbed.net.cleanup import _marked_processes

from tests.support.live import root_network_state

pytestmark = pytest.mark.usefixtures("require_root")


def list_testbed_bridges() -> list[str]:
    out = subprocess.run(["ovs-vsctl", "--timeout=5", "list-br"], capture_output=True, text=True).stdout.split()
    return [b for b in out if b.startswith("tb-")]


def tb_interfaces() -> list[str]:
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    return [link["ifname"] for link in links if link["ifname"].startswith("tb")]


def test_leaving_the_with_block_removes_everything_and_host_rules_are_unchanged(proxy_mode):
    before = root_network_state()
    with Cluster(topo="default", proxy_mode=proxy_mode, seed=1) as cluster:
        cluster.apply("examples/myapp.yaml")
        cluster_id = cluster.emulation.cluster_id
        assert list_testbed_bridges() and _marked_processes().get(cluster_id)
        assert root_network_state() == before  # nothing leaks into the host while running either
    assert root_network_state() == before
    assert _marked_processes().get(cluster_id) is None
    assert not [b for b in list_testbed_bridges()]
    assert not [i for i in tb_interfaces() if not i.startswith("tbsdn")]
    assert not Path(f"/run/testbed/{cluster_id}").exists()


def test_testbed_clean_removes_what_a_killed_run_left(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(
        "import os, sys\n"
        "from testbed import Cluster\n"
        "c = Cluster(seed=1).start()\n"
        "c.apply('examples/myapp.yaml')\n"
        "print(c.emulation.cluster_id, flush=True)\n"
        "os._exit(1)  # crash: no teardown\n")
    out = subprocess.run([os.sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    cluster_id = out.stdout.strip().splitlines()[-1]
    assert _marked_processes().get(cluster_id), out.stderr
    assert list_testbed_bridges()
    result = subprocess.run([os.sys.executable, "-m", "testbed.cli", "clean"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "killed" in result.stdout
    assert _marked_processes().get(cluster_id) is None
    assert not list_testbed_bridges()
    assert not Path(f"/run/testbed/{cluster_id}").exists()


def test_ctrl_c_in_testbed_up_tears_everything_down():
    before = root_network_state()
    process = subprocess.Popen([os.sys.executable, "-m", "testbed.cli", "up", "-f", "examples/myapp.yaml"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=Path(__file__).resolve().parents[2])
    output = []
    while True:
        line = process.stdout.readline()
        output.append(line)
        if "cluster ready" in line or not line:
            break
    assert "cluster ready" in output[-1], "".join(output)
    cluster_ids = [d.name for d in Path("/run/testbed").iterdir() if d.name != "ovs"]
    process.stdin.write("get svc myapp-svc-nodeport\n")
    process.stdin.flush()
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "80:32223/TCP" in rest and "*** tearing down" in rest and "*** done" in rest
    assert not list_testbed_bridges()
    for cluster_id in cluster_ids:
        assert _marked_processes().get(cluster_id) is None
        assert not Path(f"/run/testbed/{cluster_id}").exists()
    assert root_network_state() == before
