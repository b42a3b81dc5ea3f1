"""kube-proxy's userspace mode (testbed.backends.userspace): the portal rules as proxier.go writes
them, golden render, and the proxier's full and partial syncs against fakes of the proxy process
and iptables (tests/support/fake_userspace.py).

Regenerate the golden file with `UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_userspace.py`.
"""
import os
from pathlib import Path

import pytest

from testbed.backends.userspace import (CHAINS, JUMPS, NODEPORT_CONTAINER, NODEPORT_HOST, NODEPORT_NON_LOCAL,
                                        PORTALS_CONTAINER, PORTALS_FILTER, PORTALS_HOST, PortAllocator,
                                        UserspaceProxier, plan_port, render_userspace)
from testbed.proxy.backend import get_backend
from testbed.proxy.model import Endpoint
from testbed.proxy.tracker import diff_services
from tests.support.fake_userspace import FakeProxyProcess, FakeUserspaceRunner
from tests.unit.test_iptables import MYAPP, NODE1, myapp_ports, svc

GOLDEN = Path(__file__).parents[1] / "golden" / "userspace" / "myapp-node1.txt"


def test_golden_render_for_myapp_services():
    text = render_userspace(myapp_ports(), NODE1)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_cluster_ip_portals_redirect_containers_and_dnat_the_node():
    text = render_userspace([svc("web", "10.96.0.100")], NODE1)
    assert ('-A KUBE-PORTALS-CONTAINER -m comment --comment "default/web" -p tcp -m tcp --dport 80 '
            "-d 10.96.0.100/32 -j REDIRECT --to-ports 40000") in text
    assert ('-A KUBE-PORTALS-HOST -m comment --comment "default/web" -p tcp -m tcp --dport 80 '
            "-d 10.96.0.100/32 -j DNAT --to-destination 172.18.0.11:40000") in text
    assert "# TCP 0.0.0.0:40000 default/web/TCP -> 10.244.0.10:80 10.244.1.10:80 10.244.2.10:80" in text


def test_jumps_are_kube_proxys_iptables_init():
    text = render_userspace([], NODE1)
    assert ('-I PREROUTING -m comment --comment "handle ClusterIPs; NOTE: this must be before the NodePort rules" '
            "-j KUBE-PORTALS-CONTAINER") in text
    assert ('-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment "handle service NodePorts; NOTE: this must '
            'be the last rule in the chain" -j KUBE-NODEPORT-HOST') in text
    assert '-I INPUT -m comment --comment "Ensure that non-local NodePort traffic can flow" -j KUBE-NODEPORT-NON-LOCAL' in text


def test_nodeport_and_loadbalancer_and_external_ip_portals():
    port = svc("lb", "10.96.0.102", service_type="LoadBalancer", node_port=30102, load_balancer_ips=("172.18.255.200",),
               external_ips=("172.18.0.200",))
    text = render_userspace([port], NODE1)
    lines = text.splitlines()
    head = '-m comment --comment "default/lb" -p tcp -m tcp'
    assert f"-A {NODEPORT_CONTAINER} {head} --dport 30102 -d 172.18.0.11/32 -j REDIRECT --to-ports 40000" in lines
    assert (f"-A {NODEPORT_HOST} {head} --dport 30102 -d 172.18.0.11/32 -j DNAT --to-destination 172.18.0.11:40000"
            in lines)
    assert f"-A {NODEPORT_NON_LOCAL} {head} --dport 40000 -m state --state NEW -j ACCEPT" in lines
    assert f"-A {PORTALS_CONTAINER} {head} --dport 80 -d 172.18.255.200/32 -j REDIRECT --to-ports 40000" in lines
    # external IPs: not from a bridge, or locally addressed; the node's own traffic only when local
    assert (f"-A {PORTALS_CONTAINER} {head} --dport 80 -d 172.18.0.200/32 -m physdev ! --physdev-is-in "
            "-j REDIRECT --to-ports 40000") in lines
    assert (f"-A {PORTALS_HOST} {head} --dport 80 -d 172.18.0.200/32 -m addrtype --dst-type LOCAL "
            "-j DNAT --to-destination 172.18.0.11:40000") in lines
    assert "holds 30102" in text


