"""`testbed report RESULTS_DIR`: an HTML report and a Markdown summary, with PNG plots, for a results folder.

Reporting is a separate step from measuring (pyperf/asv style): it reads the raw samples back
(testbed.results.load) and computes every statistic here. What it writes beside the samples:

    report.html, report.md    the same content: environment, runs, what did not run and why, the
                              headline table, one table per metric, the experiment's own sections
    connect-latency.png       connect time against Services per mode (log x)       (metric connect_us)
    sync-time.png             full sync and one change against Services            (full_sync_s, change_sync_s)
    short-connection-rps.png  requests/s with a new connection per request         (rps)
    throughput-ratio.png      bulk throughput through the VIP / to the pod IP      (bulk_gbps)
    lb-distribution.png       each endpoint's share of connections                 (served_by)

Plots appear when their metric is in the samples. Every ratio is shown with the absolute difference
beside it (a 3x ratio of 40 µs is not a 3x ratio of 4 ms). Rows from different datapaths are never
pooled: mode, backend and datapath stay columns everywhere.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .results import Results, load, percentile

LABELS = ["mode", "backend", "datapath"]


@dataclass(frozen=True)
class Report:
    html: Path
    markdown: Path
    plots: tuple[Path, ...]


# ------------------------------------------------------------------------------------------------
# Blocks: one structure, two renderings


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    path: str
    alt: str


def to_markdown(blocks: Iterable[Any]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Text):
            out += [block.text, ""]
        elif isinstance(block, Table):
            out.append("| " + " | ".join(block.header) + " |")
            out.append("|" + "---|" * len(block.header))
            out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in block.rows]
            out.append("")
        elif isinstance(block, Image):
            out += [f"![{block.alt}]({block.path})", ""]
    return "\n".join(out)


def to_html(blocks: Iterable[Any], title: str) -> str:
    esc = html.escape
    out = ["<!doctype html>", "<html><head><meta charset='utf-8'>", f"<title>{esc(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.25em .6em;"
           "text-align:right}th{background:#eee}td:first-child,th:first-child{text-align:left}"
           "img{max-width:100%}</style>", "</head><body>"]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Text):
            out.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Table):
            out.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in block.header) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in block.rows]
            out.append("</table>")
        elif isinstance(block, Image):
            out.append(f"<p><img src='{esc(block.path)}' alt='{esc(block.alt)}'></p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers with `digits` significant digits (thousands separated), others as text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            return "-"
        if value == 0:
            return "0"
        if isinstance(value, int) or (abs(value) >= 10 ** digits and float(value).is_integer()):
            return f"{int(value):,}"
        magnitude = math.floor(math.log10(abs(value)))
        decimals = max(0, digits - 1 - magnitude)
        return f"{value:,.{decimals}f}"
    return str(value)


# ------------------------------------------------------------------------------------------------
# Statistics (pure, on DataFrames)


def summary_table(samples, metric: str):
    """One metric by mode, backend, datapath, services and target: n, p50, p10, p90, mean."""
    import pandas as pd
    rows = samples[samples["metric"] == metric]
    if rows.empty:
        return pd.DataFrame()
    keys = LABELS + ["services", "target"] + [k for k in ("algorithm", "policy", "paths", "event") if k in rows.columns
                                              and rows[k].notna().any()]
    grouped = rows.groupby(keys, dropna=False)["value"]
    table = grouped.agg(n="count", mean="mean").reset_index()
    for name, q in (("p50", 0.5), ("p10", 0.1), ("p90", 0.9)):
        table[name] = grouped.apply(lambda v, q=q: percentile(v.tolist(), q)).values
    table["unit"] = rows.groupby(keys, dropna=False)["unit"].first().values
    return table


def headline(samples):
    """The proxy-scale headline: per mode, connect p50 at the fewest and the most Services (first
    and last Service), the ratio last@most / fewest and the difference in µs; likewise requests/s
    with a new connection per request. Empty when the samples have no connect times."""
    import pandas as pd
    connect = samples[samples["metric"] == "connect_us"]
    if connect.empty:
        return pd.DataFrame()
    rows = []
    for labels, group in connect.groupby(LABELS, sort=False):
        low, high = group["services"].min(), group["services"].max()
        base = percentile(group[group["services"] == low]["value"].tolist(), 0.5)
        first = percentile(group[(group["services"] == high) & (group["target"] == "first")]["value"].tolist(), 0.5)
        last = percentile(group[(group["services"] == high) & (group["target"] == "last")]["value"].tolist(), 0.5)
        row = dict(zip(LABELS, labels))
        row.update({"services_low": int(low), "services_high": int(high), "connect_p50_low_us": base,
                    "connect_p50_first_us": first, "connect_p50_last_us": last,
                    "connect_ratio": last / base if base else math.nan, "connect_diff_us": last - base})
        rps = samples[(samples["metric"] == "rps") & (samples["target"] == "last")
                      & (samples["mode"] == row["mode"]) & (samples["datapath"] == row["datapath"])]
        rps_low = rps[rps["services"] == low]["value"].median()
        rps_high = rps[rps["services"] == high]["value"].median()
        row.update({"rps_low": rps_low, "rps_high": rps_high,
                    "rps_ratio": rps_high / rps_low if rps_low else math.nan, "rps_diff": rps_high - rps_low})
        sync = samples[(samples["metric"] == "full_sync_s") & (samples["mode"] == row["mode"])
                       & (samples["datapath"] == row["datapath"]) & (samples["services"] == high)]
        row["full_sync_high_s"] = sync["value"].median() if not sync.empty else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def headline_blocks(table) -> list:
    if table.empty:
        return []
    header = ("mode", "backend", "datapath", "Services", "connect p50 µs (1 Service)", "first", "last",
              "last / 1 Service", "difference µs", "req/s new conn. (1 → N, last)", "ratio", "full sync s at N")
    rows = []
    for _, r in table.iterrows():
        rows.append((r["mode"], r["backend"], r["datapath"], f"{r['services_low']:,} → {r['services_high']:,}",
                     fmt(r["connect_p50_low_us"]), fmt(r["connect_p50_first_us"]), fmt(r["connect_p50_last_us"]),
                     f"{r['connect_ratio']:.2f}x", f"{r['connect_diff_us']:+,.0f}",
                     f"{fmt(r['rps_low'])} → {fmt(r['rps_high'])}", f"{r['rps_ratio']:.2f}x" if not math.isnan(
                         r["rps_ratio"]) else "-", fmt(r["full_sync_high_s"])))
    return [Heading("Headline"), Table(header, tuple(rows))]


# ------------------------------------------------------------------------------------------------
# Plots


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _series_label(labels: tuple) -> str:
    mode, backend, datapath = labels
    return f"{backend} [{datapath}]" if backend else f"{mode} [{datapath}]"


def _against_services(ax, ylabel: str) -> None:
    """A per-mode line plot against the number of Services (log x, from 0 up, legend outside)."""
    ax.set_xscale("log")
    ax.set_xlabel("Services")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _save(plt, fig, path: Path) -> bool:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_connect_latency(samples, path: Path) -> bool:
    rows = samples[samples["metric"] == "connect_us"]
    if rows.empty:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.2))
    for index, (labels, group) in enumerate(rows.groupby(LABELS, sort=False)):
        for target, style in (("last", "-"), ("first", "--")):
            part = group[group["target"] == target]
            if part.empty:
                continue
            stats = part.groupby("services")["value"].apply(lambda v: percentile(v.tolist(), 0.5))
            line, = ax.plot(stats.index, stats.values, style, marker="o" if target == "last" else "x", color=f"C{index}",
                            label=f"{_series_label(labels)} {target}")
            if target == "last":
                p25 = part.groupby("services")["value"].apply(lambda v: percentile(v.tolist(), 0.25))
                p75 = part.groupby("services")["value"].apply(lambda v: percentile(v.tolist(), 0.75))
                ax.fill_between(p25.index, p25.values, p75.values, color=line.get_color(), alpha=0.15)
    _against_services(ax, "TCP connect to a ClusterIP, p50 µs")
    ax.set_title("Connect time to the first and the last Service (band: p25-p75 of last)")
    return _save(plt, fig, path)


def plot_sync_time(samples, path: Path) -> bool:
    rows = samples[samples["metric"].isin(["full_sync_s", "change_sync_s"])]
    if rows.empty or rows["services"].nunique() < 1:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, metric, title in ((axes[0], "full_sync_s", "all N Services applied at once"),
                              (axes[1], "change_sync_s", "one Service added or deleted")):
        for labels, group in rows[rows["metric"] == metric].groupby(LABELS, sort=False):
            stats = group.groupby("services")["value"].median()
            ax.plot(stats.index, stats.values, marker="o", label=_series_label(labels))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Services")
        ax.set_ylabel("sync seconds (median)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return _save(plt, fig, path)


def plot_rps(samples, path: Path) -> bool:
    rows = samples[samples["metric"] == "rps"]
    if rows.empty:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    for index, (labels, group) in enumerate(rows.groupby(LABELS, sort=False)):
        for target, style in (("last", "-"), ("first", "--")):
            stats = group[group["target"] == target].groupby("services")["value"].median()
            if not stats.empty:
                ax.plot(stats.index, stats.values, style, marker="o" if target == "last" else "x", color=f"C{index}",
                        label=f"{_series_label(labels)} {target}")
    _against_services(ax, "requests/s, new connection per request")
    return _save(plt, fig, path)


def throughput_ratios(samples):
    """bulk_gbps through the VIP / to the pod IP, per mode and Services (pure)."""
    import pandas as pd
    rows = samples[samples["metric"] == "bulk_gbps"]
    if rows.empty:
        return pd.DataFrame()
    table = rows.groupby(LABELS + ["services", "target"])["value"].median().unstack("target").reset_index()
    if "vip" not in table or "pod-ip" not in table:
        return pd.DataFrame()
    table["ratio"] = table["vip"] / table["pod-ip"]
    table["diff"] = table["vip"] - table["pod-ip"]
    return table


def plot_throughput_ratio(samples, path: Path) -> bool:
    table = throughput_ratios(samples)
    if table.empty:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    names = [f"{r['backend'] or r['mode']}\n{r['datapath']} {int(r['services']):,}" for _, r in table.iterrows()]
    ax.bar(names, table["ratio"])
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_ylabel("iperf3 via VIP / via pod IP")
    ax.tick_params(axis="x", labelsize=7)
    return _save(plt, fig, path)


def lb_shares(samples):
    """Each endpoint's share of the served connections per mode and algorithm (pure)."""
    import pandas as pd
    rows = samples[samples["metric"] == "served_by"]
    if rows.empty:
        return pd.DataFrame()
    keys = LABELS + [k for k in ("algorithm",) if k in rows.columns]
    counts = rows.groupby(keys + ["target"]).size().rename("connections").reset_index()
    counts["share"] = counts["connections"] / counts.groupby(keys)["connections"].transform("sum")
    return counts


