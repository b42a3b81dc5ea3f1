"""Load-balancing algorithms: the pure choosers and tables, and the same algorithms through the
pipeline on fake switches (proactive ones in the switch, reactive ones through the controller)."""
from collections import Counter

import pytest

from testbed.proxy.model import Endpoint
from testbed.sdn import algorithms
from testbed.sdn.algorithms import ReactiveChooser, endpoint_weights, maglev_size, maglev_table

from tests.support.sdn_fake_cluster import FakeSdnCluster, only, service, two_node_topology

VIP = "10.96.0.20"


def chooser(algorithm, n=3, weights=None):
    c = ReactiveChooser(algorithm)
    c.update([f"10.244.0.{i + 2}:8080" for i in range(n)], weights or [1] * n)
    return c


def run(c, count, hold=()):
    """Choose `count` times; connections stay open only for indexes in `hold`."""
    picks = []
    for _ in range(count):
        index = c.choose()
        picks.append(index)
        c.opened(c.endpoints[index])
        if index not in hold:
            c.closed(c.endpoints[index])
    return picks


# --- pure ------------------------------------------------------------------------------------------
def test_unknown_algorithm_is_an_error():
    assert algorithms.algorithm_name(" WLC ") == "wlc"
    with pytest.raises(algorithms.UnknownAlgorithm):
        algorithms.algorithm_name("fastest")


def test_weights_by_ip_address_or_pod_name_default_one():
    endpoints = [Endpoint("10.244.0.2", 80, pod_name="a"), Endpoint("10.244.0.3", 80, pod_name="b"),
                 Endpoint("10.244.0.4", 80, pod_name="c")]
    assert endpoint_weights(endpoints, {"10.244.0.2": 3, "b": 0, "10.244.0.9": 7}) == (3, 0, 1)
    assert endpoint_weights(endpoints, {"10.244.0.4:80": 5}) == (1, 1, 5)


def test_rr_rotates_strictly_and_skips_zero_weight():
    assert run(chooser("rr"), 7) == [0, 1, 2, 0, 1, 2, 0]
    assert run(chooser("rr", weights=[1, 0, 1]), 4) == [0, 2, 0, 2]


def test_wrr_is_ipvs_interleaved_weighted_round_robin():
    assert run(chooser("wrr", weights=[4, 3, 2]), 9) == [0, 0, 1, 0, 1, 2, 0, 1, 2]
    assert Counter(run(chooser("wrr", weights=[3, 1, 0]), 40)) == {0: 30, 1: 10}


def test_lc_prefers_the_endpoint_with_fewest_connections():
    c = chooser("lc", n=2)
    assert run(c, 1, hold={0}) == [0]            # a long connection stays on endpoint 0
    assert run(c, 10) == [1] * 10                # every short one goes elsewhere


def test_wlc_sed_and_nq_follow_ipvs():
    c = chooser("wlc", n=2, weights=[3, 1])
    picks = run(c, 4, hold={0, 1})
    assert Counter(picks) == {0: 3, 1: 1}
    sed = chooser("sed", n=2, weights=[1, 2])    # (0+1)/1 vs (0+1)/2: endpoint 1 first
    assert sed.choose() == 1
    nq = chooser("nq", n=3, weights=[1, 5, 1])
    nq.opened(nq.endpoints[0])
    assert nq.choose() == 1                      # an idle endpoint first, even at lower weight than sed would
    nq.opened(nq.endpoints[1])
    assert nq.choose() == 2


def test_no_endpoint_or_all_weights_zero_means_no_choice():
    assert ReactiveChooser("rr").choose() is None
    assert chooser("lc", weights=[0, 0, 0]).choose() is None


def test_counts_survive_endpoint_updates():
    c = chooser("lc", n=2)
    c.opened(c.endpoints[0])
    c.update(list(c.endpoints) + ["10.244.0.9:8080"], [1, 1, 1])
    assert c.active == {"10.244.0.2:8080": 1, "10.244.0.3:8080": 0, "10.244.0.9:8080": 0}


