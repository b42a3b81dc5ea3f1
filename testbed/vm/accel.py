"""KVM or TCG: which accelerator a guest gets, decided by a short boot probe whose verdict is cached.

/dev/kvm existing proves little: under nested virtualisation that does not work, a KVM guest hangs
at boot or qemu aborts (this machine's qemu: "failed to set MSR 0x10a"). So the probe boots the real
guest kernel under KVM with a command that prints a token, with a short timeout. A working KVM
boots in a few seconds; anything else (a hang, an abort, no token) means TCG, software emulation,
which always works but is 50-75x slower. The verdict is cached per kernel release and qemu version
(.cache/vm/accelerator.json), so only the first run pays for the probe; TESTBED_VM_ACCEL=kvm|tcg
skips the probe and forces a choice.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ACCELERATORS = ("kvm", "tcg")
FORCE_ENV = "TESTBED_VM_ACCEL"
CACHE_FILE = "accelerator.json"
KVM_PROBE_TIMEOUT = 20.0   # a working KVM boots this kernel in a few seconds; TCG takes 25-40 s
PROBE_TOKEN = "testbed-kvm-probe-ok"
# The token only where the guest itself sees KVM (kvm-clock exists only under KVM), so that a qemu
# that quietly fell back to TCG cannot pass the probe.
PROBE_COMMAND = (f"grep -qw kvm-clock /sys/devices/system/clocksource/clocksource0/available_clocksource "
                 f"&& echo {PROBE_TOKEN}")


@dataclass(frozen=True)
class Accelerator:
    name: str                  # "kvm" or "tcg"
    reason: str                # why, for the line `testbed vm` prints and for result metadata
    probe_seconds: float | None = None   # how long the KVM probe took (None: no probe ran)


@dataclass(frozen=True)
class ProbeResult:
    booted: bool               # the guest ran the probe command and printed the token
    seconds: float
    detail: str                # qemu's last line of complaint, or "timed out after N s"


def kvm_device_problem(device: Path = Path("/dev/kvm")) -> str | None:
    """Why KVM is certainly unusable without booting anything (None: worth a probe)."""
    if not device.exists():
        return f"{device} does not exist"
    if not os.access(device, os.R_OK | os.W_OK):
        return f"{device} is not readable and writable by this user"
    return None


def decide(forced: str | None, device_problem: str | None, probe: ProbeResult | None) -> Accelerator:
    """The accelerator from what is known: a forced choice, the device check, the probe's result.

    `probe` is None when no probe ran (it is only run when `forced` is unset and the device is fine)."""
    if forced:
        if forced not in ACCELERATORS:
            raise ValueError(f"{FORCE_ENV}={forced!r}: choose kvm or tcg")
        return Accelerator(forced, f"forced by {FORCE_ENV}={forced}")
    if device_problem is not None:
        return Accelerator("tcg", f"no KVM: {device_problem}")
    if probe is None:
        raise ValueError("/dev/kvm looks usable: a probe result is needed to decide")
    if probe.booted:
        return Accelerator("kvm", f"KVM boot probe passed in {probe.seconds:.1f} s", probe.seconds)
    return Accelerator("tcg", f"KVM boot probe failed: {probe.detail}", probe.seconds)


def cache_key(kernel_release: str, qemu_version: str) -> str:
    return f"{kernel_release} / qemu {qemu_version}"


def load_cached(cache_dir: Path, key: str) -> Accelerator | None:
    try:
        entry = json.loads((cache_dir / CACHE_FILE).read_text())[key]
        return Accelerator(entry["name"], entry["reason"] + " (cached)", entry.get("probe_seconds"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(cache_dir: Path, key: str, accelerator: Accelerator) -> None:
    path = cache_dir / CACHE_FILE
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        entries = {}
    entries[key] = {**asdict(accelerator), "probed": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=1) + "\n")
    tmp.replace(path)


def choose(cache_dir: Path, kernel_release: str, qemu_version: str, run_probe) -> Accelerator:
    """The accelerator for this kernel and qemu: forced, cached, or probed now (and cached).

    `run_probe()` boots the guest under KVM and returns a ProbeResult; it is called at most once."""
    forced = os.environ.get(FORCE_ENV) or None
    if forced:
        return decide(forced, None, None)
    problem = kvm_device_problem()
    if problem is not None:
        return decide(None, problem, None)  # not cached: the device may appear later (a module load)
    key = cache_key(kernel_release, qemu_version)
    cached = load_cached(cache_dir, key)
    if cached is not None:
        return cached
    accelerator = decide(None, None, run_probe())
    store(cache_dir, key, accelerator)
    return accelerator
