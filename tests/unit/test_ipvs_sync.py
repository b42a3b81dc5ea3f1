"""IpvsProxier against the fake node: full and partial syncs, graceful deletion, failures, cleanup.

The check that matters: after any sequence of (partial) syncs the node holds exactly what one
full sync of the latest Services into an empty node produces, while a partial sync writes only
the changed Services' lines.
"""
import dataclasses

import pytest

from testbed.net.runner import CommandError
from testbed.backends.ipvs import DUMMY_DEVICE, IPSETS, SYSCTLS, IpvsProxier
from testbed.proxy.model import Endpoint
from testbed.proxy.tracker import diff_services
from tests.support.fake_ipvs import FakeIpvsNode, FakeIpvsRunner
from tests.unit.test_iptables import NODE1, svc

EP = (Endpoint("10.244.0.5", 8080, "node0"), Endpoint("10.244.2.5", 8080, "node2"))


def services():
    return [svc("alpha", "10.96.0.11", endpoints=EP),
            svc("beta", "10.96.0.12", endpoints=EP, service_type="NodePort", node_port=30012),
            svc("gamma", "10.96.0.13", endpoints=EP, protocol="UDP", port=53)]


def fresh_node():
    return FakeIpvsNode(NODE1.ip, {"10.244.1.1"})


def snapshot(node):
    """The node's state; IPVS lines sorted (the kernel's list order depends on history)."""
    return (sorted(node.ipvs.save().splitlines()), node.ipsets.save(), sorted(node.dummy or ()), node.tables.save())


def state_of_full_sync(ports):
    node = fresh_node()
    IpvsProxier(FakeIpvsRunner(node), NODE1).sync(ports)
    return snapshot(node)


_told: dict[int, dict] = {}


def sync(proxier, ports):
    """What the change tracker gives a real data plane: the Services changed since the last sync."""
    by_service: dict = {}
    for p in ports:
        by_service[p.service_key] = by_service.get(p.service_key, ()) + (p,)
    previous = _told.get(id(proxier))
    _told[id(proxier)] = by_service
    return proxier.sync(ports, None if previous is None else diff_services(previous, by_service))


@pytest.fixture
def node():
    return fresh_node()


@pytest.fixture
def runner(node):
    return FakeIpvsRunner(node)


@pytest.fixture
def proxier(runner):
    return IpvsProxier(runner, NODE1)


def test_first_sync_is_full_and_prepares_the_node(proxier, runner, node):
    result = sync(proxier, services())
    assert result.full and result.changed_services == ("default/alpha", "default/beta", "default/gamma")
    assert node.sysctls == dict(SYSCTLS)
    assert node.dummy == {"10.96.0.11", "10.96.0.12", "10.96.0.13"}
    assert set(node.ipsets.types) == {s.name for s in IPSETS}
    assert result.rules == 4 + 8   # virtual servers (3 ClusterIPs + 1 NodePort) and their real servers
    programs = runner.programs()
    assert programs.count("ipvsadm -R") == 1 and programs.count("iptables-restore -w") == 1
    assert programs.count("ipset restore") == 1 and programs.count("ip -force") == 1
    assert "-A -t 172.18.0.11:30012 -s rr" in node.ipvs.save()


def test_partial_sync_writes_only_the_changed_service(proxier, runner, node):
    sync(proxier, services())
    runner.calls.clear()
    changed = services()
    changed[0] = svc("alpha", "10.96.0.11", endpoints=(*EP, Endpoint("10.244.1.5", 8080, "node1")))
    result = sync(proxier, changed)
    assert not result.full and result.changed_services == ("default/alpha",)
    restores = [i for a, i in runner.calls if a == ["ipvsadm", "-R"]]
    assert restores == ["-a -t 10.96.0.11:80 -r 10.244.1.5:8080 -m -w 1\n"]
    programs = runner.programs()
    assert "ipvsadm -S" not in programs and "iptables-save" not in programs   # no reads
    assert "ip -force" not in programs                                         # no address change
    assert snapshot(node) == state_of_full_sync(changed)


def test_a_sync_with_nothing_changed_runs_nothing(proxier, runner):
    sync(proxier, services())
    runner.calls.clear()
    result = sync(proxier, services())
    assert runner.calls == [] and result.rules_written == 0


def test_adding_and_removing_services_converges_to_a_full_sync(proxier, node):
    sync(proxier, services())
    steps = [services()[:2], services()[1:] + [svc("delta", "10.96.0.14", endpoints=EP, affinity_timeout=30)],
             [svc("beta", "10.96.0.12", endpoints=EP[:1], lb_algorithm="wlc")], []]
    for ports in steps:
        sync(proxier, ports)
        assert snapshot(node) == state_of_full_sync(ports)
    assert node.dummy == set() and node.ipvs.services == {}


