"""`testbed vm`: run a command under Debian's own kernel, in a micro-VM, on the host's own files.

Why: many kernels the testbed meets (this machine's, containers', WSL's, minimal cloud images') lack
IPVS, the openvswitch module or netem, so `ipvs` mode, the OVS kernel datapath and link delay cannot
run there. Debian's `linux-image-amd64` has all three. virtme-ng boots it under qemu with the host's
root filesystem as the guest's (9p, read-only with tmpfs overlays on /etc, /var, /tmp, ...) and the
project folder shared read-write, so the project's `.venv` works inside unchanged and whatever the
command writes into the project folder (results/, reports) is on the host afterwards.

    guest.py   what code inside the guest reads: time scale, what ran (from the environment)
    kernel.py  Debian's kernel package, fetched and extracted once under .cache/vm/
    accel.py   KVM when a short boot probe shows it works, else TCG; the verdict cached
    launch.py  the virtme-ng command line and the run (exit code and output through, Ctrl-C cleans up)

Only guest.py is imported here: product code and tests call `scaled()` and `vm_metadata()` often,
and those need nothing but the environment.
"""
from .guest import (TCG_NOTE, TIME_SCALE_ENV, VM_INFO_ENV, accelerator_of_this_machine, in_guest, scaled,
                    time_scale, vm_metadata)

__all__ = ["TCG_NOTE", "TIME_SCALE_ENV", "VM_INFO_ENV", "accelerator_of_this_machine", "in_guest", "scaled",
           "time_scale", "vm_metadata"]
