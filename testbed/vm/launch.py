"""The micro-VM itself: virtme-ng's command line, the run, and what ran.

    vng --run .cache/vm/<kernel>/boot/vmlinuz-R --force-9p [--disable-kvm] --memory M --cpus N
        --rwdir PROJECT --cwd PROJECT --exec "sh /tmp/testbed-vm-XXXX/guest.sh"

- `--force-9p`: the host's root filesystem is the guest's over 9p (virtiofsd is not needed), so the
  guest sees the host's packages and the project's .venv unchanged. virtme-ng mounts it read-only
  with tmpfs overlays on /etc, /usr, /var, /tmp, ...: the guest may write there, the host never sees
  it. `--rwdir PROJECT` shares the project folder read-write, so results written there persist.
- The command runs from a small script (host /tmp, visible in the guest through the /tmp overlay)
  rather than on the kernel command line, which holds only 2 KiB: it exports what the guest should
  know (TESTBED_TIME_SCALE, TESTBED_VM_INFO, the project's .venv/bin first on PATH) and `exec`s the
  command. virtme-ng passes the command's stdout, stderr and exit code back through virtio-serial
  ports (named by udev in the guest).
- vng and qemu run in a session of their own: Ctrl-C or SIGTERM on `testbed vm` stops that whole
  session (SIGTERM, then SIGKILL), restores the terminal and removes the temporary folder.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import TestbedError
from ..net.ovs import TESTBED_OVS_DIR
from . import accel
from .accel import Accelerator, ProbeResult
from .guest import KVM_NOTE, TCG_NOTE, TIME_SCALE_ENV, VM_INFO_ENV
from .kernel import GuestKernel, VmUnavailable, ensure_kernel, load_kernel

PROJECT_DIR = Path(__file__).resolve().parents[2]
CACHE_DIR = PROJECT_DIR / ".cache" / "vm"
QEMU = "qemu-system-x86_64"
DEFAULT_MEMORY = "2G"
# Under TCG one vCPU boots in about half the time two take on this 2-core machine (29 s against
# 57 s: the vCPU threads, qemu's 9p server and its I/O thread compete for the host's cores).
DEFAULT_CPUS = {"tcg": 1, "kvm": 2}
# How much longer things may take in the guest than on the host. TCG measured here: boot 16 s,
# the demo's 3-node bring-up 76x slower (107 s instead of 1.4 s), pure Python ~50x.
TIME_SCALE = {"tcg": 75.0, "kvm": 2.0}
STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class VmConfig:
    kernel: GuestKernel
    accelerator: Accelerator
    qemu_version: str
    memory: str
    cpus: int
    project_dir: Path
    vng: Path
    time_scale: float

    def metadata(self) -> dict:
        """What ran: recorded by results made inside the guest (TESTBED_VM_INFO) and printed at start."""
        return {"kernel_release": self.kernel.release, "kernel_package": f"{self.kernel.package} {self.kernel.version}",
                "accelerator": self.accelerator.name, "accelerator_reason": self.accelerator.reason,
                "qemu_version": self.qemu_version, "memory": self.memory, "cpus": self.cpus,
                "time_scale": self.time_scale, "note": TCG_NOTE if self.accelerator.name == "tcg" else KVM_NOTE}

    def summary(self) -> str:
        tcg = self.accelerator.name == "tcg"
        how = f"TCG software emulation ({self.accelerator.reason})" if tcg else f"KVM ({self.accelerator.reason})"
        cpus = f"{self.cpus} CPU" + ("s" if self.cpus > 1 else "")
        caveat = "; times under TCG are not comparable with native or KVM runs" if tcg else ""
        return (f"testbed vm: kernel {self.kernel.release} ({self.kernel.package} {self.kernel.version}), "
                f"qemu {self.qemu_version.split()[0]}, {how}, {cpus}, {self.memory}; timeouts x{self.time_scale:g}{caveat}")


def parse_memory(text: str) -> str:
    """qemu's -m syntax as users write it: 2G, 1536M, 2048 (MiB)."""
    if not re.fullmatch(r"[1-9]\d*[MG]?", text.strip(), flags=re.IGNORECASE):
        raise TestbedError(f"vm: --memory {text!r}: give a size such as 2G or 1536M")
    return text.strip().upper()


def parse_qemu_version(version_output: str) -> str:
    """`qemu-system-x86_64 --version` -> '7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)'."""
    match = re.search(r"version\s+(\S.*)", version_output.splitlines()[0] if version_output else "")
    if not match:
        raise VmUnavailable(f"cannot read qemu's version from {version_output[:80]!r}")
    return match.group(1).strip()


def guest_time_scale(accelerator: str, environ: dict) -> float:
    """The factor the guest's timeouts get: the user's TESTBED_TIME_SCALE if set, else the
    accelerator's measured slowdown."""
    try:
        return max(1.0, float(environ[TIME_SCALE_ENV]))
    except (KeyError, ValueError):
        return TIME_SCALE[accelerator]


