"""`testbed vm`'s process handling, with a stand-in for vng (a shell script, no VM): the exit code and
the output pass through, output redirected to a file is not overwritten, and SIGTERM or Ctrl-C stop
the whole session (vng and the qemu it started) and remove the temporary folder."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

RUNNER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from testbed.vm.accel import Accelerator
    from testbed.vm.kernel import GuestKernel
    from testbed.vm.launch import VmConfig, run
    kernel = GuestKernel("linux-image-r", "1", "r", Path("/nonexistent"))
    config = VmConfig(kernel, Accelerator("tcg", "test"), "7.2", "1G", 1, Path.cwd(), Path(sys.argv[1]), 75.0)
    sys.exit(run(config, ["true"]))
""")


def stand_in_vng(tmp_path: Path, body: str) -> Path:
    vng = tmp_path / "vng"
    vng.write_text("#!/bin/sh\n" + body)
    vng.chmod(0o755)
    return vng


def start(tmp_path, vng, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmp_path)}   # mkdtemp's folder lands here, where the test can look
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(vng)], env=env, **kwargs)


def test_exit_code_and_output_pass_through_and_a_log_file_is_kept_whole(tmp_path):
    vng = stand_in_vng(tmp_path, 'echo "to stdout"; echo "to stderr" >&2; exit 7\n')
    log = tmp_path / "log"
    with open(log, "w") as out:
        out.write("before\n")
        out.flush()
        proc = start(tmp_path, vng, stdout=out, stderr=subprocess.STDOUT)
        assert proc.wait(timeout=30) == 7
    text = log.read_text()
    assert text.startswith("before\n") and "to stdout\n" in text and "to stderr\n" in text
    assert not list(tmp_path.glob("testbed-vm-*"))


def test_sigterm_stops_the_whole_session_and_leaves_nothing(tmp_path):
    pidfile = tmp_path / "qemu.pid"
    # Like vng: a child (qemu) that would outlive its parent, in the same session.
    vng = stand_in_vng(tmp_path, f'sleep 300 & echo $! > {pidfile}; wait\n')
    proc = start(tmp_path, vng)
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    qemu = int(pidfile.read_text())
    assert list(tmp_path.glob("testbed-vm-*"))          # the run's folder exists while it runs
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert not Path(f"/proc/{qemu}").exists() or "zombie" in Path(f"/proc/{qemu}/status").read_text().lower()
    assert not list(tmp_path.glob("testbed-vm-*"))


def test_ctrl_c_stops_the_session_with_exit_130(tmp_path):
    started = tmp_path / "started"
    vng = stand_in_vng(tmp_path, f'touch {started}; sleep 300 & wait\n')
    proc = start(tmp_path, vng)
    deadline = time.monotonic() + 20
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert not list(tmp_path.glob("testbed-vm-*"))