def test_no_endpoints_rejects_and_local_policy_without_local_endpoints_drops():
    empty = plan_port(svc("e", "10.96.0.105", service_type="NodePort", node_port=30105, endpoints=()), NODE1)
    assert empty.listeners == () and empty.portals == ()
    assert [r.split(" -j ")[1] for r in empty.filter_rules] == ["REJECT", "REJECT"]
    elsewhere = [e for e in MYAPP if e.node_name != "node1"]
    local = plan_port(svc("l", "10.96.0.107", service_type="NodePort", node_port=30107, external_policy_local=True,
                          endpoints=elsewhere), NODE1)
    assert [p.kind for p in local.portals] == ["cluster"]           # ClusterIP still served
    assert local.filter_rules == (f'-A {PORTALS_FILTER} -m comment --comment "default/l has no local endpoints" '
                                  "-p tcp -m tcp -d 172.18.0.11/32 --dport 30107 -j DROP",)


def test_local_policies_get_their_own_listeners():
    plan = plan_port(svc("x", "10.96.0.106", service_type="NodePort", node_port=30106, external_policy_local=True), NODE1)
    internal, external = plan.listeners
    assert len(internal.endpoints) == 3 and external.endpoints == ("10.244.1.10:80",)
    assert external.transparent and external.claims == (30106,) and not internal.transparent
    inner = plan_port(svc("y", "10.96.0.108", internal_policy_local=True), NODE1)
    assert [lst.endpoints for lst in inner.listeners] == [("10.244.1.10:80",)]


def test_port_allocator_keeps_ports_and_reuses_freed_ones():
    alloc = PortAllocator("40000-40002")
    assert [alloc.allocate(i) for i in "abc"] == [40000, 40001, 40002]
    assert alloc.allocate("b") == 40001
    alloc.release("a")
    assert alloc.allocate("d") == 40000
    alloc.mark_bad("c")
    with pytest.raises(RuntimeError, match="no free port"):
        alloc.allocate("e")


def test_the_backend_is_registered():
    backend = get_backend("userspace")
    assert backend.render(myapp_ports(), NODE1, None).startswith("# kube-proxy userspace mode, node node1")
    assert backend.label({}) == "userspace (iptables nft)"


# -- the proxier against fakes ---------------------------------------------------------------

EP = (Endpoint("10.244.0.5", 8080, "node0"), Endpoint("10.244.2.5", 8080, "node2"))


def services():
    return [svc("alpha", "10.96.0.11", endpoints=EP),
            svc("beta", "10.96.0.12", endpoints=EP, service_type="NodePort", node_port=30012),
            svc("gamma", "10.96.0.13", endpoints=EP, protocol="UDP", port=53)]


_told: dict[int, dict] = {}


def sync(proxier, ports):
    by_service: dict = {}
    for p in ports:
        by_service[p.service_key] = by_service.get(p.service_key, ()) + (p,)
    previous = _told.get(id(proxier))
    _told[id(proxier)] = by_service
    return proxier.sync(ports, None if previous is None else diff_services(previous, by_service))


@pytest.fixture
def runner():
    return FakeUserspaceRunner()


@pytest.fixture
def process():
    return FakeProxyProcess()


@pytest.fixture
def proxier(runner, process, tmp_path):
    return UserspaceProxier(runner, NODE1, tmp_path, process=process)


def state_of_full_sync(ports, tmp_path):
    runner, process = FakeUserspaceRunner(), FakeProxyProcess()
    UserspaceProxier(runner, NODE1, tmp_path, process=process).sync(ports)
    return runner.tables.save(), process.listeners