GUEST_STATE_DIR = TESTBED_OVS_DIR.parent   # the testbed's state on the guest's own tmpfs (see guest_script)


def guest_script(argv: list[str], config: VmConfig) -> str:
    """The shell script the guest runs: the environment that code inside reads, then the command."""
    venv_bin = config.project_dir / ".venv" / "bin"
    exports = {TIME_SCALE_ENV: f"{config.time_scale:g}", VM_INFO_ENV: json.dumps(config.metadata(), sort_keys=True)}
    lines = ["# written by `testbed vm`; runs inside the guest"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in exports.items()]
    lines.append(f'export PATH={shlex.quote(str(venv_bin))}:"$PATH"')
    # virtme-ng points /dev/stdin, /dev/stdout and /dev/stderr at its virtio console ports. A port
    # takes one opener at a time (a second open() gets EBUSY: nginx's `access_log /dev/stdout` then
    # fails `nginx -t` while the master holds it), and what a process writes there reaches the VM's
    # console instead of its own stdout. The usual links (as udev/systemd make them) are per process.
    lines += [f"ln -sfn /proc/self/fd/{fd} /dev/{name}" for fd, name in enumerate(("stdin", "stdout", "stderr"))]
    # The guest's /var is an overlay whose lower layer is the host's live /var: a testbed run on the
    # host creating or removing its OVS database meanwhile made the guest's ovsdb-tool fail ("failed
    # to lock lockfile"). The guest's testbed state lives on its own tmpfs (/run is one already).
    lines.append(f"mkdir -p {GUEST_STATE_DIR} && mount -t tmpfs -o mode=0755 testbed-state {GUEST_STATE_DIR}"
                 f" || echo 'testbed vm: could not mount a tmpfs on {GUEST_STATE_DIR}' >&2")
    lines.append(f"cd {shlex.quote(str(config.project_dir))} || exit 125")
    lines.append(f"exec {shlex.join(argv)}")
    return "\n".join(lines) + "\n"


def vng_command(vng: Path, kernel: GuestKernel, kvm: bool, memory: str, cpus: int, project_dir: Path,
                shell_command: str) -> list[str]:
    """virtme-ng's command line for one run (see the module docstring for why each option)."""
    return [str(vng), "--run", str(kernel.vmlinuz), "--force-9p", *([] if kvm else ["--disable-kvm"]),
            "--memory", memory, "--cpus", str(cpus), "--rwdir", str(project_dir), "--cwd", str(project_dir),
            "--exec", shell_command]


def _vng_environment(vng: Path, tmpdir: str) -> dict:
    """vng calls virtme-run by name (it lives beside vng); its temporary files go to our folder."""
    return {**os.environ, "PATH": f"{vng.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}", "TMPDIR": tmpdir}