def plot_lb_distribution(samples, path: Path) -> bool:
    shares = lb_shares(samples)
    if shares.empty:
        return False
    plt = _pyplot()
    keys = [k for k in LABELS + ["algorithm"] if k in shares.columns]
    groups = list(shares.groupby(keys, sort=False))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(groups)), 3.8))
    width = 0.8 / max(1, shares.groupby(keys)["target"].nunique().max())
    for i, (_, group) in enumerate(groups):
        for j, (_, r) in enumerate(group.sort_values("target").iterrows()):
            ax.bar(i + j * width, r["share"], width=width, color=f"C{j}")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
    ax.set_xticklabels([f"{labels[0]}\n{labels[-1]}" for labels, _ in groups], fontsize=7)
    ax.set_ylabel("share of connections per endpoint")
    return _save(plt, fig, path)


PLOTS = (("connect-latency.png", plot_connect_latency, "connect time against Services"),
         ("sync-time.png", plot_sync_time, "sync time against Services"),
         ("short-connection-rps.png", plot_rps, "requests/s with a new connection per request"),
         ("throughput-ratio.png", plot_throughput_ratio, "bulk throughput via the VIP / via the pod IP"),
         ("lb-distribution.png", plot_lb_distribution, "share of connections per endpoint"))


# ------------------------------------------------------------------------------------------------
# The report


