"""NftablesProxier against the fake nft: full and partial syncs, stale chains, affinity sets, cleanup.

What matters: after any sequence of partial syncs the table holds exactly what one full sync of
the latest Services would (once stale chains, empty and unreferenced meanwhile, are deleted a
second later), while each sync writes one transaction with only what changed.
"""
import dataclasses
import random

import pytest

from testbed.backends.nftables import (
    STALE_CHAIN_DELAY, NftablesProxier, affinity_set_name, endpoint_chain_name, render_nftables,
    service_chain_names)
from testbed.net.runner import CommandError
from testbed.proxy.model import Endpoint, NodeInfo, ServicePort
from testbed.proxy.tracker import diff_services
from tests.support.fake_nft import FakeNft, FakeNftError, FakeNftRunner

NODE = NodeInfo(name="node1", ip="172.18.0.11", pod_cidr="10.244.1.0/24", cluster_cidr="10.244.0.0/16")


def port(name, ip, endpoints=("10.244.0.5", "10.244.2.5"), namespace="default", **fields):
    return ServicePort(namespace=namespace, name=name, port_name="http", protocol="TCP", port=80, cluster_ip=ip,
                       endpoints=tuple(Endpoint(e, 8080, f"node{e.split('.')[2]}") for e in endpoints), **fields)


def services():
    return [port("alpha", "10.96.0.11"),
            port("beta", "10.96.0.12", service_type="NodePort", node_port=30012),
            port("gamma", "10.96.0.13", affinity_timeout=600)]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def full_state(ports) -> str:
    fake = FakeNft()
    fake.run(render_nftables(ports, NODE))
    return fake.dump()


def state_without_stale(fake: FakeNft) -> str:
    stale = fake.empty_unreferenced_chains()
    return "".join(line + "\n" for line in fake.dump().splitlines()
                   if not (line.startswith("add chain ") and line.split()[4] in stale))


class Driver:
    """A proxier on a fake nft, told what changed as the change tracker would tell it."""

    def __init__(self, runner=None, clock=None):
        self.runner = runner or FakeNftRunner()
        self.clock = clock or Clock()
        self.proxier = NftablesProxier(self.runner, NODE, clock=self.clock)
        self.told = None

    def sync(self, ports):
        by_service: dict = {}
        for p in ports:
            by_service[p.service_key] = by_service.get(p.service_key, ()) + (p,)
        changed = None if self.told is None else diff_services(self.told, by_service)
        result = self.proxier.sync(ports, changed)
        self.told = by_service
        return result

    @property
    def fake(self):
        return self.runner.fake

    def last_transaction(self) -> str:
        return self.runner.transactions()[-1]


@pytest.fixture
def driver():
    return Driver()


def chains_added(text):
    return {line.split()[4] for line in text.splitlines() if line.startswith("add chain ")}


def test_first_sync_is_full_one_transaction_and_builds_the_node(driver):
    result = driver.sync(services())
    assert result.full and result.changed_services == ("default/alpha", "default/beta", "default/gamma")
    assert [args for args, _ in driver.runner.calls] == [
        ["nft", "-j", "-t", "list", "table", "ip", "kube-proxy"], ["nft", "-f", "-"]]
    assert driver.fake.dump() == full_state(services())
    assert result.rules == full_state(services()).count("add rule")
    assert result.details["elements"] == full_state(services()).count("add element")


def test_first_sync_recreates_the_base_chains_once(driver):
    driver.sync(services())
    assert "delete chain ip kube-proxy nat-prerouting" in driver.last_transaction()
    driver.proxier.sync(services(), None)                      # a full sync, same proxier
    assert "delete chain ip kube-proxy nat-prerouting" not in driver.last_transaction()


def test_partial_sync_rewrites_only_the_changed_service(driver):
    driver.sync(services())
    changed = services()
    changed[1] = port("beta", "10.96.0.12", endpoints=("10.244.0.5", "10.244.2.5", "10.244.1.5"),
                      service_type="NodePort", node_port=30012)
    result = driver.sync(changed)
    text = driver.last_transaction()
    assert not result.full and result.changed_services == ("default/beta",)
    beta, alpha = service_chain_names(changed[1]), service_chain_names(changed[0])
    assert beta.cluster in chains_added(text) and beta.external in chains_added(text)
    assert alpha.cluster not in text and "add table" not in text
    assert "add element" not in text          # same ClusterIP, same NodePort, same chains: no element changes
    assert driver.fake.dump() == full_state(changed)
    assert driver.runner.calls[-1][0] == ["nft", "-f", "-"]     # no listing on partial syncs


