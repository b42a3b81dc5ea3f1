"""Experiments: declared parameter grids, run by one harness, reported separately.

Experiments live in the repository's experiments/ folder, one module each, and read as ordinary
scripts on the public API (`python experiments/proxy_scale.py --quick` runs like `testbed experiment
run proxy-scale --quick`). A module defines:

    NAME, DESCRIPTION
    GRID      parameter -> values; the harness runs their product (a `mode` parameter's values are
              the registry's mode labels: testbed.experiments.common.mode_labels())
    QUICK     grid overrides for --quick (measure may shorten itself too: ctx.pick(full, quick))
    applicable(point) -> bool   optional: points of the product that make no sense (an algorithm a
              mode does not offer) are left out of the grid, not run and not reported
    REPEATS   default --repeat
    PREFERRED_SWITCH  "linuxbridge" when the experiment wants a kernel datapath for kernel modes
                      (used where Open vSwitch has only its userspace one); default "ovs"
    setup(point, ctx) -> state       bring up what the point needs (ctx.cluster_for(...) makes the cluster)
    measure(state, point, ctx) -> samples   testbed.results.sample(...) dicts
    teardown(state)                   always called, also after a failed measure

The harness (run_experiment) checks before each point whether its mode can run here at all (the
backend's `unavailable()`, the switch it needs): if not, the point is recorded as not run with the
reason and nothing else is run in its place. It labels every sample with mode, backend (which
backend really ran) and datapath from the point's cluster, shows a progress bar, and adds the run
to the results folder (testbed/results.py), which refuses runs from another environment.
`testbed report DIR` reads the folder back (testbed/reports.py).
"""
from __future__ import annotations

import importlib.util
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import TestbedError
from ..results import ResultsFolder, RunRecord, environment, load_average, new_run_id, sample

EXPERIMENT_DIR = Path(__file__).resolve().parents[2] / "experiments"
DEFAULT_RESULTS = Path(__file__).resolve().parents[2] / "results"
HARNESS_FLAGS = ("--repeat", "--out", "--quick", "--switch")


class NotRunnable(TestbedError):
    """Raised by an experiment's setup when this machine cannot run a point (a kernel feature,
    an add-on this build lacks): recorded as not run, with the reason."""


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


# ------------------------------------------------------------------------------------------------
# Options


def flag_of(key: str) -> str:
    """A grid parameter's option: `mode` -> --modes, `policy` -> --policies, `delay` -> --delays,
    `services` stays."""
    if key.endswith("s"):
        plural = key
    elif key.endswith("y") and key[-2:-1] not in ("a", "e", "o", "u"):
        plural = key[:-1] + "ies"
    else:
        plural = key + "s"
    return "--" + plural.replace("_", "-")


@dataclass(frozen=True)
class RunOptions:
    grid: dict
    repeat: int
    out: Path | None
    quick: bool
    switch: str | None


def parse_options(argv: list[str], experiment) -> RunOptions:
    """`--modes iptables,sdn --services 1,1000 --repeat 3 --out DIR --quick --switch linuxbridge`."""
    from ..net.switches import SWITCH_KINDS
    grid = {k: list(v) for k, v in experiment.GRID.items()}
    flags = {flag_of(k): k for k in grid}
    items = list(argv)
    quick = "--quick" in items
    if quick:
        items = [i for i in items if i != "--quick"]
        grid.update({k: list(v) for k, v in getattr(experiment, "QUICK", {}).items() if k in grid})
    repeat, out, switch = getattr(experiment, "REPEATS", 1), None, None
    while items:
        flag = items.pop(0)
        if flag in ("-h", "--help"):
            raise TestbedError(usage(experiment))
        if not flag.startswith("--") or not items:
            raise TestbedError(f"experiment option {flag!r}: expected --name value (see `testbed experiment run "
                               f"{experiment.NAME} --help`)")
        value = items.pop(0)
        if flag == "--repeat":
            repeat = _positive_int(value, flag)
        elif flag == "--out":
            out = Path(value)
        elif flag == "--switch":
            if value not in SWITCH_KINDS:
                raise TestbedError(f"--switch: {value!r}: choose one of {', '.join(SWITCH_KINDS)}")
            switch = value
        elif flag in flags:
            key = flags[flag]
            grid[key] = _convert_list(value, experiment.GRID[key], flag)
        else:
            raise TestbedError(f"unknown option {flag}: {experiment.NAME} takes "
                               + ", ".join([*flags, *HARNESS_FLAGS]))
    return RunOptions(grid=grid, repeat=repeat, out=out, quick=quick, switch=switch)


