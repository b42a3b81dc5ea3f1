"""Open vSwitch daemons and the datapath the testbed runs on.

The testbed uses the host's Open vSwitch when its daemons already run, and otherwise starts
`ovsdb-server` and `ovs-vswitchd` itself (pid and log files under the run directory, database under
/var/lib/testbed/ovs so that the host's /etc/openvswitch/conf.db is never touched), and stops them
again when the last cluster leaves.

Datapath: the kernel datapath (`system`) where the `openvswitch` module is loaded or loadable,
otherwise the userspace datapath (`netdev`). The choice is recorded in every result, because the
userspace datapath has different performance and needs TX checksum offload off on veths.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..timescale import scaled

OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
OVS_RUNDIR = Path("/run/openvswitch")
DB_SOCKET = OVS_RUNDIR / "db.sock"
TESTBED_OVS_DIR = Path("/var/lib/testbed/ovs")
TESTBED_RUN = Path("/run/testbed")


class OvsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Datapath:
    type: str          # "system" (kernel) or "netdev" (userspace)
    reason: str        # why this one was chosen, for logs and result metadata

    @property
    def is_userspace(self) -> bool:
        return self.type == "netdev"


def run(*args: str, check: bool = True, timeout: float = 30, input: str | None = None) -> str:
    """Run a command in the root namespace; raise OvsError with its stderr on failure."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=scaled(timeout), input=input)
    if check and proc.returncode != 0:
        raise OvsError(f"{' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def vsctl(*args: str, check: bool = True) -> str:
    return run("ovs-vsctl", f"--timeout={int(scaled(10))}", *args, check=check)


def kernel_datapath_available() -> bool:
    if Path("/sys/module/openvswitch").exists():
        return True
    # Try to load it: modprobe is harmless when the module does not exist.
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "-q", "openvswitch"], capture_output=True)
    return Path("/sys/module/openvswitch").exists()


def choose_datapath(preferred: str | None = None) -> Datapath:
    if preferred == "netdev":
        return Datapath("netdev", "userspace datapath requested")
    if kernel_datapath_available():
        return Datapath("system", "kernel openvswitch module present")
    if preferred == "system":
        raise OvsError("kernel datapath requested but this kernel has no openvswitch module")
    return Datapath("netdev", "no openvswitch kernel module: userspace (netdev) datapath")


def _pid_alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


def daemons_running() -> bool:
    return subprocess.run(["ovs-vsctl", "--timeout=2", "show"], capture_output=True).returncode == 0 \
        and _vswitchd_running()


def _vswitchd_running() -> bool:
    return subprocess.run(["ovs-appctl", "--timeout=2", "-t", "ovs-vswitchd", "version"],
                          capture_output=True).returncode == 0


class OvsDaemons:
    """Starts Open vSwitch when it is not running; remembers whether we did, to stop it after."""

    def __init__(self, run_dir: Path = TESTBED_RUN / "ovs"):
        self.run_dir = run_dir

    @property
    def marker(self) -> Path:
        return self.run_dir / "started-by-testbed"

    def ensure(self) -> None:
        if daemons_running():
            return
        if not shutil.which("ovs-vswitchd"):
            raise OvsError("Open vSwitch is not installed (run `make setup`)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        TESTBED_OVS_DIR.mkdir(parents=True, exist_ok=True)
        OVS_RUNDIR.mkdir(parents=True, exist_ok=True)
        db = TESTBED_OVS_DIR / "conf.db"
        if not db.exists():
            run("ovsdb-tool", "create", str(db), OVS_SCHEMA)
        if subprocess.run(["ovs-vsctl", "--timeout=2", "show"], capture_output=True).returncode != 0:
            run("ovsdb-server", str(db), f"--remote=punix:{DB_SOCKET}",
                "--pidfile", "--detach",
                f"--log-file={self.run_dir / 'ovsdb-server.log'}")
            run("ovs-vsctl", "--no-wait", "init")
        if not _vswitchd_running():
            run("ovs-vswitchd", "--pidfile", "--detach",
                f"--log-file={self.run_dir / 'ovs-vswitchd.log'}")
        self.marker.write_text(str(os.getpid()))
        deadline = time.monotonic() + scaled(10)
        while not daemons_running():
            if time.monotonic() > deadline:
                raise OvsError(f"ovs-vswitchd did not come up; see {self.run_dir}/ovs-vswitchd.log")
            time.sleep(0.05)

    def restart_vswitchd(self) -> float:
        """Stop ovs-vswitchd and start it again (experiments on resync). Only when the testbed started
        the daemons: the host's own Open vSwitch is never restarted. Returns the epoch time of the
        restart."""
        if not self.marker.exists():
            raise OvsError("ovs-vswitchd was not started by the testbed; it will not restart the host's")
        subprocess.run(["ovs-appctl", "-t", "ovs-vswitchd", "exit"], capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        while _vswitchd_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        restarted = time.time()
        run("ovs-vswitchd", "--pidfile", "--detach", f"--log-file={self.run_dir / 'ovs-vswitchd.log'}")
        return restarted

    # Several clusters (and tests) may share the daemons: each registers as a user, and the daemons
    # stop only when the testbed started them, no registered user is alive and no bridge is left.
    def acquire(self, user: str) -> None:
        self.ensure()
        users = self.run_dir / "users"
        users.mkdir(parents=True, exist_ok=True)
        (users / user).write_text(str(os.getpid()))

    def release(self, user: str) -> None:
        (self.run_dir / "users" / user).unlink(missing_ok=True)
        self.stop_if_ours()

    def _live_users(self) -> list[str]:
        users = self.run_dir / "users"
        return [p.name for p in users.iterdir() if _pid_alive(p)] if users.exists() else []

    def stop_if_ours(self) -> None:
        """Stop the daemons if the testbed started them and nothing uses them any more."""
        if not self.marker.exists() or self._live_users():
            return
        listing = subprocess.run(["ovs-vsctl", "--timeout=5", "list-br"], capture_output=True, text=True)
        if listing.returncode != 0 or listing.stdout.split():
            return  # cannot tell, or bridges remain (ours or anybody's): leave the daemons running
        for name in ("ovs-vswitchd", "ovsdb-server"):
            # Default pid files, so that ovs-appctl finds the daemons' control sockets.
            if _pid_alive(OVS_RUNDIR / f"{name}.pid"):
                subprocess.run(["ovs-appctl", "-t", name, "exit"], capture_output=True, timeout=10)
        # Our own files go too: logs, the user registry and the private database.
        shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.rmtree(TESTBED_OVS_DIR, ignore_errors=True)
        for directory in (TESTBED_RUN, TESTBED_OVS_DIR.parent):
            try:
                directory.rmdir()  # only when empty
            except OSError:
                pass
