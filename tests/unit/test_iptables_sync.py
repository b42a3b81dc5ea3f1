"""IptablesProxier against the fake iptables: full and partial syncs, stale chains, cleanup.

The check that matters: after any sequence of (partial) syncs, the tables hold exactly what one
full sync of the latest Services would have produced, while the restore input of a partial sync
carries only the chains of the Services that changed.
"""
import pytest

from testbed.backends.iptables import (
    JUMP_RULES, LARGE_CLUSTER_ENDPOINTS_THRESHOLD, IptablesProxier, is_service_chain_name, render_iptables,
    service_chain_names)
from testbed.proxy.model import Endpoint, NodeInfo, ServicePort
from testbed.proxy.tracker import diff_services
from tests.support.fake_iptables import FakeIptables, FakeIptablesRunner

NODE = NodeInfo(name="node1", ip="172.18.0.11", pod_cidr="10.244.1.0/24", cluster_cidr="10.244.0.0/16")


def port(name, ip, endpoints=("10.244.0.5", "10.244.2.5"), **fields):
    return ServicePort(namespace="default", name=name, port_name="http", protocol="TCP", port=80,
                       cluster_ip=ip, endpoints=tuple(Endpoint(e, 8080, "node0") for e in endpoints), **fields)


def services():
    return [port("alpha", "10.96.0.11"),
            port("beta", "10.96.0.12", service_type="NodePort", node_port=30012),
            port("gamma", "10.96.0.13")]


def state_of_full_render(ports):
    fake = FakeIptables()
    fake.restore(render_iptables(ports, NODE), noflush=True)
    return fake.save()


_told: dict[int, dict] = {}   # proxier id -> the per-Service ports it was last given


def sync(proxier, ports):
    """What the change tracker does for a real data plane: tell the proxier which Services changed
    since its previous sync (proxy/tracker.py diff_services)."""
    by_service: dict = {}
    for p in ports:
        by_service[p.service_key] = by_service.get(p.service_key, ()) + (p,)
    previous = _told.get(id(proxier))
    _told[id(proxier)] = by_service
    return proxier.sync(ports, None if previous is None else diff_services(previous, by_service))


