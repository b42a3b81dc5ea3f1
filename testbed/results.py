"""Experiment results: tidy samples, the metadata that makes them comparable, and `load(DIR)`.

A results folder holds one experiment's runs, pyperf-style (immutable values with their metadata):

    DIR/metadata.json    format, experiment, the environment every run shares, and one record per run
                         (its grid, options, load average, duration, the modes that ran and the ones
                         that could not, with the reason)
    DIR/samples.parquet  one row per sample (and the same as samples.csv), at least the columns
    DIR/samples.csv      mode, backend, datapath, services, target, metric, value, unit, plus run, repeat
                         and the experiment's own parameters

Raw samples are kept (500 connect times are 500 rows); statistics are computed later, by reports or
a notebook. A second run may be added to a folder only when its environment is the same (kernel,
machine, Open vSwitch and iptables versions, accelerator, commit and uncommitted changes, format):
runs whose metadata differ are never merged, silently or otherwise; the harness refuses and names
the fields that differ. That lets a long sweep be split into several invocations (one per mode, say)
that end up in one folder.

    from testbed import results
    r = results.load("results/proxy-scale-20250101-120000")
    r.samples.query("metric == 'connect_us'").groupby(["mode", "services", "target"])["value"].median()
    r.not_run        # mode, reason: what this machine could not run
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .errors import TestbedError

FORMAT = 2
SAMPLE_COLUMNS = ("mode", "backend", "datapath", "services", "target", "metric", "value", "unit")
METADATA_FILE = "metadata.json"
SAMPLES_PARQUET = "samples.parquet"
SAMPLES_CSV = "samples.csv"
REPOSITORY = Path(__file__).resolve().parents[1]
# What two runs must agree on to share a folder (everything that changes what a number means).
IDENTITY_KEYS = ("kernel", "machine", "cpus", "cpu_model", "ovs", "iptables_nft", "iptables_legacy",
                 "ovs_kernel_datapath", "accelerator", "commit", "uncommitted_changes", "python")


def sample(metric: str, value: float, unit: str, target: str = "", **extra: Any) -> dict:
    """One tidy sample; `extra` holds further columns (endpoint, seq, ...)."""
    return {"metric": metric, "value": float(value), "unit": unit, "target": target, **extra}


def check_samples(rows: Sequence[Mapping[str, Any]]) -> None:
    """Every row has the tidy columns and a finite or NaN number as value (never a string)."""
    for i, row in enumerate(rows):
        missing = [c for c in SAMPLE_COLUMNS if c not in row]
        if missing:
            raise TestbedError(f"sample {i} ({row.get('metric')!r}) lacks column(s) {', '.join(missing)}")
        if not isinstance(row["value"], (int, float)) or isinstance(row["value"], bool):
            raise TestbedError(f"sample {i} ({row['metric']}): value {row['value']!r} is not a number")


# ------------------------------------------------------------------------------------------------
# The environment


def _first_line(*args: str) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or out.stderr).split("\n")[0].strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(REPOSITORY), *args], capture_output=True, text=True,
                              timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def vm_info() -> dict | None:
    """What `testbed vm` recorded about the guest we run in (None outside one): testbed/vm/guest.py."""
    from .vm import vm_metadata
    return vm_metadata()


def load_average() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def environment() -> dict:
    """Kernel, machine, versions, accelerator and commit: what makes numbers comparable."""
    from .net.kernel import kernel_has_ipvs
    from .net.ovs import kernel_datapath_available
    vm = vm_info()
    diff = _git("diff", "HEAD")
    env = {
        "kernel": platform.release(), "machine": platform.node(), "cpus": os.cpu_count(), "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(), "python": platform.python_version(),
        "ovs": _first_line("ovs-vsctl", "--version"), "ovs_kernel_datapath": kernel_datapath_available(),
        "iptables_nft": _first_line("iptables-nft", "--version"),
        "iptables_legacy": _first_line("iptables-legacy", "--version"),
        "nft": _first_line("nft", "--version"), "ipvs_in_kernel": kernel_has_ipvs(),
        "accelerator": (vm or {}).get("accelerator", "none"),
        "commit": _git("rev-parse", "HEAD").strip(),
        "uncommitted_changes": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else "",
    }
    if vm is not None:
        env["vm"] = vm
        from .vm.guest import KVM_NOTE, TCG_NOTE
        env["note"] = {"tcg": TCG_NOTE, "kvm": KVM_NOTE}.get(env["accelerator"], "")
    return env


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def identity(env: Mapping[str, Any]) -> dict:
    return {k: env.get(k) for k in IDENTITY_KEYS}


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The identity fields in which two environments differ, as `key: a != b`."""
    ia, ib = identity(a), identity(b)
    return [f"{k}: {ia[k]!r} != {ib[k]!r}" for k in IDENTITY_KEYS if ia[k] != ib[k]]


# ------------------------------------------------------------------------------------------------
# Writing


