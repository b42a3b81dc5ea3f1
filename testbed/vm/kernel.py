"""Debian's kernel for the guest: the real package behind `linux-image-amd64`, extracted once.

`linux-image-amd64` is a metapackage; what it depends on (linux-image-6.1.0-N-amd64 on Debian 12)
holds vmlinuz and the modules. `apt-get download` fetches that .deb (no root needed, nothing is
installed on the host), `dpkg-deb -x` unpacks it into a folder of its own under the project's
`.cache/vm/`, and `depmod -b` writes the modules.dep that the package's postinst would have written,
so that virtme-ng and `modprobe` in the guest find the modules. The tree is kept: later runs reuse
it without asking apt (delete .cache/vm/ to fetch the newest kernel again).
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import TestbedError

METAPACKAGE = "linux-image-amd64"
KERNEL_RECORD = "kernel.json"


class VmUnavailable(TestbedError):
    """`testbed vm` cannot run here (no qemu, no kernel package reachable, ...): the message says why."""


@dataclass(frozen=True)
class GuestKernel:
    package: str         # linux-image-6.1.0-57-amd64
    version: str         # the package's version, 6.1.192-3
    release: str         # what `uname -r` prints in the guest, 6.1.0-57-amd64
    root: Path           # the extracted package: boot/, lib/modules/

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.release

    def record(self) -> dict:
        return {"package": self.package, "version": self.version, "release": self.release, "root": self.root.name}


def versioned_image_package(apt_cache_depends: str) -> str | None:
    """The real kernel package in `apt-cache depends linux-image-amd64` output (None if absent).

    The metapackage depends on exactly one `linux-image-<release>` package; other lines (a
    `|Depends` alternative, Recommends of firmware) are not kernels."""
    for line in apt_cache_depends.splitlines():
        match = re.match(r"\s*Depends:\s*(linux-image-\d\S*)\s*$", line)
        if match:
            return match.group(1)
    return None


def release_of(package: str) -> str:
    """`uname -r` of a kernel package: linux-image-6.1.0-57-amd64 -> 6.1.0-57-amd64 (Debian's
    `-unsigned` builds carry the same kernel)."""
    if not package.startswith("linux-image-"):
        raise ValueError(f"{package!r} is not a linux-image package")
    release = package[len("linux-image-"):]
    return release.removesuffix("-unsigned")


def load_kernel(cache_dir: Path) -> GuestKernel | None:
    """The kernel a previous run extracted, if it is complete (its record is written last)."""
    try:
        record = json.loads((cache_dir / KERNEL_RECORD).read_text())
        kernel = GuestKernel(record["package"], record["version"], record["release"], cache_dir / record["root"])
    except (OSError, ValueError, KeyError):
        return None
    return kernel if kernel.vmlinuz.is_file() and kernel.modules.is_dir() else None


@contextmanager
def _locked(cache_dir: Path):
    """One extraction at a time (two `testbed vm` started together must not unpack twice)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run(args: list[str], what: str, cwd: Path | None = None, timeout: float = 600) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    except FileNotFoundError:
        raise VmUnavailable(f"{what}: {args[0]} is not installed (this needs a Debian-based host)") from None
    except subprocess.TimeoutExpired:
        raise VmUnavailable(f"{what}: {' '.join(args)} took more than {timeout:.0f} s") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise VmUnavailable(f"{what}: {' '.join(args)} failed: {detail[-1] if detail else f'exit {proc.returncode}'}")
    return proc.stdout


def _find_package() -> str:
    depends = subprocess.run(["apt-cache", "depends", METAPACKAGE], capture_output=True, text=True)
    package = versioned_image_package(depends.stdout)
    if package is None and os.geteuid() == 0:
        # A fresh machine may have no package lists yet.
        _run(["apt-get", "update", "-q"], "refreshing the package lists")
        depends = subprocess.run(["apt-cache", "depends", METAPACKAGE], capture_output=True, text=True)
        package = versioned_image_package(depends.stdout)
    if package is None:
        raise VmUnavailable(f"no kernel package reachable: apt knows no {METAPACKAGE} "
                            "(run `apt-get update` as root, or check the apt sources)")
    return package


def ensure_kernel(cache_dir: Path) -> GuestKernel:
    """The guest kernel, fetched and extracted on first use; VmUnavailable if that cannot be done."""
    kernel = load_kernel(cache_dir)
    if kernel is not None:
        return kernel
    with _locked(cache_dir):
        kernel = load_kernel(cache_dir)  # another run may have finished it while we waited
        if kernel is not None:
            return kernel
        for tool in ("apt-get", "apt-cache", "dpkg-deb", "depmod"):
            if not shutil.which(tool) and not Path("/sbin", tool).exists():
                raise VmUnavailable(f"cannot fetch Debian's kernel: {tool} is not installed")
        package = _find_package()
        release = release_of(package)
        work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=cache_dir))
        try:
            os.chmod(work, 0o755)  # apt's download sandbox user (_apt) writes here
            _run(["apt-get", "download", "-q", package], f"downloading {package}", cwd=work)
            debs = sorted(work.glob(f"{package}_*.deb"))
            if not debs:
                raise VmUnavailable(f"downloading {package}: apt-get download left no .deb")
            version = _run(["dpkg-deb", "-f", str(debs[0]), "Version"], "reading the package").strip()
            tree = work / "tree"
            _run(["dpkg-deb", "-x", str(debs[0]), str(tree)], f"extracting {debs[0].name}")
            kernel = GuestKernel(package, version, release, tree)
            if not kernel.vmlinuz.is_file() or not kernel.modules.is_dir():
                raise VmUnavailable(f"{package} has no boot/vmlinuz-{release} or lib/modules/{release}")
            depmod = shutil.which("depmod") or "/sbin/depmod"
            _run([depmod, "-a", "-b", str(tree), release], "indexing the modules (depmod)")
            final = cache_dir / f"{package}_{version}"
            shutil.rmtree(final, ignore_errors=True)
            tree.rename(final)
            kernel = GuestKernel(package, version, release, final)
            (cache_dir / KERNEL_RECORD).write_text(json.dumps(kernel.record(), indent=1) + "\n")
            return kernel
        finally:
            shutil.rmtree(work, ignore_errors=True)