def test_maglev_table_is_balanced():
    names = [f"10.244.{i // 250}.{i % 250}:8080" for i in range(20)]
    shares = Counter(maglev_table(names, maglev_size(20)))
    assert max(shares.values()) - min(shares.values()) <= 1


def test_maglev_adding_a_backend_to_a_large_set_moves_at_most_one_percent():
    names = [f"10.244.{i // 250}.{i % 250}:8080" for i in range(1001)]
    size = maglev_size(1001)
    before, after = maglev_table(names[:1000], size), maglev_table(names, size)
    moved = sum(1 for a, b in zip(before, after) if a != b)
    assert moved / size <= 0.01
    reshuffled = sum(1 for a, b in zip(before, after) if a != b and b != 1000)
    assert reshuffled / size <= 0.01


def test_maglev_size_is_prime_and_at_least_a_hundred_slots_per_backend():
    assert maglev_size(2) == 211
    assert maglev_size(10_000) == algorithms.MAX_SLOTS
    with pytest.raises(ValueError):
        maglev_table(["a"], 100)


# --- through the pipeline --------------------------------------------------------------------------------
@pytest.fixture
def topo():
    return two_node_topology(pods_per_node=3)


def endpoints_of(topo, names):
    return [p for p in topo.pods if p.name in names]


def served(c, client, count, sport=30000, **kwargs):
    return [c.receiver(only(c.from_pod(client, VIP, 80, sport=sport + i, **kwargs))) for i in range(count)]


BACKENDS = ("pod-0-1", "pod-1-0", "pod-1-1")


def test_random_spreads_connections_over_all_endpoints(topo):
    c = FakeSdnCluster(topo, (service("web", VIP, *endpoints_of(topo, BACKENDS)),))
    counts = Counter(served(c, "pod-0-0", 300))
    assert set(counts) == set(BACKENDS) and min(counts.values()) > 60


def test_rr_rotates_strictly_through_the_controller(topo):
    c = FakeSdnCluster(topo, (service("web", VIP, *endpoints_of(topo, BACKENDS), lb_algorithm="rr"),))
    got = served(c, "pod-0-0", 9)
    assert got == list(BACKENDS) * 3
    assert len(c.switch("node0").flows(21)) == 1 + 9            # miss flow + one per connection


def test_rr_per_node_state_as_each_node_has_its_own_ipvs(topo):
    c = FakeSdnCluster(topo, (service("web", VIP, *endpoints_of(topo, BACKENDS), lb_algorithm="rr"),))
    assert served(c, "pod-0-0", 2) == list(BACKENDS[:2])
    assert served(c, "pod-1-2", 2) == list(BACKENDS[:2])


def test_wrr_follows_weights_through_the_controller(topo):
    svc = service("web", VIP, *endpoints_of(topo, BACKENDS), lb_algorithm="wrr",
                  lb_weights={"pod-0-1": 2, "pod-1-0": 1, "pod-1-1": 0})
    c = FakeSdnCluster(topo, (svc,))
    assert Counter(served(c, "pod-0-0", 30)) == {"pod-0-1": 20, "pod-1-0": 10}


def test_lc_sends_new_connections_away_from_an_endpoint_holding_a_long_one(topo):
    c = FakeSdnCluster(topo, (service("web", VIP, *endpoints_of(topo, BACKENDS[:2]), lb_algorithm="lc"),))
    long_one = only(c.from_pod("pod-0-0", VIP, 80, sport=30000))
    holder = c.receiver(long_one)
    for i in range(1, 6):
        short = only(c.from_pod("pod-0-0", VIP, 80, sport=30000 + i))
        assert c.receiver(short) != holder
        c.from_pod("pod-0-0", VIP, 80, sport=30000 + i, flags="F")   # FIN: its flow idles out in 1 s
        c.advance(1.5)
        c.from_pod("pod-0-0", VIP, 80, sport=30000, flags="A")       # the long one keeps talking
    instance = next(iter(c.state.instances_for("node0")))
    assert c.selector.active("node0", instance) == {e: (1 if e.startswith(c.pod(holder).ip) else 0)
                                                    for e in c.selector.active("node0", instance)}


