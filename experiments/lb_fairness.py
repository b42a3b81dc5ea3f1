"""lb-fairness: how each mode's load-balancing algorithms spread new connections, against what they intend.

For every mode and every algorithm it offers (`testbed.io/lb-algorithm`, from the backend registry),
a Service over three pods lb-0, lb-1, lb-2 (weights 1, 2, 3 for the weighted algorithms, in
`testbed.io/lb-weights`), and one client pod making COUNT sequential short connections (one GET
each). Scenarios:
- spread: the distribution over the endpoints, tested with Pearson's chi-square against the intended
  one: uniform (random, rr, lc, maglev), proportional to the weights (wrr, wlc), or every connection
  on one endpoint (sh, dh, mh hash the one client's address; sed and nq send sequential connections,
  none of them active, to the same first choice);
- affinity: `sessionAffinity: ClientIP` with the mode's default algorithm: all on one endpoint;
- held: (least-connection algorithms) two keep-alive connections held open first, then the short
  ones: all should go to the endpoint that holds none.
rr strictness (the share of connections that repeat the endpoint of three connections earlier) is
computed from the order of the connections. Samples: `served_by` (one row per connection: target =
the pod, value = its position, phase held/new, expected_share).

    python experiments/lb_fairness.py --modes sdn --algorithms rr,wrr,maglev
"""
from __future__ import annotations

import math
import sys

from testbed.experiments.common import WORKLOADS, algorithm_annotations, algorithms_of, mode_labels, run_workload
from testbed.proxy.backend import all_backends
from testbed.reports import Heading, Table, Text, fmt
from testbed.results import chi_square, sample

NAME = "lb-fairness"
DESCRIPTION = "each algorithm's spread over endpoints (chi-square against the intended one), affinity, lc with held connections"
ALL_ALGORITHMS = list(dict.fromkeys(a for b in all_backends().values() for a in b.algorithms))
GRID = {"mode": mode_labels(), "algorithm": ALL_ALGORITHMS, "scenario": ["spread", "affinity", "held"]}
QUICK = {"scenario": ["spread", "affinity"]}
REPEATS = 1
PODS = ("lb-0", "lb-1", "lb-2")
WEIGHTS = (1, 2, 3)
UNIFORM = {"random", "rr", "lc", "maglev"}
WEIGHTED = {"wrr", "wlc"}
SINGLE = {"sh", "dh", "mh", "sed", "nq"}
LEAST_CONNECTION = {"lc", "wlc", "sed", "nq"}


def applicable(point) -> bool:
    offered = algorithms_of(point["mode"])
    if point["algorithm"] not in offered:
        return False
    if point["scenario"] == "affinity":
        return point["algorithm"] == offered[0]
    if point["scenario"] == "held":
        return point["algorithm"] in LEAST_CONNECTION
    return True


def intended(algorithm: str, scenario: str) -> tuple[float, ...] | str | None:
    """The intended shares of lb-0..2, "one" (all on a single endpoint) or None (unknown)."""
    if scenario in ("affinity", "held"):
        return "one"
    if algorithm in UNIFORM:
        return (1 / 3,) * 3
    if algorithm in WEIGHTED:
        return tuple(w / sum(WEIGHTS) for w in WEIGHTS)
    if algorithm in SINGLE:
        return "one"
    return None


