"""`testbed vm`'s pure parts, without booting anything: which kernel package, the accelerator choice
and its cache, the virtme-ng command line, the guest's script and environment, the metadata."""
import json
import shlex
from pathlib import Path

import pytest

from testbed.cli import build_parser
from testbed.errors import TestbedError
from testbed.vm import accel, guest
from testbed.vm.accel import Accelerator, ProbeResult
from testbed.vm.kernel import GuestKernel, VmUnavailable, load_kernel, release_of, versioned_image_package
from testbed.vm.launch import (VmConfig, guest_script, guest_time_scale, parse_memory, parse_qemu_version,
                               vng_command)

APT_CACHE_DEPENDS = """linux-image-amd64
  Depends: linux-image-6.1.0-57-amd64
"""
KERNEL = GuestKernel("linux-image-6.1.0-57-amd64", "6.1.192-3", "6.1.0-57-amd64", Path("/p/.cache/vm/k"))


def config(name="tcg", cpus=1, scale=75.0) -> VmConfig:
    return VmConfig(KERNEL, Accelerator(name, "because"), "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)", "2G", cpus,
                    Path("/work/project"), Path("/work/project/.venv/bin/vng"), scale)


# -- the kernel package --------------------------------------------------------------------
def test_versioned_package_is_read_from_the_metapackage_dependency():
    assert versioned_image_package(APT_CACHE_DEPENDS) == "linux-image-6.1.0-57-amd64"


def test_no_dependency_means_no_package():
    assert versioned_image_package("") is None
    assert versioned_image_package("linux-image-amd64\n  Recommends: firmware-linux-free\n") is None


def test_release_is_the_package_name_without_its_prefix():
    assert release_of("linux-image-6.1.0-57-amd64") == "6.1.0-57-amd64"
    assert release_of("linux-image-6.1.0-57-amd64-unsigned") == "6.1.0-57-amd64"
    with pytest.raises(ValueError):
        release_of("linux-headers-6.1.0-57-amd64")


def test_kernel_paths():
    assert KERNEL.vmlinuz == Path("/p/.cache/vm/k/boot/vmlinuz-6.1.0-57-amd64")
    assert KERNEL.modules == Path("/p/.cache/vm/k/lib/modules/6.1.0-57-amd64")


def test_an_extracted_kernel_is_reused_only_when_complete(tmp_path):
    tree = tmp_path / "linux-image-6.1.0-57-amd64_6.1.192-3"
    record = {"package": KERNEL.package, "version": KERNEL.version, "release": KERNEL.release, "root": tree.name}
    (tmp_path / "kernel.json").write_text(json.dumps(record))
    assert load_kernel(tmp_path) is None                 # recorded, but the files are missing
    (tree / "boot").mkdir(parents=True)
    (tree / "boot" / "vmlinuz-6.1.0-57-amd64").write_bytes(b"")
    (tree / "lib" / "modules" / "6.1.0-57-amd64").mkdir(parents=True)
    kernel = load_kernel(tmp_path)
    assert kernel is not None and kernel.root == tree and kernel.release == "6.1.0-57-amd64"
    assert load_kernel(tmp_path / "nothing-here") is None


# -- the accelerator -------------------------------------------------------------------------
def test_a_passing_probe_means_kvm():
    chosen = accel.decide(None, None, ProbeResult(True, 3.2, "booted"))
    assert chosen.name == "kvm" and "3.2 s" in chosen.reason and chosen.probe_seconds == 3.2


def test_a_failed_or_hung_probe_means_tcg_and_says_why():
    hung = accel.decide(None, None, ProbeResult(False, 20.0, "no boot within 20 s"))
    assert hung.name == "tcg" and "no boot within 20 s" in hung.reason


def test_no_usable_device_means_tcg_without_a_probe():
    chosen = accel.decide(None, "/dev/kvm does not exist", None)
    assert chosen == Accelerator("tcg", "no KVM: /dev/kvm does not exist")


def test_a_forced_choice_wins_and_is_labelled():
    assert accel.decide("kvm", "/dev/kvm does not exist", None).reason == "forced by TESTBED_VM_ACCEL=kvm"
    with pytest.raises(ValueError):
        accel.decide("hvf", None, None)


def test_device_problem(tmp_path):
    assert "does not exist" in accel.kvm_device_problem(tmp_path / "kvm")
    device = tmp_path / "kvm"
    device.write_text("")
    assert accel.kvm_device_problem(device) is None


def test_the_verdict_is_cached_per_kernel_and_qemu(tmp_path, monkeypatch):
    monkeypatch.delenv(accel.FORCE_ENV, raising=False)
    monkeypatch.setattr(accel, "kvm_device_problem", lambda: None)
    probes = []

    def probe():
        probes.append(1)
        return ProbeResult(False, 0.4, "failed to set MSR")
    first = accel.choose(tmp_path, "6.1.0-57-amd64", "7.2.22", probe)
    second = accel.choose(tmp_path, "6.1.0-57-amd64", "7.2.22", probe)
    assert first.name == second.name == "tcg" and len(probes) == 1 and second.reason.endswith("(cached)")
    accel.choose(tmp_path, "6.1.0-58-amd64", "7.2.22", probe)   # another kernel: probed again
    assert len(probes) == 2
    stored = json.loads((tmp_path / accel.CACHE_FILE).read_text())
    assert set(stored) == {accel.cache_key("6.1.0-57-amd64", "7.2.22"), accel.cache_key("6.1.0-58-amd64", "7.2.22")}


def test_a_forced_choice_runs_no_probe(tmp_path, monkeypatch):
    monkeypatch.setenv(accel.FORCE_ENV, "tcg")
    assert accel.choose(tmp_path, "r", "q", lambda: pytest.fail("probed")).name == "tcg"
    assert not (tmp_path / accel.CACHE_FILE).exists()


