"""The experiment harness: grids from the registry, not-run modes with their reason, labels on every
sample, results folders; on a toy experiment that needs no root (network=False clusters)."""
import textwrap

import pytest

from testbed import experiments
from testbed.errors import TestbedError
from testbed.experiments import flag_of, parse_options, run_experiment
from testbed.experiments.common import not_runnable_reason, switch_for
from testbed.proxy import backend as registry
from testbed.proxy.backend import Backend
from testbed.results import load

TOY = '''
"""A toy experiment on the control plane alone."""
from testbed.experiments import NotRunnable
from testbed.experiments.common import mode_labels
from testbed.results import sample

NAME = "toy"
DESCRIPTION = "counts Services"
GRID = {"mode": [m for m in mode_labels() if m in ("iptables", "broken")], "services": [1, 3]}
QUICK = {"services": [2]}
REPEATS = 1


def applicable(point):
    return point["services"] != 3 or point["mode"] == "iptables"


def setup(point, ctx):
    if point["services"] == 2 and ctx.repeat == 1:
        raise NotRunnable("the second repeat of 2 cannot run")
    cluster = ctx.cluster_for(point["mode"], network=False)
    cluster.apply([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}"},
                    "spec": {"ports": [{"port": 80}]}} for i in range(point["services"])])
    return cluster


def measure(cluster, point, ctx):
    yield sample("services_seen", len(cluster.get("svc")), "Services", target="all", quick=ctx.quick)


def teardown(cluster):
    cluster.stop()
'''


@pytest.fixture
def toy_dir(tmp_path, monkeypatch):
    (tmp_path / "toy.py").write_text(textwrap.dedent(TOY))
    monkeypatch.setattr(experiments, "EXPERIMENT_DIR", tmp_path)
    broken = registry.register(Backend(mode="broken", summary="cannot run", render=lambda p, n, layout=None: "",
                                       make_proxier=lambda ctx: None, unavailable=lambda: "this kernel lacks it"))
    yield tmp_path
    registry.unregister(broken.mode)


def test_a_grid_runs_and_every_sample_says_what_ran(toy_dir, tmp_path):
    out = run_experiment("toy", ["--out", str(tmp_path / "out")], progress=False)
    r = load(out)
    samples = r.samples[r.samples["metric"] == "services_seen"]
    assert sorted(samples["services"].tolist()) == [1, 3]
    assert (r.samples[r.samples["metric"] == "point_s"]["value"] > 0).sum() == 2
    assert set(samples["mode"]) == {"iptables"} and set(samples["backend"]) == {"iptables (nft)"}
    # the kubernetes Service is there too
    assert samples.sort_values("services")["value"].tolist() == [2.0, 4.0]
    assert r.not_run.to_dict("records") == [{"run": r.metadata["runs"][0]["run"], "mode": "broken",
                                             "point": {"mode": "broken", "services": 1}, "reason": "this kernel lacks it"}]
    run = r.metadata["runs"][0]
    assert run["grid"] == {"mode": ["iptables", "broken"], "services": [1, 3]} and run["duration_s"] >= 0
    assert run["modes"] == {"iptables": {"mode": "iptables", "backend": "iptables (nft)", "datapath": "", "switch": "ovs"}}


def test_quick_repeat_and_not_runnable_points(toy_dir, tmp_path):
    out = run_experiment("toy", ["--quick", "--repeat", "2", "--modes", "iptables", "--out", str(tmp_path / "q")],
                         progress=False)
    r = load(out)
    seen = r.samples[r.samples["metric"] == "services_seen"]
    assert seen["repeat"].tolist() == [0] and seen["quick"].tolist() == [True]
    assert r.not_run["reason"].tolist() == ["the second repeat of 2 cannot run"]
    # a second run in the same folder (same environment) is added, not merged into the first
    run_experiment("toy", ["--quick", "--modes", "iptables", "--out", str(tmp_path / "q")], progress=False)
    assert load(out).samples["run"].nunique() == 2


def test_options_are_checked(toy_dir):
    toy = experiments.load_experiment("toy")
    with pytest.raises(TestbedError, match="unknown option --mode: toy takes --modes, --services, --repeat"):
        parse_options(["--mode", "iptables"], toy)
    with pytest.raises(TestbedError, match="--switch: 'bridge'"):
        parse_options(["--switch", "bridge"], toy)
    with pytest.raises(TestbedError, match="--repeat: '0' is not a positive integer"):
        parse_options(["--repeat", "0"], toy)
    with pytest.raises(TestbedError, match=r"\[--modes iptables,broken\] \[--services 1,3\]"):
        parse_options(["--help"], toy)
    with pytest.raises(TestbedError, match="unknown mode 'nope'"):
        run_experiment("toy", ["--modes", "nope"], progress=False)
    with pytest.raises(TestbedError, match="unknown experiment 'nothing'"):
        experiments.load_experiment("nothing")


def test_option_names():
    assert [flag_of(k) for k in ("mode", "services", "algorithm", "policy", "paths", "bw", "delay")] == [
        "--modes", "--services", "--algorithms", "--policies", "--paths", "--bws", "--delays"]


def test_switch_choice_follows_the_mode_and_the_machine(monkeypatch):
    import testbed.net.ovs as ovs
    monkeypatch.setattr(ovs, "kernel_datapath_available", lambda: False)
    assert switch_for("iptables", None, "linuxbridge") == "linuxbridge"
    assert switch_for("sdn", None, "linuxbridge") == "ovs"          # OpenFlow needs OVS
    assert switch_for("iptables", None, "ovs") == "ovs"
    assert switch_for("iptables", "ovs", "linuxbridge") == "ovs"    # asked for
    assert "needs --switch ovs" in not_runnable_reason("sdn", "linuxbridge")
    monkeypatch.setattr(ovs, "kernel_datapath_available", lambda: True)
    assert switch_for("iptables", None, "linuxbridge") == "ovs"     # OVS' kernel datapath is there


def test_every_experiment_declares_the_harness_interface():
    for name, _ in experiments.list_experiments():
        module = experiments.load_experiment(name)
        assert callable(module.setup) and callable(module.measure) and callable(module.teardown), name
        assert set(getattr(module, "QUICK", {})) <= set(module.GRID), name
        assert module.__doc__ and "python experiments/" in module.__doc__, name