def declared_chains(text):
    return {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")}


@pytest.fixture
def runner():
    return FakeIptablesRunner()


@pytest.fixture
def proxier(runner):
    return IptablesProxier(runner, NODE)


def test_first_sync_is_full_and_builds_the_whole_node(proxier, runner):
    result = sync(proxier, services())
    assert result.full and result.changed_services == ("default/alpha", "default/beta", "default/gamma")
    assert runner.fake.save() == state_of_full_render(services())
    assert result.rules_written == result.rules
    assert [args for args, _ in runner.calls] == [
        ["iptables-save"], ["iptables-restore", "-w", "5", "--noflush", "--counters"]]


def test_partial_sync_rewrites_only_the_changed_service(proxier, runner):
    sync(proxier, services())
    changed = services()
    changed[1] = port("beta", "10.96.0.12", endpoints=("10.244.0.5", "10.244.2.5", "10.244.1.5"),
                      service_type="NodePort", node_port=30012)
    result = sync(proxier, changed)
    assert not result.full and result.changed_services == ("default/beta",)
    text = runner.restore_inputs()[-1]
    service_chains = {c for c in declared_chains(text) if is_service_chain_name(c)}
    beta, alpha = service_chain_names(changed[1]), service_chain_names(changed[0])
    assert beta.cluster in service_chains and beta.external in service_chains
    assert alpha.cluster not in service_chains
    assert f"-A {alpha.cluster} " not in text                     # its rules are left alone
    assert '"default/alpha:http cluster IP"' in text                    # but KUBE-SERVICES is rewritten whole
    assert result.rules_written < result.rules
    assert runner.fake.save() == state_of_full_render(changed)
    assert runner.calls[-1][0][0] == "iptables-restore"            # no iptables-save on partial syncs


def test_unchanged_sync_writes_no_service_chains(proxier, runner):
    sync(proxier, services())
    result = sync(proxier, services())
    assert result.changed_services == () and not result.full
    assert not any(is_service_chain_name(c) for c in declared_chains(runner.restore_inputs()[-1]))
    assert runner.fake.save() == state_of_full_render(services())


def test_removed_endpoint_and_removed_service_chains_are_deleted(proxier, runner):
    sync(proxier, services())
    fewer = [port("alpha", "10.96.0.11", endpoints=("10.244.0.5",)),
             port("beta", "10.96.0.12", service_type="NodePort", node_port=30012)]
    sync(proxier, fewer)
    text = runner.restore_inputs()[-1]
    gamma = service_chain_names(services()[2])
    assert f"-X {gamma.cluster}" in text
    assert runner.fake.save() == state_of_full_render(fewer)
    assert gamma.cluster not in runner.fake.chains("nat")


def test_new_proxier_over_existing_rules_adds_no_duplicate_jumps_and_drops_leftovers(runner):
    sync(IptablesProxier(runner, NODE), services())
    again = IptablesProxier(runner, NODE)     # e.g. the testbed restarted
    result = sync(again, services()[:1])
    assert result.full
    text = runner.restore_inputs()[-1]
    assert not any(line.startswith("-I ") for line in text.splitlines())
    assert runner.fake.save() == state_of_full_render(services()[:1])
    builtin_chains = {(j.table, j.source) for j in JUMP_RULES}
    assert sum(len(runner.fake.rules(table, chain)) for table, chain in builtin_chains) == len(JUMP_RULES)


def test_cleanup_leaves_empty_tables(proxier, runner):
    sync(proxier, services())
    proxier.cleanup()
    assert runner.fake.save() == FakeIptables().save()
    assert sync(proxier, services()).full  # after cleanup the next sync starts over


def test_failed_restore_makes_the_next_sync_full(proxier, runner, monkeypatch):
    sync(proxier, services())
    changed = services()
    changed[0] = port("alpha", "10.96.0.11", endpoints=("10.244.0.5",))
    real_restore = runner.fake.restore

    def fail_once(text, noflush):
        monkeypatch.setattr(runner.fake, "restore", real_restore)
        raise RuntimeError("iptables-restore: line 3 failed")

    monkeypatch.setattr(runner.fake, "restore", fail_once)
    with pytest.raises(RuntimeError):
        sync(proxier, changed)
    result = sync(proxier, changed)
    assert result.full and runner.calls[-2][0] == ["iptables-save"]
    assert runner.fake.save() == state_of_full_render(changed)


def test_entering_large_cluster_mode_forces_a_full_sync(proxier, runner):
    sync(proxier, services())
    many = [f"10.244.{i // 250}.{i % 250 + 2}" for i in range(LARGE_CLUSTER_ENDPOINTS_THRESHOLD + 1)]
    grown = services() + [port("delta", "10.96.0.14", endpoints=many)]
    result = sync(proxier, grown)
    assert result.full
    assert runner.fake.save() == state_of_full_render(grown)


def test_backend_commands():
    legacy = IptablesProxier(FakeIptablesRunner(), NODE, "iptables-legacy-restore")
    assert legacy.save_command == "iptables-legacy-save"
    with pytest.raises(ValueError):
        IptablesProxier(FakeIptablesRunner(), NODE, "iptables")


def test_memoised_rendering_equals_fresh_rendering():
    """build_ruleset(memo=...) reuses rules of unchanged ports; the text must not differ."""
    import dataclasses
    from testbed.backends.iptables import build_ruleset
    from testbed.proxy.model import Endpoint, NodeInfo, ServicePort
    node = NodeInfo("node1", "172.18.0.10", "10.244.0.0/24", "10.244.0.0/16")
    ports = [ServicePort("default", f"s{i}", "", "TCP", 80, f"10.96.1.{i + 1}",
                         endpoints=(Endpoint(f"10.244.{i % 3}.{i + 2}", 8080, f"node{i % 3 + 1}"),))
             for i in range(20)]
    memo: dict = {}
    assert build_ruleset(ports, node, memo=memo).restore_text() == build_ruleset(ports, node).restore_text()
    ports[3] = dataclasses.replace(ports[3], endpoints=())
    del ports[7]
    assert build_ruleset(ports, node, memo=memo).restore_text() == build_ruleset(ports, node).restore_text()
    assert len(memo) == 19


def test_empty_tables_are_those_with_nothing_but_accepting_builtin_chains():
    from testbed.backends.iptables import empty_tables
    save = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
            "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\nCOMMIT\n"
            "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j MARK --set-mark 1\nCOMMIT\n"
            "*raw\n:OUTPUT DROP [0:0]\nCOMMIT\n")
    assert empty_tables(save) == ["filter"]
