"""What code running inside `testbed vm` can know about its machine, read from the environment.

`testbed vm` exports two variables into the guest:
- TESTBED_TIME_SCALE: how much longer than on the host things may take. Under TCG (software
  emulation) everything runs 50-75 times slower, so a timeout that is generous on the host fails
  there. Settle logic and test timeouts wrap their limits in `scaled(seconds)`. Outside a VM the
  variable is unset and `scaled` returns its argument (a user may still set it on a slow host).
- TESTBED_VM_INFO: JSON with what ran (kernel release, accelerator, qemu version, memory, cpus), so
  that experiment results record it: times measured under TCG are not comparable with anything
  else, and a result must say so.
"""
from __future__ import annotations

import json
import os

from ..timescale import TIME_SCALE_ENV, scaled, time_scale  # noqa: F401 (re-exported for guest code)

VM_INFO_ENV = "TESTBED_VM_INFO"
TCG_NOTE = ("times under TCG (qemu's software emulation) are 50-75x slower than native and not comparable "
            "with native or KVM runs")
KVM_NOTE = "times under KVM include virtualisation overhead (9p root filesystem); compare only with KVM runs"


def in_guest() -> bool:
    return VM_INFO_ENV in os.environ


def vm_metadata() -> dict | None:
    """What ran, as `testbed vm` recorded it (None outside a VM).

    The kernel release is read from the running kernel, not only from what the host meant to boot."""
    raw = os.environ.get(VM_INFO_ENV)
    if raw is None:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        info = {"error": f"unreadable {VM_INFO_ENV}"}
    info["kernel_release"] = os.uname().release
    return info


def accelerator_of_this_machine() -> str:
    """`kvm` or `tcg` inside `testbed vm`, `none` on a machine that is not one of its guests: the value
    for the `accelerator` field of result metadata."""
    info = vm_metadata()
    return info.get("accelerator", "unknown") if info else "none"