def _positive_int(value: str, flag: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise TestbedError(f"{flag}: {value!r} is not a positive integer")
    return number


def _convert_list(value: str, declared: list, flag: str) -> list:
    sample = declared[0] if declared else ""
    convert = type(sample) if isinstance(sample, (int, float)) and not isinstance(sample, bool) else str
    try:
        values = [convert(v) for v in value.split(",") if v != ""]
    except ValueError:
        raise TestbedError(f"{flag}: {value!r} is not a list of {convert.__name__}") from None
    if not values:
        raise TestbedError(f"{flag}: no values given")
    return values


def usage(experiment) -> str:
    grid = " ".join(f"[{flag_of(k)} {','.join(map(str, v))}]" for k, v in experiment.GRID.items())
    quick = getattr(experiment, "QUICK", {})
    return (f"testbed experiment run {experiment.NAME} {grid} [--repeat N] [--out DIR] [--quick] "
            f"[--switch ovs|linuxbridge]" + (f"; --quick sets {quick}" if quick else ""))


# ------------------------------------------------------------------------------------------------
# Running


@dataclass
class RunContext:
    """What an experiment's setup and measure get besides the point."""
    quick: bool
    repeat: int
    switch: str | None
    preferred_switch: str = "ovs"
    cluster: Any = None                    # the point's Cluster, once cluster_for made it
    labels: dict | None = None             # mode, backend, datapath as measured (set by the harness)
    _note: Callable[[str], None] = field(default=lambda text: None, repr=False)

    def cluster_for(self, mode: str, **options):
        """The point's Cluster (not started) in the given mode label, on the switch chosen for it."""
        from .common import cluster_for, switch_for
        self.cluster = cluster_for(mode, switch=switch_for(mode, self.switch, self.preferred_switch), **options)
        return self.cluster

    def note(self, text: str) -> None:
        """What the point is doing now, for the progress bar."""
        self._note(text)

    def pick(self, full, quick):
        return quick if self.quick else full


def _points(grid: dict) -> list[dict]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def _labels(point: dict, ctx: RunContext) -> dict:
    from .common import data_plane_label
    if ctx.cluster is not None:
        return data_plane_label(ctx.cluster, point.get("mode"))
    return {"mode": point.get("mode", ""), "backend": "", "datapath": ""}


def run_experiment(name: str, argv: list[str], results_dir: str | Path | None = None,
                   progress: bool = True) -> Path:
    """Run an experiment's grid; returns the results folder the run was added to."""
    from tqdm import tqdm
    from .common import not_runnable_reason, switch_for
    experiment = load_experiment(name)
    options = parse_options(argv, experiment)
    preferred = getattr(experiment, "PREFERRED_SWITCH", "ovs")
    run_id = new_run_id()
    out = options.out or Path(results_dir or DEFAULT_RESULTS) / f"{experiment.NAME}-{run_id.rsplit('-', 1)[0]}"
    folder = ResultsFolder(out, experiment.NAME, environment())   # refuses a mismatched folder before any work
    record = RunRecord(run=run_id, started=time.strftime("%Y-%m-%dT%H:%M:%S%z"), grid=options.grid,
                       options={"repeat": options.repeat, "quick": options.quick, "switch": options.switch,
                                "argv": list(argv)})
    started = time.monotonic()
    rows: list[dict] = []
    applicable = getattr(experiment, "applicable", lambda point: True)
    points = [p for p in _points(options.grid) if applicable(p)]
    if not points:
        raise TestbedError(f"{experiment.NAME}: no point of this grid applies ({options.grid})")
    bar = tqdm(total=len(points) * options.repeat, desc=experiment.NAME, unit="point", disable=not progress)
    try:
        for point in points:
            mode = point.get("mode")
            reason = not_runnable_reason(mode, options.switch, preferred) if mode else None
            if reason:
                record.not_run.append({"mode": mode, "point": point, "reason": reason})
                bar.update(options.repeat)
                continue
            for repeat in range(options.repeat):
                bar.set_postfix_str(_describe(point))
                ctx = RunContext(quick=options.quick, repeat=repeat, switch=options.switch, preferred_switch=preferred,
                                 _note=lambda text, p=point: bar.set_postfix_str(f"{_describe(p)}: {text}"))
                rows += _run_point(experiment, point, ctx, record)
                if ctx.labels and mode:
                    record.modes.setdefault(mode, {**ctx.labels, "switch": switch_for(mode, options.switch, preferred)})
                bar.update(1)
    except KeyboardInterrupt:
        record.failures.append({"mode": "", "point": {}, "error": "interrupted (Ctrl-C): the run is incomplete"})
        raise
    finally:
        bar.close()
        record.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        record.duration_s = round(time.monotonic() - started, 1)
        record.load_after = load_average()
        folder.add_run(record, rows)
    for item in record.not_run:
        print(f"not run: {item['mode']} {_describe(item['point'])}: {item['reason']}")
    for item in record.failures:
        print(f"failed: {item['mode']} {_describe(item['point'])}: {item['error']}")
    return out


def _describe(point: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items())


def _run_point(experiment, point: dict, ctx: RunContext, record: RunRecord) -> list[dict]:
    """Set up, measure, tear down one point; its samples labelled, plus `point_s` (its wall time,
    set-up and teardown included: what planning a sweep needs)."""
    mode = point.get("mode", "")
    state = None
    started = time.monotonic()
    try:
        state = experiment.setup(point, ctx)
        samples = list(experiment.measure(state, point, ctx))
        labels = ctx.labels = _labels(point, ctx)
    except NotRunnable as err:
        record.not_run.append({"mode": mode, "point": point, "reason": str(err)})
        return []
    except TestbedError as err:
        record.failures.append({"mode": mode, "point": point, "error": str(err)})
        return []
    finally:
        if state is not None:
            experiment.teardown(state)
        elif ctx.cluster is not None:
            ctx.cluster.stop()
    services = point.get("services", 0)
    rows = []
    samples.append(sample("point_s", time.monotonic() - started, "s", target="setup+measure+teardown"))
    for s in samples:
        row = {**labels, "services": services, "repeat": ctx.repeat,
               **{k: v for k, v in point.items() if k not in ("mode", "services")}, **s}
        if isinstance(row["value"], float) and math.isinf(row["value"]):
            row["value"] = math.nan
        rows.append(row)
    return rows


def script_main(name: str, argv: list[str]) -> int:
    """`python experiments/<name>.py [options]`: the same as `testbed experiment run NAME`."""
    import sys
    try:
        out = run_experiment(name, argv)
    except TestbedError as err:
        print(f"{name}: {err}", file=sys.stderr)
        return 1
    print(f"results: {out}")
    return 0