def environment_blocks(results: Results) -> list:
    env = results.environment
    lines = [f"Kernel {env.get('kernel')}, {env.get('cpus')} CPUs ({env.get('cpu_model')}), {env.get('memory_gib')} GiB; "
             f"{env.get('ovs')} (OVS kernel datapath available: {env.get('ovs_kernel_datapath')}); "
             f"{env.get('iptables_nft')} / {env.get('iptables_legacy')}; {env.get('nft')}; "
             f"IPVS in kernel: {env.get('ipvs_in_kernel')}; accelerator: {env.get('accelerator')}; "
             f"commit {str(env.get('commit'))[:12]}" + (" with uncommitted changes" if env.get("uncommitted_changes") else "")
             + "."]
    if env.get("note"):
        lines.append(env["note"])
    blocks: list = [Text(line) for line in lines]
    runs = results.metadata["runs"]
    rows = tuple((r["run"], r["started"], fmt(r["duration_s"]), " ".join(map(str, r.get("load_before", []))),
                  " ".join(map(str, r.get("load_after", []))),
                  "; ".join(f"{m}: {v.get('backend')} on {v.get('datapath')}" for m, v in r.get("modes", {}).items()),
                  " ".join(r["options"].get("argv", [])))
                 for r in runs)
    blocks += [Heading("Runs"), Table(("run", "started", "seconds", "load avg before", "after", "what ran", "options"), rows)]
    busy = [r for r in runs if r.get("load_before") and r["load_before"][0] > 0.5 * (env.get("cpus") or 1)]
    if busy:
        blocks.append(Text(f"{len(busy)} of {len(runs)} runs started with a 1-minute load average above half the CPUs: "
                           "other work shared the machine, so times may be noisier than on a quiet one."))
    if not results.not_run.empty:
        seen = results.not_run.drop_duplicates(subset=["mode", "reason"])
        blocks += [Heading("Not run"), Table(("mode", "reason"), tuple((r["mode"], r["reason"]) for _, r in seen.iterrows()))]
    if not results.failures.empty:
        blocks += [Heading("Failed"), Table(("mode", "point", "error"), tuple(
            (r["mode"], str(r["point"]), r["error"]) for _, r in results.failures.iterrows()))]
    return blocks


