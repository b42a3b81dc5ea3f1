"""Reports: HTML and Markdown with plots from a results folder; the headline table's numbers."""
import pandas as pd
import pytest

from testbed import experiments
from testbed.reports import Heading, Table, headline, throughput_ratios, to_html, to_markdown, write_report
from testbed.results import ResultsFolder, RunRecord, sample

ENV = {"kernel": "6.18", "machine": "m", "cpus": 2, "commit": "abc", "accelerator": "none"}


def proxy_scale_rows():
    rows = []
    for mode, backend, datapath, slope in (("iptables", "iptables (nft)", "linuxbridge", 0.03),
                                           ("sdn", "sdn (OS-Ken controller, OpenFlow 1.3)", "netdev", 0.0)):
        for services in (1, 10000):
            for target in ("first", "last"):
                base = 40.0 + (slope * services if target == "last" else 0)
                rows += [{"mode": mode, "backend": backend, "datapath": datapath, "services": services,
                          **sample("connect_us", base + d, "us", target=target, seq=i)} for i, d in enumerate((-1, 0, 1))]
                rows.append({"mode": mode, "backend": backend, "datapath": datapath, "services": services,
                             **sample("rps", 5000 - (services * slope * 10 if target == "last" else 0), "requests/s",
                                      target=target)})
            rows.append({"mode": mode, "backend": backend, "datapath": datapath, "services": services,
                         **sample("full_sync_s", 0.001 * services, "s")})
            rows.append({"mode": mode, "backend": backend, "datapath": datapath, "services": services,
                         **sample("change_sync_s", 0.01, "s", target="add")})
            for target, gbps in (("vip", 0.9), ("pod-ip", 1.0)):
                rows.append({"mode": mode, "backend": backend, "datapath": datapath, "services": services,
                             **sample("bulk_gbps", gbps, "Gbit/s", target=target)})
    return rows


def write_folder(path, experiment, rows, not_run=()):
    record = RunRecord("r1", "2025-01-01T00:00:00", {}, {"argv": ["--quick"]})
    record.not_run += list(not_run)
    ResultsFolder(path, experiment, ENV).add_run(record, rows)


def test_headline_reports_ratios_with_differences():
    table = headline(pd.DataFrame(proxy_scale_rows())).set_index("mode")
    ipt = table.loc["iptables"]
    # at 1 Service first and last are the same Service: their samples are pooled
    assert ipt["connect_p50_low_us"] == pytest.approx(40.015) and ipt["connect_p50_last_us"] == 340.0
    assert ipt["connect_p50_first_us"] == 40.0
    assert ipt["connect_ratio"] == pytest.approx(340 / 40.015) and ipt["connect_diff_us"] == pytest.approx(299.985)
    assert ipt["rps_low"] == pytest.approx(5000 - 0.3) and ipt["rps_high"] == pytest.approx(2000.0)
    assert table.loc["sdn"]["connect_ratio"] == pytest.approx(1.0) and table.loc["sdn"]["datapath"] == "netdev"
    assert table.loc["iptables"]["full_sync_high_s"] == pytest.approx(10.0)


def test_report_writes_html_markdown_and_the_plots(tmp_path):
    write_folder(tmp_path, "proxy-scale", proxy_scale_rows(),
                 [{"mode": "ipvs", "point": {}, "reason": "this kernel has no IPVS: run it under testbed vm"}])
    report = write_report(tmp_path)
    md = report.markdown.read_text()
    assert "| iptables | iptables (nft) | linuxbridge | 1 → 10,000 | 40.0 | 40.0 | 340 | 8.50x | +300 |" in md
    assert "this kernel has no IPVS: run it under testbed vm" in md
    assert "does not depend on the number of Services" in md
    names = {p.name for p in report.plots}
    assert names == {"connect-latency.png", "sync-time.png", "short-connection-rps.png", "throughput-ratio.png"}
    assert all(p.stat().st_size > 5000 for p in report.plots)
    page = report.html.read_text()
    assert page.startswith("<!doctype html>") and "<img src='connect-latency.png'" in page and "8.50x" in page


def test_lb_fairness_report_tests_against_the_intended_distribution(tmp_path):
    rows = []
    cases = (("sdn", "rr", "spread", ["lb-0", "lb-1", "lb-2"] * 100),
             ("sdn", "wrr", "spread", ["lb-0"] * 100 + ["lb-1"] * 100 + ["lb-2"] * 100),   # not 1:2:3
             ("sdn", "sh", "spread", ["lb-1"] * 50))
    for mode, algorithm, scenario, order in cases:
        rows += [{"mode": mode, "backend": "sdn", "datapath": "netdev", "services": 1, "algorithm": algorithm,
                  "scenario": scenario, **sample("served_by", i, "index", target=pod, phase="new", expected_share=0.0)}
                 for i, pod in enumerate(order)]
    write_folder(tmp_path, "lb-fairness", rows)
    md = write_report(tmp_path).markdown.read_text()
    assert "| sdn | sdn | netdev | rr | spread | 300 | 0.333 / 0.333 / 0.333 | 0.333 / 0.333 / 0.333 | chi2 0.00, dof 2, " \
           "p 1; rr strictness 1.000 | yes |" in md
    assert "| sdn | sdn | netdev | wrr | spread | 300 |" in md and "| NO |" in md
    assert "| sdn | sdn | netdev | sh | spread | 50 | 0 / 1.00 / 0 | one endpoint | largest share 1.000 | yes |" in md
    assert (tmp_path / "lb-distribution.png").exists()


def test_throughput_ratio_and_unknown_experiments_get_the_generic_report(tmp_path):
    table = throughput_ratios(pd.DataFrame(proxy_scale_rows()))
    assert table["ratio"].round(3).tolist() == [0.9] * 4 and table["diff"].round(3).tolist() == [-0.1] * 4
    write_folder(tmp_path, "probe-syn", [{"mode": "iptables", "backend": "b", "datapath": "d", "services": 3,
                                          **sample("syn_rtt_us", 80.0, "us", target="10.96.0.1:80")}])
    md = write_report(tmp_path).markdown.read_text()
    assert "### syn_rtt_us" in md and "| iptables | b | d | 3 | 10.96.0.1:80 | 1 | 80.0 |" in md


def test_blocks_render_alike():
    blocks = [Heading("T"), Table(("a", "b"), (("1", "x|y"),))]
    assert to_markdown(blocks) == "## T\n\n| a | b |\n|---|---|\n| 1 | x\\|y |\n"
    assert "<td>x|y</td>" in to_html(blocks, "t")


def test_kernel_modes_have_only_random():
    from testbed.errors import TestbedError
    from testbed.experiments.common import algorithm_annotations
    assert algorithm_annotations("sdn", "maglev") == {"testbed.io/lb-algorithm": "maglev"}
    assert algorithm_annotations("iptables", "random") == {}
    with pytest.raises(TestbedError, match="iptables mode offers random; not the 'rr' algorithm"):
        algorithm_annotations("iptables", "rr")
    assert experiments.load_experiment("lb-fairness").applicable({"mode": "iptables", "algorithm": "rr",
                                                                  "scenario": "spread"}) is False
