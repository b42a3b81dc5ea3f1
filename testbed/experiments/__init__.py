"""Experiments: declared parameter grids, run by one harness, reported separately.

Experiments live in the repository's experiments/ folder, one module each. A module defines NAME,
DESCRIPTION, GRID (parameter -> list of values; the harness runs
their product), REPEATS, `run(point, repeat) -> list[dict]` (raw rows, one per probe or sample) and
`report(frame, out_dir) -> list[str]` (markdown lines, plots written to out_dir). The harness adds the
run's metadata to every row and writes an immutable results folder:

    results/<name>-<YYYYmmdd-HHMMSS>/results.parquet, results.csv, meta.json

`testbed report DIR` reads it back and calls the experiment's report (testbed/reports.py).
"""
from __future__ import annotations

import importlib
import importlib.util
import itertools
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from ..errors import TestbedError

EXPERIMENT_DIR = Path(__file__).resolve().parents[2] / "experiments"
FORMAT_VERSION = 1


def _module_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENT_DIR.glob("*.py") if not p.stem.startswith("_"))


def load_experiment(name: str):
    module_name = name.replace("-", "_")
    if module_name not in _module_names():
        raise TestbedError(f"unknown experiment {name!r}: see `testbed experiment list`")
    spec = importlib.util.spec_from_file_location(f"testbed_experiment_{module_name}", EXPERIMENT_DIR / f"{module_name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def list_experiments() -> list[tuple[str, str]]:
    return [(m.NAME, m.DESCRIPTION) for m in (load_experiment(n) for n in _module_names())]


def parse_options(options: list[str], grid: dict) -> tuple[dict, int | None]:
    """`--modes iptables,sdn --services 1,1000 --repeats 3` -> grid overrides and repeats."""
    grid = {k: list(v) for k, v in grid.items()}
    repeats = None
    items = list(options)
    while items:
        flag = items.pop(0)
        if flag in ("-h", "--help"):
            raise TestbedError("options: " + " ".join(f"--{k.replace('_', '-')} {','.join(map(str, v))}"
                                                       for k, v in grid.items()) + " --repeats N")
        if not flag.startswith("--") or not items:
            raise TestbedError(f"experiment option {flag!r}: expected --name value")
        key, value = flag[2:].replace("-", "_"), items.pop(0)
        if key == "repeats":
            repeats = int(value)
            continue
        if key not in grid:
            raise TestbedError(f"unknown option --{key.replace('_', '-')}: this experiment takes "
                               + ", ".join(f"--{k.replace('_', '-')}" for k in grid))
        sample = grid[key][0] if grid[key] else ""
        convert = type(sample) if isinstance(sample, (int, float)) else str
        try:
            grid[key] = [convert(v) for v in value.split(",") if v != ""]
        except ValueError:
            raise TestbedError(f"--{key.replace('_', '-')}: {value!r} is not a list of {convert.__name__}") from None
    return grid, repeats


def machine_metadata() -> dict:
    def first_line(*args) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.split("\n")[0].strip()
        except OSError:
            return ""
    from ..net.ovs import kernel_datapath_available
    from ..net.kernel import kernel_has_ipvs
    return {"kernel": platform.release(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "ovs": first_line("ovs-vsctl", "--version"), "iptables": first_line("iptables", "--version"),
            "ovs_kernel_datapath": kernel_datapath_available(), "ipvs_in_kernel": kernel_has_ipvs(),
            "commit": first_line("git", "-C", str(Path(__file__).resolve().parents[2]), "rev-parse", "--short", "HEAD")}


def run_experiment(name: str, options: list[str], results_dir: str = "results") -> Path:
    import pandas as pd
    from tqdm import tqdm
    experiment = load_experiment(name)
    grid, repeats = parse_options(options, experiment.GRID)
    repeats = repeats or experiment.REPEATS
    keys = list(grid)
    points = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    started = time.strftime("%Y%m%d-%H%M%S")
    out = Path(results_dir) / f"{experiment.NAME}-{started}"
    out.mkdir(parents=True, exist_ok=False)
    meta = {"experiment": experiment.NAME, "format": FORMAT_VERSION, "started": started, "grid": grid,
            "repeats": repeats, "machine": machine_metadata()}
    rows: list[dict] = []
    failures: list[dict] = []
    with tqdm(total=len(points) * repeats, desc=experiment.NAME, unit="run") as progress:
        for point in points:
            for repeat in range(repeats):
                progress.set_postfix(point)
                try:
                    for row in experiment.run(point, repeat):
                        rows.append({"experiment": experiment.NAME, **point, "repeat": repeat, **row})
                except TestbedError as err:
                    # e.g. a mode this kernel cannot run: recorded, never silently replaced
                    failures.append({**point, "repeat": repeat, "error": str(err)})
                progress.update(1)
    meta["finished"] = time.strftime("%Y%m%d-%H%M%S")
    meta["failures"] = failures
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "results.csv", index=False)
    frame.to_parquet(out / "results.parquet", index=False)
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    for failure in failures:
        print(f"not run: {failure}")
    return out