def test_a_changed_scheduler_edits_the_virtual_server(proxier, runner, node):
    sync(proxier, services())
    runner.calls.clear()
    ports = services()
    ports[0] = dataclasses.replace(ports[0], lb_algorithm="sh", affinity_timeout=100)
    sync(proxier, ports)
    assert [i for a, i in runner.calls if a == ["ipvsadm", "-R"]] == ["-E -t 10.96.0.11:80 -s sh -p 100\n"]


def test_a_real_server_with_connections_is_deleted_gracefully(proxier, runner, node):
    sync(proxier, services())
    vs = node.ipvs.services[("tcp", "10.96.0.11", 80)]
    busy = vs.dest("10.244.2.5:8080")
    busy.active = 2
    ports = services()
    ports[0] = svc("alpha", "10.96.0.11", endpoints=EP[:1])
    result = sync(proxier, ports)
    assert result.details["terminating"] == 1
    assert busy.weight == 0 and vs.dest("10.244.2.5:8080") is busy    # quiescent: no new connections
    assert {node.trace("10.244.1.9", "10.96.0.11", 80).real_server for _ in range(4)} == {"10.244.0.5:8080"}
    assert proxier.reap_terminating() == 0                             # still busy
    node.ipvs.close(busy)
    node.ipvs.close(busy)
    assert proxier.reap_terminating() == 0                             # InActConn counts for TCP
    node.ipvs.expire()
    assert proxier.reap_terminating() == 1 and vs.dest("10.244.2.5:8080") is None
    assert snapshot(node) == state_of_full_sync(ports)


def test_a_terminating_real_server_that_comes_back_gets_its_weight_again(proxier, node):
    sync(proxier, services())
    vs = node.ipvs.services[("tcp", "10.96.0.11", 80)]
    vs.dest("10.244.2.5:8080").active = 1
    ports = services()
    ports[0] = svc("alpha", "10.96.0.11", endpoints=EP[:1])
    sync(proxier, ports)
    assert vs.dest("10.244.2.5:8080").weight == 0
    sync(proxier, services())
    assert vs.dest("10.244.2.5:8080").weight == 1 and proxier.reap_terminating() == 0


def test_an_idle_real_server_is_deleted_at_once(proxier, node):
    sync(proxier, services())
    ports = services()
    ports[0] = svc("alpha", "10.96.0.11", endpoints=EP[:1])
    result = sync(proxier, ports)
    assert result.details["terminating"] == 0
    assert node.ipvs.services[("tcp", "10.96.0.11", 80)].dest("10.244.2.5:8080") is None


def test_after_a_failure_the_next_sync_is_full_and_repairs(proxier, runner, node):
    sync(proxier, services())
    node.ipvs.services.pop(("tcp", "10.96.0.12", 80))       # someone else broke the table
    runner.fail_next = "ipvsadm"                            # and the next ipvsadm call fails
    ports = services()
    ports[2] = svc("gamma", "10.96.0.13", endpoints=EP[:1], protocol="UDP", port=53)
    with pytest.raises(CommandError, match="injected failure"):
        sync(proxier, ports)
    result = sync(proxier, ports)
    assert result.full
    assert snapshot(node) == state_of_full_sync(ports)


def test_ipvsadm_errors_on_stderr_fail_the_sync(proxier, node):
    sync(proxier, services())
    node.ipvs.services[("tcp", "10.96.0.11", 80)].dests.clear()   # drift the proxier does not know of
    ports = services()
    ports[0] = svc("alpha", "10.96.0.11", endpoints=EP[:1])        # it will try to delete a missing server
    with pytest.raises(RuntimeError, match="ipvsadm-restore: No such destination"):
        sync(proxier, ports)
    assert sync(proxier, ports).full


def test_full_sync_keeps_what_is_right_and_removes_leftovers(node):
    first = IpvsProxier(FakeIpvsRunner(node), NODE1)
    first.sync(services() + [svc("old", "10.96.0.99", endpoints=EP)])
    restarted = IpvsProxier(FakeIpvsRunner(node), NODE1)      # kube-proxy restarts
    runner = restarted.runner
    restarted.sync(services())
    text = next(i for a, i in runner.calls if a == ["ipvsadm", "-R"])
    assert text == "-D -t 10.96.0.99:80\n"
    assert snapshot(node) == state_of_full_sync(services())


def test_cleanup_leaves_nothing_of_the_mode(proxier, node):
    empty = snapshot(fresh_node())
    sync(proxier, services())
    proxier.cleanup()
    assert node.ipvs.services == {} and node.dummy is None and node.ipsets.types == {}
    assert snapshot(node) == empty
    assert proxier.sync(services()).full    # a later sync starts over


def test_loadbalancer_and_external_ips_are_bound_but_not_the_node_ip(proxier, node):
    ports = [svc("lb", "10.96.0.20", endpoints=EP, service_type="LoadBalancer", node_port=30020,
                 load_balancer_ips=("172.18.255.201",), external_ips=(NODE1.ip, "172.18.0.201"))]
    proxier.sync(ports)
    assert node.dummy == {"10.96.0.20", "172.18.255.201", "172.18.0.201"}
    assert DUMMY_DEVICE not in node.addresses
