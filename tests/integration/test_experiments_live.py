"""Experiments end to end on tiny grids (CI's budget): the harness brings clusters up, the samples
are tidy and labelled with what ran, the report has its plots; links are shaped by HTB."""
import os

import pytest

from testbed.experiments import run_experiment
from testbed.reports import write_report
from testbed.results import load, percentile

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="integration tests need root")


def test_proxy_scale_on_a_tiny_grid(tmp_path):
    out = run_experiment("proxy-scale", ["--modes", "iptables-legacy", "--services", "1,50", "--quick",
                                         "--out", str(tmp_path / "ps")], progress=False)
    r = load(out)
    assert r.failures.empty, r.failures.to_dict("records")
    samples = r.samples
    assert set(samples["datapath"]) == {"linuxbridge"} and set(samples["backend"]) == {"iptables (legacy)"}
    connect = samples[samples["metric"] == "connect_us"]
    counts = connect.groupby(["services", "target"]).size()
    assert (counts >= 500).all() and len(counts) == 4
    assert 5 < percentile(connect["value"].tolist(), 0.5) < 5000      # µs: a kernel datapath, not a timeout
    rules = samples[samples["metric"] == "rules"].set_index("services")["value"]
    assert rules[50] > rules[1]
    rps = samples[samples["metric"] == "rps"]
    assert (rps["value"] > 100).all()
    bulk = samples[samples["metric"] == "bulk_gbps"]
    assert set(bulk["target"]) == {"vip", "pod-ip"} and (bulk["value"] > 0.01).all()
    report = write_report(out)
    assert {p.name for p in report.plots} >= {"connect-latency.png", "sync-time.png", "short-connection-rps.png"}
    assert "iptables (legacy)" in report.markdown.read_text()


def test_links_bandwidth_is_enforced(tmp_path):
    out = run_experiment("links", ["--modes", "iptables", "--bws", "20", "--delays", "0ms,5ms", "--quick",
                                   "--out", str(tmp_path / "links")], progress=False)
    r = load(out)
    assert r.failures.empty, r.failures.to_dict("records")
    bulk = r.samples[r.samples["metric"] == "bulk_gbps"]
    assert len(bulk) >= 1 and (bulk["value"] < 0.025).all() and (bulk["value"] > 0.005).all()
    from testbed.net.kernel import module_loaded_or_loadable
    if not module_loaded_or_loadable("sch_netem"):
        assert "netem" in " ".join(r.not_run["reason"]) and "testbed vm" in " ".join(r.not_run["reason"])


def test_failover_and_fairness_in_sdn_mode(tmp_path):
    out = run_experiment("lb-fairness", ["--modes", "sdn", "--algorithms", "rr", "--scenarios", "spread", "--quick",
                                         "--out", str(tmp_path / "lb")], progress=False)
    served = load(out).samples.query("metric == 'served_by'")
    assert len(served) == 150 and served["target"].value_counts().tolist() == [50, 50, 50]
    out = run_experiment("failover", ["--modes", "sdn", "--quick", "--out", str(tmp_path / "fo")], progress=False)
    samples = load(out).samples.set_index("metric")["value"]
    assert samples["requests"] > 50 and samples["errors"] < samples["requests"] / 4