def find_tools() -> tuple[Path, str]:
    """vng and qemu's version, or VmUnavailable naming what is missing."""
    if platform.machine() != "x86_64":
        raise VmUnavailable(f"testbed vm boots Debian's amd64 kernel and needs an x86_64 host, not {platform.machine()}")
    vng = Path(sys.executable).parent / "vng"
    if not vng.exists():
        found = shutil.which("vng")
        if not found:
            raise VmUnavailable("virtme-ng is not installed (requirements.txt pins virtme-ng==1.42; run `make setup`)")
        vng = Path(found)
    if not shutil.which(QEMU):
        raise VmUnavailable(f"qemu cannot run: {QEMU} is not installed (Debian package qemu-system-x86; "
                            "`make setup` installs it)")
    if not shutil.which("busybox"):
        raise VmUnavailable("virtme-ng builds the guest's initramfs with busybox, which is not installed "
                            "(Debian package busybox-static)")
    if not any(Path(p).exists() for p in ("/lib/systemd/systemd-udevd", "/usr/lib/systemd/systemd-udevd")):
        raise VmUnavailable("the guest needs udev to name the ports that carry the command's output and exit code "
                            "(Debian package udev)")
    try:
        out = subprocess.run([QEMU, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise VmUnavailable(f"qemu cannot run: {QEMU} --version: {err}") from None
    if out.returncode != 0:
        raise VmUnavailable(f"qemu cannot run: {QEMU} --version: {out.stderr.strip() or out.returncode}")
    return vng, parse_qemu_version(out.stdout)


def _stop_session(proc: subprocess.Popen) -> None:
    """Stop vng and qemu (their own session): SIGTERM, then SIGKILL after a grace period. Done when
    the leader is reaped and nothing is left in the session (qemu may outlive vng)."""
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _session_alive(proc.pid):
                return
            time.sleep(0.1)


def _session_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def probe_kvm(vng: Path, kernel: GuestKernel, project_dir: Path, timeout: float = accel.KVM_PROBE_TIMEOUT) -> ProbeResult:
    """Boot the guest under KVM to print a token; a hang or an abort within `timeout` means no."""
    with tempfile.TemporaryDirectory(prefix="testbed-vm-probe-") as tmpdir:
        command = vng_command(vng, kernel, True, "512M", 1, project_dir, accel.PROBE_COMMAND)
        started = time.monotonic()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=_vng_environment(vng, tmpdir), start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_session(proc)
            proc.communicate()
            return ProbeResult(False, time.monotonic() - started, f"no boot within {timeout:.0f} s")
        finally:
            if proc.poll() is None:
                _stop_session(proc)
        seconds = time.monotonic() - started
        if proc.returncode == 0 and accel.PROBE_TOKEN in out:
            return ProbeResult(True, seconds, "booted")
        complaint = [line for line in err.splitlines() if line.strip()]
        return ProbeResult(False, seconds, complaint[-1].strip()[:200] if complaint else f"exit {proc.returncode}")


def prepare(memory: str = DEFAULT_MEMORY, cpus: int | None = None, project_dir: Path = PROJECT_DIR,
            cache_dir: Path = CACHE_DIR, log=None) -> VmConfig:
    """Everything a run needs: tools, the kernel (fetched once), the accelerator (probed once).
    `cpus` None: the accelerator's default (DEFAULT_CPUS)."""
    memory = parse_memory(memory)
    if cpus is not None and cpus < 1:
        raise TestbedError(f"vm: --cpus {cpus}: at least 1")
    vng, qemu_version = find_tools()
    if load_kernel(cache_dir) is None and log:
        log("testbed vm: fetching Debian's kernel package (once; kept under .cache/vm/)")
    kernel = ensure_kernel(cache_dir)

    def run_probe() -> ProbeResult:
        if log:
            log(f"testbed vm: probing KVM (a boot of at most {accel.KVM_PROBE_TIMEOUT:.0f} s; the verdict is cached)")
        return probe_kvm(vng, kernel, project_dir)

    accelerator = accel.choose(cache_dir, kernel.release, qemu_version, run_probe)
    cpus = cpus or DEFAULT_CPUS[accelerator.name]
    return VmConfig(kernel, accelerator, qemu_version, memory, cpus, project_dir, vng,
                    guest_time_scale(accelerator.name, os.environ))


class _Terminated(Exception):
    pass


def _usable(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _output_for_qemu(fd: int):
    """What vng gets as stdout or stderr. qemu opens /proc/self/fd/N by path, with O_TRUNC and an
    offset of its own: a terminal or a pipe survives that, a regular file (`testbed vm ... > log`)
    would lose what was written before and be overwritten from its start. So anything but a
    terminal gets a pipe that a thread copies to our own descriptor."""
    if not _usable(fd):
        return subprocess.DEVNULL
    return None if os.isatty(fd) else subprocess.PIPE


def _copy(source, fd: int) -> None:
    for chunk in iter(lambda: source.read1(65536), b""):
        try:
            os.write(fd, chunk)
        except OSError:
            pass  # the reader went away (a closed pipe): keep draining so the guest is not blocked


def run(config: VmConfig, argv: list[str]) -> int:
    """Run `argv` in the guest; its exit code (130 after Ctrl-C, 143 after SIGTERM)."""
    if not argv:
        raise TestbedError("vm: which command? (testbed vm -- CMD ...)")
    saved_tty = None
    if _usable(0) and os.isatty(0):
        import termios
        saved_tty = termios.tcgetattr(0)   # qemu puts the terminal in raw mode; put it back whatever happens
    previous_term = None
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        def terminate(signum, frame):
            raise _Terminated()
        previous_term = signal.signal(signal.SIGTERM, terminate)
    tmpdir = tempfile.mkdtemp(prefix="testbed-vm-")
    proc = None
    try:
        script = Path(tmpdir) / "guest.sh"
        script.write_text(guest_script(argv, config))
        command = vng_command(config.vng, config.kernel, config.accelerator.name == "kvm", config.memory,
                              config.cpus, config.project_dir, f"sh {shlex.quote(str(script))}")
        proc = subprocess.Popen(command, env=_vng_environment(config.vng, tmpdir),
                                stdin=None if _usable(0) else subprocess.DEVNULL, stdout=_output_for_qemu(1),
                                stderr=_output_for_qemu(2), start_new_session=True)
        copiers = [threading.Thread(target=_copy, args=(stream, fd), daemon=True)
                   for stream, fd in ((proc.stdout, 1), (proc.stderr, 2)) if stream is not None]
        for copier in copiers:
            copier.start()
        returncode = proc.wait()
        for copier in copiers:
            copier.join(timeout=STOP_GRACE_SECONDS)  # qemu's last output, once it has closed its end
        return returncode
    except KeyboardInterrupt:
        print("testbed vm: interrupted; stopping the VM", file=sys.stderr)
        return 130
    except _Terminated:
        print("testbed vm: terminated; stopping the VM", file=sys.stderr)
        return 143
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a second SIGTERM must not cut the clean-up short
        if proc is not None and (proc.poll() is None or _session_alive(proc.pid)):
            _stop_session(proc)
        if saved_tty is not None:
            import termios
            termios.tcsetattr(0, termios.TCSADRAIN, saved_tty)
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
        shutil.rmtree(tmpdir, ignore_errors=True)
