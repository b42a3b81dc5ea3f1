"""Results folders: tidy samples, metadata, runs from another environment refused, load(DIR)."""
import json
import math

import pytest

from testbed import results
from testbed.vm import VM_INFO_ENV
from testbed.errors import TestbedError
from testbed.results import ResultsFolder, RunRecord, chi_square, chi_square_sf, load, percentile, sample

ENV = {"kernel": "6.1", "machine": "m", "cpus": 2, "cpu_model": "x", "ovs": "ovs 3.1", "iptables_nft": "1.8.9",
       "iptables_legacy": "1.8.9", "ovs_kernel_datapath": False, "accelerator": "none", "commit": "abc",
       "uncommitted_changes": "", "python": "3.11"}


def row(metric="connect_us", value=1.0, **extra):
    return {"mode": "iptables", "backend": "iptables (nft)", "datapath": "linuxbridge", "services": 1,
            **sample(metric, value, "us", target="first", **extra)}


def test_a_run_is_written_and_loaded_back_as_dataframes(tmp_path):
    folder = ResultsFolder(tmp_path / "r", "proxy-scale", ENV)
    record = RunRecord(run="r1", started="now", grid={"mode": ["iptables"]}, options={})
    record.not_run.append({"mode": "ipvs", "point": {"mode": "ipvs"}, "reason": "no IPVS in this kernel"})
    folder.add_run(record, [row(value=v, seq=i) for i, v in enumerate((40.0, 42.0, 41.0))])
    loaded = load(tmp_path / "r")
    assert list(loaded.samples.columns[:10]) == ["run", "mode", "backend", "datapath", "services", "target", "metric",
                                                 "value", "unit", "seq"]
    assert loaded.samples["value"].tolist() == [40.0, 42.0, 41.0]
    assert loaded.not_run.to_dict("records") == [{"run": "r1", "mode": "ipvs", "point": {"mode": "ipvs"},
                                                  "reason": "no IPVS in this kernel"}]
    assert (tmp_path / "r" / "samples.csv").read_text().startswith("run,mode,backend,datapath,services")
    meta = json.loads((tmp_path / "r" / "metadata.json").read_text())
    assert meta["environment"]["kernel"] == "6.1" and meta["runs"][0]["load_before"] is not None


def test_runs_of_one_environment_share_a_folder_and_others_are_refused(tmp_path):
    ResultsFolder(tmp_path, "proxy-scale", ENV).add_run(RunRecord("r1", "a", {}, {}), [row()])
    ResultsFolder(tmp_path, "proxy-scale", ENV).add_run(RunRecord("r2", "b", {}, {}), [row(value=2.0)])
    assert load(tmp_path).samples["run"].tolist() == ["r1", "r2"]
    with pytest.raises(TestbedError, match=r"another environment \(kernel: '6.1' != '6.18'; commit: 'abc' != 'def'\)"):
        ResultsFolder(tmp_path, "proxy-scale", {**ENV, "kernel": "6.18", "commit": "def"})
    with pytest.raises(TestbedError, match="holds 'proxy-scale' results, not 'failover'"):
        ResultsFolder(tmp_path, "failover", ENV)
    assert len(load(tmp_path).metadata["runs"]) == 2


def test_folders_that_are_not_results_are_refused(tmp_path):
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(TestbedError, match="not a results folder"):
        ResultsFolder(tmp_path, "proxy-scale", ENV)
    with pytest.raises(TestbedError, match="not a results folder"):
        load(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({"format": 1, "experiment": "x"}))
    with pytest.raises(TestbedError, match="format 1 is not 2"):
        load(tmp_path)


def test_samples_need_the_tidy_columns_and_numbers():
    with pytest.raises(TestbedError, match="lacks column"):
        results.check_samples([sample("connect_us", 1.0, "us")])
    bad = row()
    bad["value"] = "fast"
    with pytest.raises(TestbedError, match="is not a number"):
        results.check_samples([bad])


def test_environment_records_the_accelerator_of_testbed_vm(monkeypatch):
    monkeypatch.setenv(VM_INFO_ENV, json.dumps({"accelerator": "tcg", "qemu": "7.2"}))
    env = results.environment()
    assert env["accelerator"] == "tcg" and "not comparable" in env["note"] and env["vm"]["qemu"] == "7.2"
    monkeypatch.delenv(VM_INFO_ENV)
    assert results.environment()["accelerator"] == "none"


def test_chi_square_matches_published_critical_values():
    assert chi_square_sf(3.841, 1) == pytest.approx(0.05, abs=1e-4)
    assert chi_square_sf(5.991, 2) == pytest.approx(0.05, abs=1e-4)
    assert chi_square_sf(9.210, 2) == pytest.approx(0.01, abs=1e-4)
    assert chi_square_sf(30.0, 20) == pytest.approx(0.0699, abs=1e-3)
    statistic, dof, p = chi_square([100, 100, 100], [1, 1, 1])
    assert (statistic, dof, p) == (0.0, 2, 1.0)
    assert chi_square([300, 0, 0], [1, 1, 1])[2] < 1e-10
    assert chi_square([50, 100, 150], [1, 2, 3])[2] == 1.0
    assert chi_square([5, 0], [1, 0]) == (0.0, 1, 1.0) and chi_square([5, 1], [1, 0])[2] == 0.0


def test_percentile_interpolates():
    assert percentile([1, 2, 3, 4], 0.5) == 2.5 and percentile([5], 0.9) == 5
    assert math.isnan(percentile([], 0.5))