@dataclass
class RunRecord:
    """What one invocation of the harness ran (metadata.json's `runs` entries)."""
    run: str
    started: str
    grid: dict
    options: dict
    load_before: list[float] = field(default_factory=load_average)
    finished: str = ""
    duration_s: float = 0.0
    load_after: list[float] = field(default_factory=list)
    modes: dict = field(default_factory=dict)       # label -> {backend, switch, datapath}
    not_run: list = field(default_factory=list)     # {mode, point, reason}
    failures: list = field(default_factory=list)    # {mode, point, error}

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class ResultsFolder:
    """One experiment's results folder, opened for adding a run."""

    def __init__(self, path: str | Path, experiment: str, env: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.experiment = experiment
        self.env = dict(env if env is not None else environment())
        self.metadata = self._existing_metadata()

    def _existing_metadata(self) -> dict:
        meta_path = self.path / METADATA_FILE
        if not meta_path.exists():
            if self.path.exists() and any(self.path.iterdir()):
                raise TestbedError(f"{self.path}: exists and is not a results folder (no {METADATA_FILE}); "
                                   "choose another --out")
            return {"format": FORMAT, "experiment": self.experiment, "environment": self.env, "runs": []}
        meta = read_metadata(self.path)
        if meta["experiment"] != self.experiment:
            raise TestbedError(f"{self.path} holds {meta['experiment']!r} results, not {self.experiment!r}: "
                               "choose another --out")
        diff = differences(meta["environment"], self.env)
        if diff:
            raise TestbedError(f"{self.path} holds runs from another environment ({'; '.join(diff)}): runs with "
                               "different metadata are not merged; choose another --out")
        return meta

    def add_run(self, record: RunRecord, rows: Sequence[Mapping[str, Any]]) -> None:
        import pandas as pd
        check_samples(rows)
        self.path.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame([{**row, "run": record.run} for row in rows])
        existing = self.path / SAMPLES_PARQUET
        if existing.exists():
            frame = pd.concat([pd.read_parquet(existing), frame], ignore_index=True)
        frame = _ordered(frame)
        frame.to_parquet(existing, index=False)
        frame.to_csv(self.path / SAMPLES_CSV, index=False)
        self.metadata["runs"].append(record.as_dict())
        (self.path / METADATA_FILE).write_text(json.dumps(self.metadata, indent=1, default=str) + "\n")


def _ordered(frame):
    first = [c for c in ("run", "repeat", *SAMPLE_COLUMNS) if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]


def new_run_id() -> str:
    """Unique per run (two runs within one second of one process differ too)."""
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.urandom(3).hex()}"


# ------------------------------------------------------------------------------------------------
# Reading


def read_metadata(directory: str | Path) -> dict:
    path = Path(directory) / METADATA_FILE
    if not path.exists():
        raise TestbedError(f"{directory}: not a results folder (no {METADATA_FILE})")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise TestbedError(f"{directory}: results format {meta.get('format')!r} is not {FORMAT}")
    return meta


@dataclass(frozen=True)
class Results:
    path: Path
    metadata: dict
    samples: Any          # pandas DataFrame, one row per sample
    not_run: Any          # pandas DataFrame: run, mode, point, reason
    failures: Any         # pandas DataFrame: run, mode, point, error

    @property
    def experiment(self) -> str:
        return self.metadata["experiment"]

    @property
    def environment(self) -> dict:
        return self.metadata["environment"]


def load(directory: str | Path) -> Results:
    """A results folder as DataFrames (for notebooks and reports)."""
    import pandas as pd
    directory = Path(directory)
    meta = read_metadata(directory)
    samples_path = directory / SAMPLES_PARQUET
    samples = pd.read_parquet(samples_path) if samples_path.exists() else pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    not_run = pd.DataFrame([{"run": r["run"], **n} for r in meta["runs"] for n in r.get("not_run", [])],
                           columns=["run", "mode", "point", "reason"])
    failures = pd.DataFrame([{"run": r["run"], **f} for r in meta["runs"] for f in r.get("failures", [])],
                            columns=["run", "mode", "point", "error"])
    return Results(directory, meta, samples, not_run, failures)


# ------------------------------------------------------------------------------------------------
# Statistics the reports share (pure)


def percentile(values: Iterable[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation, NaN for no values."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def chi_square(observed: Sequence[float], expected_shares: Sequence[float]) -> tuple[float, int, float]:
    """Pearson's chi-square goodness-of-fit of counts against intended shares:
    (statistic, degrees of freedom, p-value). Categories with an expected share of 0 must have
    no observations (else p = 0)."""
    total = sum(observed)
    if total == 0 or len(observed) != len(expected_shares):
        raise ValueError("chi_square: need observations and one expected share per category")
    scale = sum(expected_shares)
    statistic, categories = 0.0, 0
    for count, share in zip(observed, expected_shares):
        expected = total * share / scale
        if expected == 0:
            if count:
                return math.inf, max(1, len(observed) - 1), 0.0
            continue
        categories += 1
        statistic += (count - expected) ** 2 / expected
    dof = max(1, categories - 1)
    return statistic, dof, chi_square_sf(statistic, dof)


def chi_square_sf(x: float, dof: int) -> float:
    """P(X >= x) for X ~ chi-square(dof): the regularised upper incomplete gamma Q(dof/2, x/2)."""
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    return _gamma_q(dof / 2.0, x / 2.0)


def _gamma_q(a: float, x: float) -> float:
    # Numerical Recipes' gser/gcf split: the series for x < a + 1, the continued fraction above.
    gln = math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - gln) * h)