def objects(mode: str, algorithm: str, scenario: str) -> list[dict]:
    annotations = algorithm_annotations(mode, algorithm)
    if algorithm in WEIGHTED:
        annotations["testbed.io/lb-weights"] = ",".join(f"{p}={w}" for p, w in zip(PODS, WEIGHTS))
    spec = {"selector": {"app": "lb"}, "ports": [{"port": 80}]}
    if scenario == "affinity":
        spec["sessionAffinity"] = "ClientIP"
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "lb"}},
             "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}} for name in PODS]
    return pods + [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb", "annotations": annotations}, "spec": spec}]


def setup(point, ctx):
    cluster = ctx.cluster_for(point["mode"], seed=ctx.repeat + 1, cluster_dns=False)
    cluster.start()
    cluster.apply(objects(point["mode"], point["algorithm"], point["scenario"]))
    cluster.wait_ready(60)
    return cluster


def measure(cluster, point, ctx):
    vip = cluster.get("svc", "lb")["spec"]["clusterIP"]
    hold = 2 if point["scenario"] == "held" else 0
    count = ctx.pick(600, 150) if point["scenario"] == "spread" else ctx.pick(60, 30)
    result = run_workload(cluster.client(), WORKLOADS / "lb_probe.py", vip, 80, count, hold)
    shares = intended(point["algorithm"], point["scenario"])
    for seq, pod in enumerate(result["held"]):
        yield sample("served_by", seq, "index", target=pod, phase="held", expected_share=math.nan)
    for seq, pod in enumerate(result["served"]):
        expected = shares[PODS.index(pod)] if isinstance(shares, tuple) and pod in PODS else math.nan
        yield sample("served_by", seq, "index", target=pod, phase="new", expected_share=expected)
    yield sample("errors", result["errors"], "connections", target="vip")


def teardown(cluster):
    cluster.stop()


# ------------------------------------------------------------------------------------------------
# Statistics (pure)


def rr_strictness(order: list[str], endpoints: int = 3) -> float:
    """Share of connections served by the same endpoint as the one `endpoints` connections earlier
    (1.0 for a strict rotation; about 1/endpoints for a random choice)."""
    pairs = [(order[i - endpoints], order[i]) for i in range(endpoints, len(order))]
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else math.nan


def verdicts(samples) -> list[dict]:
    """Per mode, algorithm and scenario: counts per endpoint, the test against the intended
    distribution and its verdict."""
    rows = []
    served = samples[samples["metric"] == "served_by"]
    for (mode, backend, datapath, algorithm, scenario), group in served.groupby(
            ["mode", "backend", "datapath", "algorithm", "scenario"], sort=False):
        new = group[group["phase"] == "new"].sort_values("value")
        counts = [int((new["target"] == pod).sum()) for pod in PODS]
        want = intended(algorithm, scenario)
        row = {"mode": mode, "backend": backend, "datapath": datapath, "algorithm": algorithm, "scenario": scenario,
               "connections": len(new), "shares": [c / max(1, len(new)) for c in counts]}
        if isinstance(want, tuple):
            statistic, dof, p = chi_square(counts, want)
            row.update(test=f"chi2 {statistic:.2f}, dof {dof}, p {p:.3g}", ok=p >= 0.01, intended=want)
        elif want == "one":
            top = max(counts) / max(1, len(new))
            row.update(test=f"largest share {top:.3f}", ok=top == 1.0, intended="one endpoint")
        else:
            row.update(test="no intended distribution known", ok=None, intended="?")
        if scenario == "held":
            held = set(group[group["phase"] == "held"]["target"])
            idle = [p for p in PODS if p not in held]
            row["test"] += f"; held on {', '.join(sorted(held))}, to the idle one: " \
                           f"{sum(counts[PODS.index(p)] for p in idle) / max(1, len(new)):.3f}"
            row["ok"] = bool(row["ok"]) and set(new["target"]) <= set(idle)
        if algorithm in ("rr",) and scenario == "spread":
            row["rr_strictness"] = rr_strictness(list(new["target"]))
            row["test"] += f"; rr strictness {row['rr_strictness']:.3f}"
        rows.append(row)
    return rows


def report_sections(results) -> list:
    rows = verdicts(results.samples)
    if not rows:
        return []
    table = Table(("mode", "backend", "datapath", "algorithm", "scenario", "connections", "shares lb-0/1/2", "intended",
                   "test", "as intended"),
                  tuple((r["mode"], r["backend"], r["datapath"], r["algorithm"], r["scenario"], str(r["connections"]),
                         " / ".join(fmt(s) for s in r["shares"]),
                         " / ".join(fmt(s) for s in r["intended"]) if isinstance(r["intended"], tuple) else r["intended"],
                         r["test"], {True: "yes", False: "NO", None: "-"}[r["ok"]]) for r in rows))
    return [Heading("Distribution against the intended one"), table,
            Text("Chi-square at the 1 % level: a p-value below 0.01 says the spread is unlikely under the intended "
                 "distribution. Weights for wrr/wlc: lb-0=1, lb-1=2, lb-2=3.")]


if __name__ == "__main__":
    from testbed.experiments import script_main
    sys.exit(script_main(NAME, sys.argv[1:]))
