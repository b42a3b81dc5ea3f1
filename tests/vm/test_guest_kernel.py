"""The guest is what `testbed vm` says it is, and its kernel has what this machine's lacks."""
import os
import re
from pathlib import Path

import pytest

from testbed.vm import time_scale, vm_metadata

from tests.vm.support import sh


def test_guest_records_what_ran():
    info = vm_metadata()
    assert info["kernel_release"] == os.uname().release
    assert info["kernel_package"].startswith(f"linux-image-{info['kernel_release']} ")
    assert info["accelerator"] in ("kvm", "tcg") and info["qemu_version"] and info["note"]
    assert info["cpus"] == os.cpu_count()
    assert time_scale() == info["time_scale"]


def test_accelerator_label_is_true():
    """kvm-clock exists only under KVM: a run labelled tcg must not have it, one labelled kvm must."""
    clocks = Path("/sys/devices/system/clocksource/clocksource0/available_clocksource").read_text().split()
    assert ("kvm-clock" in clocks) == (vm_metadata()["accelerator"] == "kvm"), clocks


@pytest.mark.parametrize("module", ["ip_vs", "openvswitch", "sch_netem"])
def test_kernel_module_loads(module):
    sh(f"modprobe {module}")
    assert Path("/sys/module", module).exists()


def test_project_folder_is_writable_and_shared():
    """Results written into the project folder must reach the host (virtme-ng's --rwdir): the guest's
    root is a read-only 9p mount with overlays, so a write anywhere else stays in the guest."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    project = str(Path.cwd())
    assert any(line.split()[1] == project and line.split()[2] == "9p" and "rw" in line.split()[3].split(",")
               for line in mounts), "project folder not mounted read-write over 9p"


def test_netem_delays_packets(netns):
    a, b = netns.add("a"), netns.add("b")
    end_a, _ = netns.link(a, "192.168.77.1/24", b, "192.168.77.2/24")
    netns.run(a, f"tc qdisc add dev {end_a} root netem delay 100ms")
    out = netns.run(a, "ping -c 3 -i 0.3 -W 5 192.168.77.2", timeout=30)
    rtts = [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]
    assert len(rtts) == 3 and min(rtts) >= 100.0, out


def test_dev_stdout_is_each_process_own():
    """/dev/stdout must be the writer's own fd 1, as on any Linux system. virtme-ng links it to a
    virtio console port, which takes one opener at a time: nginx's `access_log /dev/stdout` then made
    `nginx -t` fail with EBUSY while the master held it, and the writes went to the VM's console."""
    import subprocess
    for name, fd in (("stdin", 0), ("stdout", 1), ("stderr", 2)):
        assert os.readlink(f"/dev/{name}") == f"/proc/self/fd/{fd}"
    holder = subprocess.Popen(["sh", "-c", "exec 3>/dev/stdout; sleep 30"], stdout=subprocess.PIPE)
    try:
        second = subprocess.run(["sh", "-c", "echo captured > /dev/stdout"], capture_output=True, text=True)
        assert (second.returncode, second.stdout) == (0, "captured\n"), second.stderr
    finally:
        holder.kill()
        holder.wait()


def test_testbed_state_is_the_guest_own():
    """The OVS database directory is on a tmpfs of the guest, not on the overlay over the host's /var
    (which a testbed run on the host changes underneath)."""
    mounts = {line.split()[1]: line.split()[2] for line in Path("/proc/self/mounts").read_text().splitlines()}
    assert mounts.get("/var/lib/testbed") == "tmpfs", mounts
