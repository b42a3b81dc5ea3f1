"""`testbed render ipvs` loads with ipvsadm-restore, in a scratch namespace of the guest (the host's
kernel has no IPVS to try it on). Skipped while the ipvs renderer does not exist."""
import re
import subprocess

import pytest

from testbed.cli import main


def test_ipvs_render_loads_with_ipvsadm_restore(netns, capsys):
    if main(["render", "ipvs", "-f", "examples/"]) != 0:
        pytest.skip(f"`testbed render ipvs` is not available yet: {capsys.readouterr().err.strip()}")
    rendered = capsys.readouterr().out
    services = re.findall(r"^-A (-[tu] \S+)", rendered, flags=re.MULTILINE)
    assert services, "the render has no virtual services"
    scratch = netns.add("render")
    subprocess.run(["modprobe", "ip_vs"], check=True)
    subprocess.run(["ip", "netns", "exec", scratch, "ipvsadm-restore"], input=rendered, text=True, check=True)
    loaded = netns.run(scratch, "ipvsadm -S -n")
    for service in services:
        assert f"-A {service} " in loaded, (service, loaded)
