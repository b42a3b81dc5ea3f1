"""TCLink-style link shaping (pure parts), topology links with parameters, and the experiments'
pure helpers (wrk's output, failover's accounting, lb-fairness' intentions)."""
import pytest

from testbed.errors import TestbedError
from testbed.experiments import load_experiment
from testbed.experiments.common import parse_wrk
from testbed.net.links import LinkShape, missing_support, parse_shape, tc_commands
from testbed.topology import parse_topology

WRK = """Running 3s test @ http://10.96.0.12/hostname.html
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.93ms  512.01us   9.10ms   81.40%
    Req/Sec     4.12k   201.33     4.40k    70.00%
  Latency Distribution
     50%    1.85ms
     75%    2.10ms
     90%  700.00us
     99%    1.20s
  12345 requests in 3.01s, 1.80MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   4101.33
Transfer/sec:    612.13KB
"""


def test_wrk_output_is_read():
    result = parse_wrk(WRK)
    assert result["requests"] == 12345 and result["seconds"] == pytest.approx(3.01)
    assert result["requests_per_second"] == 4101.33 and result["errors"] == 9
    assert result["latency_us"] == {"50%": 1850.0, "75%": 2100.0, "90%": 700.0, "99%": 1.2e6}
    with pytest.raises(TestbedError, match="wrk failed"):
        parse_wrk("unable to connect to 10.96.0.12:80 Connection refused")


def test_link_parameters_as_mininet_tclink():
    shape = parse_shape({"bw": 100, "delay": "5ms", "jitter": "1ms", "loss": 1, "max_queue_size": 1000})
    assert tc_commands("tb-up-node1", shape) == [
        "tc qdisc del dev tb-up-node1 root 2>/dev/null; true",
        "tc qdisc add dev tb-up-node1 root handle 5:0 htb default 1",
        "tc class add dev tb-up-node1 parent 5:0 classid 5:1 htb rate 100Mbit burst 15k",
        "tc qdisc add dev tb-up-node1 parent 5:1 handle 10: netem delay 5ms 1ms loss 1% limit 1000"]
    assert tc_commands("x", LinkShape(delay="2ms"))[-1] == "tc qdisc add dev x root handle 10: netem delay 2ms"
    assert len(tc_commands("x", LinkShape(bw=10))) == 3
    for bad, message in (({"bw": -1}, "bw"), ({"delay": "5"}, "delay"), ({"loss": 120}, "loss"),
                         ({"jitter": "1ms"}, "jitter needs"), ({"speed": 1}, "unknown link parameter 'speed'")):
        with pytest.raises(TestbedError, match=message):
            parse_shape(bad)


def test_netem_is_refused_where_the_kernel_lacks_it():
    htb_only = {"sch_htb"}.__contains__
    assert missing_support(LinkShape(bw=10), htb_only) is None
    reason = missing_support(LinkShape(bw=10, delay="5ms"), htb_only)
    assert "netem" in reason and "testbed vm" in reason


def test_topology_links_may_carry_parameters():
    topology = parse_topology({"nodes": ["n1", "n2"], "switches": ["s"], "external": "s",
                               "links": [["n1", "s", {"bw": 10}], ["n2", "s"]]})
    assert topology.links == (("n1", "s"), ("n2", "s")) and topology.uplink_of("n1") == "s"
    assert topology.link_shapes == (("n1", "s", LinkShape(bw=10.0)),)
    with pytest.raises(TestbedError, match=r"links: \['n1', 's'\]: loss"):
        parse_topology({"nodes": ["n1"], "switches": ["s"], "external": "s", "links": [["n1", "s", {"loss": "x"}]]})


def test_failover_counts_failures_after_the_deletion():
    failover = load_experiment("failover")
    attempts = [[1.0, 1, "a"], [2.0, 1, "b"], [3.0, 0, "ConnectionRefusedError"], [3.5, 0, "timeout"], [4.0, 1, "c"]]
    assert failover.failures_after(attempts, 2.5) == (2, 1.0, 3)
    assert failover.failures_after(attempts[:2], 0.5) == (0, 0.0, 2)


def test_lb_fairness_intentions():
    lb = load_experiment("lb-fairness")
    assert lb.intended("rr", "spread") == (1 / 3,) * 3 and lb.intended("wrr", "spread") == (1 / 6, 2 / 6, 3 / 6)
    assert lb.intended("sh", "spread") == "one" and lb.intended("random", "affinity") == "one"
    assert lb.intended("newfangled", "spread") is None
    assert lb.rr_strictness(["a", "b", "c"] * 4) == 1.0
    assert lb.rr_strictness(["a", "a", "b", "c", "c", "b"]) == pytest.approx(1 / 3)
    assert lb.applicable({"mode": "sdn", "algorithm": "lc", "scenario": "held"})
    assert not lb.applicable({"mode": "sdn", "algorithm": "rr", "scenario": "held"})
    assert not lb.applicable({"mode": "sdn", "algorithm": "rr", "scenario": "affinity"})
