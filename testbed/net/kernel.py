"""What this machine's kernel can do, for the backends' `unavailable()` and results' metadata."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def module_loaded_or_loadable(name: str) -> bool:
    """The module is loaded (or built in), or modprobe can load it. modprobe is harmless when the
    module does not exist."""
    if Path(f"/sys/module/{name}").exists():
        return True
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "-q", name], capture_output=True)
    return Path(f"/sys/module/{name}").exists()


def kernel_has_ipvs() -> bool:
    return Path("/proc/net/ip_vs").exists() or module_loaded_or_loadable("ip_vs")