def test_first_sync_starts_the_proxy_and_writes_every_portal(proxier, runner, process):
    result = sync(proxier, services())
    assert result.full and process.starts == 1
    assert set(process.listeners) == {"default/alpha/TCP", "default/beta/TCP", "default/gamma/UDP"}
    assert process.listeners["default/gamma/UDP"]["bind"] == NODE1.ip       # UDP replies leave from the node IP
    assert process.listeners["default/beta/TCP"]["claim"] == [30012]
    assert runner.sysctls == {"net.ipv4.ip_local_reserved_ports": "40000-65535"}
    assert len(runner.rules("nat", PORTALS_CONTAINER)) == 3 and len(runner.rules("nat", NODEPORT_CONTAINER)) == 1
    jumps = [r for r in runner.rules("nat", "PREROUTING")]
    assert any(PORTALS_CONTAINER in r for r in jumps) and jumps[-1].endswith(NODEPORT_CONTAINER)
    assert runner.ip_rules and runner.routes


def test_an_endpoint_change_only_updates_the_balancer(proxier, runner, process, tmp_path):
    sync(proxier, services())
    runner.calls.clear()
    changed = services()
    changed[0] = svc("alpha", "10.96.0.11", endpoints=EP[:1])
    result = sync(proxier, changed)
    assert not result.full and result.changed_services == ("default/alpha",)
    assert process.messages[-1] == {"op": "sync", "full": False, "remove": [],
                                    "listeners": [process.listeners["default/alpha/TCP"]]}
    assert process.listeners["default/alpha/TCP"]["endpoints"] == ["10.244.0.5:8080"]
    assert runner.calls == []          # the portal rules did not change: no iptables-restore
    assert (runner.tables.save(), process.listeners) == state_of_full_sync(changed, tmp_path)


def test_adding_and_removing_services_writes_only_their_rules(proxier, runner, process, tmp_path):
    sync(proxier, services())
    runner.calls.clear()
    ports = services()[1:] + [svc("delta", "10.96.0.14", endpoints=EP)]
    sync(proxier, ports)
    text = runner.calls[-1][1]
    assert all(line.startswith(("*", "COMMIT", "-D ", "-A ")) for line in text.splitlines())
    assert sum(line.startswith("-D ") for line in text.splitlines()) == 2     # alpha's two portals
    assert sum(line.startswith("-A ") for line in text.splitlines()) == 2     # delta's two
    assert process.listeners["default/delta/TCP"]["port"] == 40000          # alpha's freed port reused
    full_tables, full_listeners = state_of_full_sync(ports, tmp_path)
    assert normalized(runner.tables.save(), process.listeners) == normalized(full_tables, full_listeners)
    assert {k: v["endpoints"] for k, v in process.listeners.items()} == {k: v["endpoints"] for k, v in full_listeners.items()}


def normalized(tables: str, listeners: dict) -> list[str]:
    """The rules with each listener port replaced by its listener's id (ports depend on history)."""
    names = {str(v["port"]): k for k, v in listeners.items()}
    out = []
    for line in tables.splitlines():
        for port, name in names.items():
            line = line.replace(f":{port}", f":<{name}>").replace(f"--to-ports {port}", f"--to-ports <{name}>")
            line = line.replace(f"--dport {port} -m state", f"--dport <{name}> -m state")
        out.append(line)
    return sorted(out)


def test_a_dead_proxy_is_restarted_with_a_full_sync(proxier, process):
    sync(proxier, services())
    process.stop()
    result = sync(proxier, services())
    assert result.full and process.starts == 2 and len(process.listeners) == 3


def test_a_port_that_will_not_bind_moves_on_next_sync(proxier, process):
    process.busy_ports = {40001}
    with pytest.raises(RuntimeError, match="Address already in use"):
        sync(proxier, services())
    result = sync(proxier, services())
    assert result.full and 40001 not in {s["port"] for s in process.listeners.values()}


def test_cleanup_removes_every_chain_and_the_node_setup(proxier, runner, process):
    empty = FakeUserspaceRunner().tables.save()
    sync(proxier, services())
    proxier.cleanup()
    assert runner.tables.save() == empty and not process.alive
    assert not runner.ip_rules and not runner.routes
    assert runner.sysctls["net.ipv4.ip_local_reserved_ports"] == ""
    assert {c for _, c in CHAINS} >= {j.target for j in JUMPS}