def test_a_sync_without_changes_runs_nothing(driver):
    driver.sync(services())
    calls = len(driver.runner.calls)
    result = driver.sync(services())
    assert result.changed_services == () and not result.full and len(driver.runner.calls) == calls


def test_kube_proxys_repeated_sync_operation_counts(driver):
    """The sequence of kube-proxy's TestSyncProxyRulesRepeated, with its operation counts."""
    svc1, svc2 = port("svc1", "10.96.0.41", ("10.244.0.1",)), port("svc2", "10.96.0.42", ("10.244.0.2",))
    svc3 = port("svc3", "10.96.0.43", ("10.244.0.3",))
    driver.sync([svc1, svc2])
    driver.sync([svc1, svc2, svc3])
    # add 1 element to cluster-ips and service-ips; add+flush the service and endpoint chains, 2 rules each
    assert len(driver.last_transaction().splitlines()) == 10
    driver.sync([svc1, svc3])
    # delete svc2's 2 elements, flush its 2 chains (deleted later)
    assert len(driver.last_transaction().splitlines()) == 4
    driver.clock.now += STALE_CHAIN_DELAY
    result = driver.sync([svc1, svc3])
    # kube-proxy deletes them in a transaction of its own; here it is the sync's only one
    assert driver.last_transaction().splitlines() == [
        f"delete chain ip kube-proxy {endpoint_chain_name(svc2, svc2.endpoints[0])}",
        f"delete chain ip kube-proxy {service_chain_names(svc2).cluster}"]
    assert result.details["stale_chains_deleted"] == 2
    svc4 = port("svc4", "10.96.0.44", ())
    driver.sync([svc1, svc3, svc4])
    assert len(driver.last_transaction().splitlines()) == 2       # cluster-ips + no-endpoint-services
    svc4 = port("svc4", "10.96.0.44", ("10.244.0.4",))
    driver.sync([svc1, svc3, svc4])
    assert len(driver.last_transaction().splitlines()) == 10      # 2 elements (one out, one in) + 8
    svc3_moved = port("svc3", "10.96.0.43", ("10.244.0.9",))
    driver.sync([svc1, svc3_moved, svc4])
    assert len(driver.last_transaction().splitlines()) == 9       # 8 + flush of the old endpoint chain
    assert state_without_stale(driver.fake) == full_state([svc1, svc3_moved, svc4])


def test_stale_chains_are_flushed_at_once_and_deleted_a_second_later(driver):
    driver.sync(services())
    fewer = [port("alpha", "10.96.0.11", endpoints=("10.244.0.5",)), services()[1]]
    driver.sync(fewer)
    gamma = service_chain_names(services()[2]).cluster
    gone_endpoint = endpoint_chain_name(services()[0], services()[0].endpoints[1])
    text = driver.last_transaction()
    assert f"flush chain ip kube-proxy {gamma}" in text and "delete chain" not in text
    assert {gamma, gone_endpoint} <= driver.fake.empty_unreferenced_chains()
    assert state_without_stale(driver.fake) == full_state(fewer)
    driver.clock.now += STALE_CHAIN_DELAY / 2
    driver.sync(fewer)                                   # too early: nothing to do
    assert gamma in driver.fake.table().chains
    driver.clock.now += STALE_CHAIN_DELAY / 2
    driver.sync(fewer)
    assert gamma not in driver.fake.table().chains and driver.fake.dump() == full_state(fewer)


def test_a_stale_chain_used_again_is_kept(driver):
    driver.sync(services())
    driver.sync(services()[:2])
    driver.clock.now += 0.5
    driver.sync(services())
    driver.clock.now += STALE_CHAIN_DELAY
    driver.sync(services())
    assert driver.fake.dump() == full_state(services())


