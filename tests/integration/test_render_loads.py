"""The userspace and ipvs renders load into real kernel tables of a scratch namespace on this
host: the userspace portals with iptables-restore, the ipvs mode's ipsets with ipset restore and
its iptables part with iptables-restore (the ipvsadm part needs a kernel with IPVS: see
test_ipvs_live.py, run under `testbed vm`)."""
import subprocess
import uuid

import pytest

from testbed import Cluster
from testbed.backends.ipvs import render_ipvs
from testbed.backends.userspace import render_userspace
from testbed.proxy.render import node_infos


@pytest.fixture
def namespace(require_root):
    name = f"tbtest-render-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield lambda *args, input=None: subprocess.run(["ip", "netns", "exec", name, *args], input=input,
                                                   capture_output=True, text=True)
    subprocess.run(["ip", "netns", "del", name], check=False)


def cluster_ports():
    c = Cluster(network=False, seed=1)
    c.apply("examples/")
    return c.service_ports(), node_infos(c)[0]


def section(text: str, title: str) -> str:
    """The commented part of the ipvs render that follows `# --- title ---`, uncommented."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("# --- "):
            inside = line.startswith(f"# --- {title}")
            continue
        if inside and line.startswith("# "):
            lines.append(line[2:])
    return "\n".join(lines) + "\n"


def test_the_userspace_render_loads_with_iptables_restore(namespace):
    ports, node = cluster_ports()
    text = render_userspace(ports, node)
    rules = text[text.index("*nat"):]
    loaded = namespace("iptables-restore", "--noflush", input=rules)
    assert loaded.returncode == 0, loaded.stderr
    saved = namespace("iptables-save").stdout
    assert saved.count("-j REDIRECT --to-ports") == rules.count("-j REDIRECT --to-ports")


def test_the_ipvs_renders_ipset_and_iptables_parts_load(namespace):
    ports, node = cluster_ports()
    text = render_ipvs(ports, node)
    sets = section(text, "ipset restore")
    assert namespace("ipset", "restore", input=sets).returncode == 0
    assert "KUBE-CLUSTER-IP" in namespace("ipset", "list", "-n").stdout
    loaded = namespace("iptables-restore", "--noflush", input=section(text, "iptables-restore"))
    assert loaded.returncode == 0, loaded.stderr
    assert "--match-set KUBE-CLUSTER-IP dst,dst" in namespace("iptables-save").stdout
