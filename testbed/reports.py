"""`testbed report RESULTS_DIR`: tables and plots for one results folder, as report.md beside them."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import TestbedError


def write_report(results_dir: str | Path) -> Path:
    import pandas as pd
    from .experiments import FORMAT_VERSION, load_experiment
    directory = Path(results_dir)
    meta_path = directory / "meta.json"
    if not meta_path.exists():
        raise TestbedError(f"{directory}: not a results folder (no meta.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise TestbedError(f"{directory}: results format {meta.get('format')} is not {FORMAT_VERSION}")
    frame = pd.read_parquet(directory / "results.parquet")
    experiment = load_experiment(meta["experiment"])
    machine = meta.get("machine", {})
    lines = [f"# {meta['experiment']} ({meta['started']})", "", experiment.DESCRIPTION, "",
             f"Machine: kernel {machine.get('kernel')}, {machine.get('cpus')} CPUs, {machine.get('ovs')}, "
             f"{machine.get('iptables')}; OVS kernel datapath available: {machine.get('ovs_kernel_datapath')}; "
             f"IPVS in kernel: {machine.get('ipvs_in_kernel')}; commit {machine.get('commit')}.", "",
             f"Grid: {json.dumps(meta['grid'])}, repeats {meta['repeats']}; {len(frame)} rows.", ""]
    if "datapath" in frame:
        lines += [f"Data planes measured: {', '.join(sorted(set(frame['dataplane'].astype(str))))}; "
                  f"OVS datapath: {', '.join(sorted(set(frame['datapath'].astype(str))))}.", ""]
    if frame.empty:
        lines.append("No rows: every point failed (see below).")
    else:
        lines += experiment.report(frame, directory)
    for failure in meta.get("failures", []):
        lines.append(f"- not run: {failure}")
    path = directory / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