def test_removed_service_elements_and_affinity_sets_go_at_once(driver):
    driver.sync(services())
    gamma = services()[2]
    driver.sync(services()[:2])
    text = driver.last_transaction()
    assert "delete element ip kube-proxy cluster-ips { 10.96.0.13 }" in text
    assert all(f"delete set ip kube-proxy {affinity_set_name(gamma, e)}" in text for e in gamma.endpoints)


def test_changed_affinity_timeout_recreates_the_sets(driver):
    driver.sync(services())
    longer = services()
    longer[2] = dataclasses.replace(longer[2], affinity_timeout=1200)
    driver.sync(longer)
    sets = driver.fake.table().containers
    assert {sets[affinity_set_name(longer[2], e)].timeout for e in longer[2].endpoints} == {1200}
    assert driver.fake.dump() == full_state(longer)


def test_element_whose_value_changes_is_deleted_and_added(driver):
    driver.sync(services())
    local = services()
    local[0] = dataclasses.replace(local[0], internal_policy_local=True,
                                   endpoints=local[0].endpoints + (Endpoint("10.244.1.5", 8080, "node1"),))
    driver.sync(local)
    text = driver.last_transaction()
    assert "delete element ip kube-proxy service-ips { 10.96.0.11 . tcp . 80 }" in text
    local_chain = service_chain_names(local[0]).local
    assert f"add element ip kube-proxy service-ips {{ 10.96.0.11 . tcp . 80 : goto {local_chain} }}" in text
    assert state_without_stale(driver.fake) == full_state(local)


def test_a_new_proxier_takes_over_what_an_earlier_one_left(driver):
    driver.sync(services())
    restarted = Driver(driver.runner, driver.clock)
    result = restarted.sync(services()[:1])
    assert result.full
    gamma = services()[2]
    assert all(affinity_set_name(gamma, e) not in driver.fake.table().containers for e in gamma.endpoints)
    assert state_without_stale(driver.fake) == full_state(services()[:1])
    driver.clock.now += STALE_CHAIN_DELAY
    restarted.sync(services()[:1])
    assert driver.fake.dump() == full_state(services()[:1])


def test_a_failed_transaction_makes_the_next_sync_full(driver, monkeypatch):
    driver.sync(services())
    changed = services()
    changed[0] = port("alpha", "10.96.0.11", endpoints=("10.244.0.5",))
    real_run = driver.fake.run

    def fail_once(text, check=False):
        monkeypatch.setattr(driver.fake, "run", real_run)
        raise FakeNftError("Error: Could not process rule: Device or resource busy")

    monkeypatch.setattr(driver.fake, "run", fail_once)
    with pytest.raises(CommandError, match="resource busy"):
        driver.sync(changed)
    result = driver.proxier.sync(changed, frozenset())     # whatever the tracker says: full
    assert result.full and driver.runner.calls[-2][0][:4] == ["nft", "-j", "-t", "list"]
    assert state_without_stale(driver.fake) == full_state(changed)


def test_the_memo_of_port_states_follows_the_services(driver):
    driver.sync(services())
    driver.sync(services()[:2])
    renamed = [dataclasses.replace(p, port_name="web") if p.name == "alpha" else p for p in services()[:2]]
    driver.sync(renamed)
    assert {k[:3] for k in driver.proxier.planner.port_states} == {("default", "alpha", "web"), ("default", "beta", "http")}


def test_cleanup_deletes_the_table_and_the_next_sync_starts_over(driver):
    driver.sync(services())
    driver.proxier.cleanup()
    assert driver.fake.tables == {}
    driver.proxier.cleanup()                       # nothing there: still fine
    assert driver.proxier.sync(services(), frozenset()).full
    assert driver.fake.dump() == full_state(services())


def test_two_services_claiming_one_external_ip_and_port():
    """Both may list it (the API does not prevent it); the first in name order gets the element,
    in partial syncs as in full ones, and the other takes over when the first lets go."""
    driver = Driver()
    a = port("a", "10.96.0.21", external_ips=("172.18.0.200",))
    b = port("b", "10.96.0.22", external_ips=("172.18.0.200",), endpoints=("10.244.2.9",))
    driver.sync([b])
    driver.sync([a, b])
    assert driver.fake.dump() == full_state([a, b])
    driver.sync([b])
    assert state_without_stale(driver.fake) == full_state([b])