def metric_blocks(samples) -> list:
    blocks: list = [Heading("All metrics")]
    for metric in sorted(samples["metric"].unique()):
        if metric == "served_by":
            continue
        table = summary_table(samples, metric)
        if table.empty:
            continue
        extra = [c for c in table.columns if c not in LABELS + ["services", "target", "n", "mean", "p50", "p10", "p90", "unit"]]
        header = ("mode", "backend", "datapath", "Services", "target", *extra, "n", "p50", "p10", "p90", "mean", "unit")
        rows = tuple((r["mode"], r["backend"], r["datapath"], fmt(int(r["services"])) if r["services"] == r["services"] else "-",
                      str(r["target"]), *(str(r[c]) for c in extra), str(r["n"]), fmt(r["p50"]), fmt(r["p10"]),
                      fmt(r["p90"]), fmt(r["mean"]), str(r["unit"])) for _, r in table.iterrows())
        blocks += [Heading(metric, 3), Table(header, rows)]
    return blocks


def build_blocks(results: Results, directory: Path, experiment=None) -> tuple[list, list[Path]]:
    samples = results.samples
    blocks: list = [Heading(f"{results.experiment}: {directory.name}", 1)]
    if experiment is not None:
        blocks.append(Text(experiment.DESCRIPTION))
    blocks += environment_blocks(results)
    plots: list[Path] = []
    if samples.empty:
        blocks.append(Text("No samples: nothing ran (see above)."))
        return blocks, plots
    blocks += headline_blocks(headline(samples))
    ratios = throughput_ratios(samples)
    if not ratios.empty:
        blocks += [Heading("Bulk throughput: via the VIP against the pod IP"),
                   Table(("mode", "backend", "datapath", "Services", "pod IP Gbit/s", "VIP Gbit/s", "VIP / pod", "difference"),
                         tuple((r["mode"], r["backend"], r["datapath"], fmt(int(r["services"])), fmt(r["pod-ip"]),
                                fmt(r["vip"]), f"{r['ratio']:.3f}", f"{r['diff']:+.3f}") for _, r in ratios.iterrows())),
                   Text("Conntrack remembers each connection's NAT decision after its first packet, so bulk throughput "
                        "does not depend on the number of Services or rules: expect a flat line here.")]
    if experiment is not None and hasattr(experiment, "report_sections"):
        blocks += experiment.report_sections(results)
    for name, plot, alt in PLOTS:
        if plot(samples, directory / name):
            plots.append(directory / name)
            blocks.append(Image(name, alt))
    blocks += metric_blocks(samples)
    return blocks, plots


def write_report(results_dir: str | Path) -> Report:
    from .experiments import load_experiment
    from .errors import TestbedError
    directory = Path(results_dir)
    results = load(directory)
    try:
        experiment = load_experiment(results.experiment)
    except TestbedError:
        experiment = None      # results of an experiment this checkout does not have: the generic report
    blocks, plots = build_blocks(results, directory, experiment)
    md, page = directory / "report.md", directory / "report.html"
    md.write_text(to_markdown(blocks))
    page.write_text(to_html(blocks, f"{results.experiment} {directory.name}"))
    return Report(page, md, tuple(plots))