def test_reactive_connection_flows_expire_and_counts_drop(topo):
    c = FakeSdnCluster(topo, (service("web", VIP, *endpoints_of(topo, BACKENDS[:2]), lb_algorithm="lc"),))
    served(c, "pod-0-0", 4)
    instance = next(iter(c.state.instances_for("node0")))
    assert sum(c.selector.active("node0", instance).values()) == 4
    c.advance(61)
    assert sum(c.selector.active("node0", instance).values()) == 0


def test_sh_keeps_a_client_on_one_endpoint_and_spreads_clients(topo):
    c = FakeSdnCluster(topo, (service("web", VIP, *endpoints_of(topo, BACKENDS), lb_algorithm="sh"),))
    per_client = {client: set(served(c, client, 20)) for client in ("pod-0-0", "pod-0-2", "pod-1-2")}
    assert all(len(s) == 1 for s in per_client.values())
    assert len(c.switch("node0").flows(13)) == 1 + 3             # slot table: miss + one slot per endpoint


def test_dh_sends_one_destination_to_one_endpoint(topo):
    c = FakeSdnCluster(topo, (service("web", VIP, *endpoints_of(topo, BACKENDS), lb_algorithm="dh"),))
    assert len({*served(c, "pod-0-0", 10), *served(c, "pod-0-2", 10)}) == 1


def test_maglev_spreads_connections_and_keeps_each_on_its_slot(topo):
    c = FakeSdnCluster(topo, (service("web", VIP, *endpoints_of(topo, BACKENDS), lb_algorithm="maglev"),))
    counts = Counter(served(c, "pod-0-0", 300))
    assert set(counts) == set(BACKENDS)
    assert len(c.switch("node0").flows(13)) == 1 + maglev_size(3)


def test_lc_counts_closed_connections_as_inactive_as_ipvs_does(topo):
    """Two held (established) connections to two of three endpoints; six sequential short
    connections then all go to the third: a closed connection is inactive at once (FIN seen), and
    lc weighs an active connection as 256 inactive ones (ip_vs_dest_conn_overhead). Counting a
    closed connection as active until its flow expired made them tie and rotate."""
    c = FakeSdnCluster(topo, (service("web", VIP, *endpoints_of(topo, BACKENDS), lb_algorithm="lc"),))
    held = {c.receiver(only(c.from_pod("pod-0-0", VIP, 80, sport=30000 + i))) for i in range(2)}
    assert len(held) == 2
    third = (set(BACKENDS) - held).pop()
    for i in range(6):
        short = only(c.from_pod("pod-0-0", VIP, 80, sport=31000 + i))
        assert c.receiver(short) == third, i
        c.from_pod("pod-0-0", VIP, 80, sport=31000 + i, flags="FA")   # the client closes at once
    instance = next(iter(c.state.instances_for("node0")))
    inactive = c.selector.inactive("node0", instance)
    assert sum(inactive.values()) == 6 and sum(c.selector.active("node0", instance).values()) == 2
    c.advance(1.5)                                                    # closed flows idle out (fin_timeout 1 s)
    assert sum(c.selector.inactive("node0", instance).values()) == 0


@pytest.mark.parametrize("algorithm,expected", [("lc", 0), ("wlc", 0), ("sed", 0), ("nq", 0)])
def test_least_connection_family_ignores_or_weighs_inactive_connections(algorithm, expected):
    """IPVS: lc/wlc weigh inactive connections (1/256 of an active one); sed and nq look at active
    connections only."""
    chooser = ReactiveChooser(algorithm)
    chooser.update(["a:1", "b:1"], [1, 1])
    for _ in range(3):
        chooser.opened("a:1", active=False)       # three inactive ones on a
    chooser.opened("b:1")                         # one active on b
    assert chooser.choose() == expected
    chooser.opened("a:1")                         # now a has one active too
    # lc/wlc: a = 256 + 3 > b = 256 -> b; sed: (1+1)/1 ties -> first (a); nq: none idle -> sed -> a
    assert chooser.choose() == {"lc": 1, "wlc": 1, "sed": 0, "nq": 0}[algorithm]