def _mutate(rng: random.Random, ports: dict[str, ServicePort]) -> None:
    """One random change to one Service, of the kinds that move elements, chains and sets."""
    names = sorted(ports)
    name = rng.choice(names + ["new"])
    if name == "new" or name not in ports:
        index = len(names) + rng.randrange(1000)
        name = f"svc-{index}"
        ports[name] = port(name, f"10.96.{index // 250}.{index % 250 + 1}")
        return
    current = ports[name]
    hosts = [f"10.244.{n}.{h}" for n in range(3) for h in range(2, 6)]
    choice = rng.randrange(9)
    if choice == 0:
        del ports[name]
    elif choice == 1:
        ports[name] = dataclasses.replace(current, endpoints=tuple(
            Endpoint(ip, 8080, f"node{ip.split('.')[2]}") for ip in sorted(rng.sample(hosts, rng.randrange(0, 4)))))
    elif choice == 2:
        ports[name] = dataclasses.replace(current, affinity_timeout=rng.choice([None, 60, 600]))
    elif choice == 3:
        ports[name] = dataclasses.replace(current, internal_policy_local=not current.internal_policy_local)
    elif choice == 4:
        nodeport = None if current.node_port else 30000 + rng.randrange(100)
        ports[name] = dataclasses.replace(current, node_port=nodeport, service_type="NodePort" if nodeport else "ClusterIP")
    elif choice == 5:
        ports[name] = dataclasses.replace(current, external_policy_local=not current.external_policy_local)
    elif choice == 6:
        ports[name] = dataclasses.replace(current, external_ips=rng.choice([(), ("172.18.0.200",), ("172.18.0.201",)]))
    elif choice == 7:
        lb = rng.choice([(), ("172.18.255.200",), ("172.18.255.201",)])
        ports[name] = dataclasses.replace(current, load_balancer_ips=lb, service_type="LoadBalancer" if lb else "ClusterIP",
                                          load_balancer_source_ranges=rng.choice([(), ("172.18.0.0/16",), ("10.0.0.0/8",)]))
    else:
        ports[name] = dataclasses.replace(current, endpoints=tuple(
            dataclasses.replace(e, ready=rng.random() < 0.5, serving=True, terminating=True) for e in current.endpoints))


def _valid(ports: dict[str, ServicePort]) -> list[ServicePort]:
    """What the API would hold: NodePorts unique (the allocator sees to it)."""
    seen, result = set(), []
    for name in sorted(ports):
        p = ports[name]
        if p.node_port in seen:
            p = dataclasses.replace(p, node_port=None, service_type="ClusterIP", load_balancer_ips=())
        seen.add(p.node_port)
        if not p.node_port and p.service_type != "ClusterIP":
            p = dataclasses.replace(p, service_type="ClusterIP", load_balancer_ips=(), external_policy_local=False)
        result.append(p)
    return result


@pytest.mark.parametrize("seed", range(6))
def test_any_sequence_of_partial_syncs_ends_where_a_full_sync_does(seed):
    rng = random.Random(seed)
    driver = Driver()
    ports = {f"svc-{i}": port(f"svc-{i}", f"10.96.0.{i + 1}") for i in range(6)}
    driver.sync(_valid(ports))
    for step in range(40):
        for _ in range(rng.randrange(1, 4)):
            _mutate(rng, ports)
        driver.clock.now += rng.choice([0.1, 0.4, STALE_CHAIN_DELAY])
        current = _valid(ports)
        result = driver.sync(current)
        assert not result.full, step
        assert state_without_stale(driver.fake) == full_state(current), f"seed {seed} step {step}"
        stale = driver.fake.empty_unreferenced_chains()
        assert all("/" in chain for chain in stale)
    driver.clock.now += STALE_CHAIN_DELAY
    driver.sync(current)
    assert driver.fake.dump() == full_state(current)
    assert len(driver.runner.transactions()) <= 42      # never more than one transaction per sync