def test_the_probe_only_passes_where_the_guest_sees_kvm():
    """qemu's accel=kvm:tcg falls back to TCG silently; the token must depend on the guest's own view."""
    assert "kvm-clock" in accel.PROBE_COMMAND and accel.PROBE_COMMAND.endswith(f"echo {accel.PROBE_TOKEN}")


# -- the command line and the guest's script -------------------------------------------------
def test_vng_command_under_tcg():
    command = vng_command(Path("/v/vng"), KERNEL, False, "2G", 1, Path("/work/project"), "sh /tmp/x/guest.sh")
    assert command == ["/v/vng", "--run", str(KERNEL.vmlinuz), "--force-9p", "--disable-kvm", "--memory", "2G",
                       "--cpus", "1", "--rwdir", "/work/project", "--cwd", "/work/project", "--exec", "sh /tmp/x/guest.sh"]


def test_vng_command_under_kvm_does_not_disable_it():
    assert "--disable-kvm" not in vng_command(Path("vng"), KERNEL, True, "1G", 2, Path("/p"), "true")


def test_guest_script_exports_what_the_guest_reads_and_execs_the_command():
    script = guest_script(["pytest", "-k", "a b", "it's"], config())
    lines = script.splitlines()
    assert lines[-1] == "exec pytest -k 'a b' 'it'\"'\"'s'"
    assert "export TESTBED_TIME_SCALE=75" in lines
    assert "export PATH=/work/project/.venv/bin:\"$PATH\"" in lines
    assert "cd /work/project || exit 125" in lines
    assert any(line.startswith("mkdir -p /var/lib/testbed && mount -t tmpfs") for line in lines[:-1])
    assert "ln -sfn /proc/self/fd/1 /dev/stdout" in lines and lines.index("ln -sfn /proc/self/fd/1 /dev/stdout") < len(lines) - 1
    info_line = next(line for line in lines if line.startswith("export TESTBED_VM_INFO="))
    info = json.loads(shlex.split(info_line.split("=", 1)[1])[0])
    assert info == config().metadata()


def test_metadata_says_what_ran_and_warns_about_tcg_times():
    meta = config().metadata()
    assert meta["kernel_release"] == "6.1.0-57-amd64" and meta["accelerator"] == "tcg"
    assert meta["qemu_version"].startswith("7.2.22") and meta["memory"] == "2G" and meta["cpus"] == 1
    assert "not comparable" in meta["note"]
    assert "not comparable" in config().summary() and "TCG" in config().summary()
    assert "not comparable" not in config("kvm", 2, 2.0).summary()


def test_time_scale_follows_the_accelerator_unless_the_user_set_one():
    assert guest_time_scale("tcg", {}) == 75.0 and guest_time_scale("kvm", {}) == 2.0
    assert guest_time_scale("tcg", {"TESTBED_TIME_SCALE": "10"}) == 10.0
    assert guest_time_scale("tcg", {"TESTBED_TIME_SCALE": "0.1"}) == 1.0


def test_memory_and_qemu_version_parsing():
    assert parse_memory("2g") == "2G" and parse_memory("1536M") == "1536M" and parse_memory("2048") == "2048"
    with pytest.raises(TestbedError):
        parse_memory("lots")
    assert parse_qemu_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright ...") \
        == "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"
    with pytest.raises(VmUnavailable):
        parse_qemu_version("")


def test_cli_takes_the_command_after_the_double_dash():
    args = build_parser().parse_args(["vm", "--memory", "3G", "--cpus", "2", "--", "make", "-k", "test"])
    assert (args.memory, args.cpus, args.command_line) == ("3G", 2, ["--", "make", "-k", "test"])
    assert build_parser().parse_args(["vm", "--", "ls"]).cpus is None   # the accelerator's default


# -- what the guest reads --------------------------------------------------------------------
def test_outside_a_vm_nothing_scales_and_there_is_no_metadata(monkeypatch):
    monkeypatch.delenv(guest.TIME_SCALE_ENV, raising=False)
    monkeypatch.delenv(guest.VM_INFO_ENV, raising=False)
    assert guest.scaled(5) == 5 and not guest.in_guest() and guest.vm_metadata() is None
    assert guest.accelerator_of_this_machine() == "none"


def test_inside_a_vm_timeouts_scale_and_metadata_reads_the_running_kernel(monkeypatch):
    monkeypatch.setenv(guest.TIME_SCALE_ENV, "75")
    monkeypatch.setenv(guest.VM_INFO_ENV, json.dumps({"accelerator": "tcg", "kernel_release": "meant"}))
    assert guest.scaled(2) == 150
    import os
    assert guest.vm_metadata()["kernel_release"] == os.uname().release
    assert guest.accelerator_of_this_machine() == "tcg"


@pytest.mark.parametrize("value", ["fast", "0.5", "-3"])
def test_a_bad_time_scale_is_ignored(monkeypatch, value):
    monkeypatch.setenv(guest.TIME_SCALE_ENV, value)
    assert guest.time_scale() == 1.0


def test_cli_says_why_the_vm_cannot_run_and_exits_3(monkeypatch, capsys):
    import testbed.vm.launch as launch
    from testbed.cli import main

    def unavailable(**kwargs):
        raise VmUnavailable("qemu cannot run: qemu-system-x86_64 is not installed")
    monkeypatch.setattr(launch, "prepare", unavailable)
    assert main(["vm", "--", "true"]) == 3
    assert capsys.readouterr().err.strip() == \
        "testbed vm: cannot run here: qemu cannot run: qemu-system-x86_64 is not installed"
    assert main(["vm"]) == 1   # no command: a usage error, not "cannot run"
