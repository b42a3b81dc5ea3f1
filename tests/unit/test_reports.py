"""Reports read a results folder back; experiments refuse combinations a mode cannot run."""
import json

import pandas as pd
import pytest

from testbed.errors import TestbedError
from testbed.experiments import FORMAT_VERSION
from testbed.experiments.common import algorithm_annotations
from testbed.reports import write_report


def test_report_of_a_results_folder(tmp_path):
    rows = [{"experiment": "lb-distribution", "mode": "sdn", "algorithm": "rr", "replicas": 2, "seconds": 1.0,
             "repeat": 0, "proxy_mode": "sdn", "dataplane": "sdn", "datapath": "netdev", "backend": b,
             "connections": c, "share": c / 100, "errors": 0} for b, c in (("a", 50), ("b", 50))]
    pd.DataFrame(rows).to_parquet(tmp_path / "results.parquet")
    (tmp_path / "meta.json").write_text(json.dumps({
        "experiment": "lb-distribution", "format": FORMAT_VERSION, "started": "x", "grid": {}, "repeats": 1,
        "machine": {"kernel": "k"}, "failures": [{"mode": "iptables", "error": "iptables mode balances only at random"}]}))
    text = write_report(tmp_path).read_text()
    assert "| sdn | rr | 2 | 0.500 | 0.500 | 0 |" in text
    assert "not run" in text and "balances only at random" in text
    assert (tmp_path / "lb-distribution.png").stat().st_size > 1000


def test_report_refuses_other_formats(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"experiment": "throughput", "format": 999}))
    with pytest.raises(TestbedError, match="format 999"):
        write_report(tmp_path)
    with pytest.raises(TestbedError, match="not a results folder"):
        write_report(tmp_path / "missing")


def test_kernel_modes_have_only_random():
    assert algorithm_annotations("sdn", "maglev") == {"testbed.io/lb-algorithm": "maglev"}
    assert algorithm_annotations("iptables", "random") == {}
    with pytest.raises(TestbedError, match="iptables mode offers random; not the 'rr' algorithm"):
        algorithm_annotations("iptables", "rr")


def test_connection_rate_and_throughput_reports(tmp_path):
    from testbed.experiments import load_experiment
    rows = [{"mode": "sdn", "algorithm": "rr", "connections_per_second": 790.0},
            {"mode": "iptables", "algorithm": "random", "connections_per_second": 3105.0}]
    lines = load_experiment("connection-rate").report(pd.DataFrame(rows), tmp_path)
    assert "| sdn | rr | 790 | 790 | 790 |" in lines and "| iptables | random | 3105 | 3105 | 3105 |" in lines
    rows = [{"mode": m, "path": p, "gbps": g} for m, p, g in
            (("sdn", "pod-ip", 1.0), ("sdn", "cluster-ip", 0.9), ("iptables", "pod-ip", 0.5), ("iptables", "cluster-ip", 0.5))]
    lines = load_experiment("throughput").report(pd.DataFrame(rows), tmp_path)
    assert "| sdn | 1.00 | 0.90 | 0.900 |" in lines and "| iptables | 0.50 | 0.50 | 1.000 |" in lines
