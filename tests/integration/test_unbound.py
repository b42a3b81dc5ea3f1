"""A real unbound in a throwaway network namespace, queried with dnspython from inside it."""
import os
import subprocess
import time

import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from testbed.dns import UnboundServer, cluster_records
from testbed.dns.probe import dns_query
from testbed.net.runner import NamespaceRunner

ZONE = "svc.cluster.local."


def query(netns_path, name, rdtype, tcp=False):
    """(response, seconds) for one query to 127.0.0.1:53 from inside the namespace."""
    return dns_query(NamespaceRunner(netns_path=netns_path), name, rdtype, "127.0.0.1", tcp=tcp)


def answers(response, rdtype):
    return sorted(rr.to_text() for rrset in response.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype)
                  for rr in rrset)


def service(name, cluster_ip, ports=(), namespace="default", **spec):
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": cluster_ip, "ports": list(ports), **spec}}


SERVICES = [
    service("myapp-svc", "10.96.0.100", [{"port": 80}]),
    service("kube-dns", "10.96.0.10", [{"name": "dns", "port": 53, "protocol": "UDP"}], namespace="kube-system"),
    service("myapp-headless-svc", "None", [{"name": "httpport", "port": 80}]),
    {"metadata": {"name": "my-service", "namespace": "prod"},
     "spec": {"type": "ExternalName", "externalName": "my.database.example.com"}},
]
SLICES = [{"addressType": "IPv4",
           "metadata": {"name": "myapp-headless-svc-x", "namespace": "default",
                        "labels": {"kubernetes.io/service-name": "myapp-headless-svc"}},
           "ports": [{"name": "httpport", "port": 80, "protocol": "TCP"}],
           "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}
                         for ip in ("10.244.0.10", "10.244.1.10", "10.244.2.10")]}]
PODS = [{"metadata": {"name": "myapp-1", "namespace": "default"}, "spec": {},
         "status": {"phase": "Running", "podIP": "10.244.0.10"}}]


@pytest.fixture
def netns(require_root):
    name = f"tbdns-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.fixture
def server(netns, tmp_path):
    unbound = UnboundServer(tmp_path / "dns", NamespaceRunner(netns_path=netns), listen="127.0.0.1", port=53)
    try:
        unbound.start(cluster_records(SERVICES, SLICES, PODS))
        yield unbound
    finally:
        unbound.stop()


def test_rendered_config_passes_unbound_checkconf(server):
    result = subprocess.run(["unbound-checkconf", str(server.config_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert server.log_path.exists()


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_cluster_ip_a_and_srv(server, netns, tcp):
    response, _ = query(netns, f"myapp-svc.default.{ZONE}", "A", tcp=tcp)
    assert response.rcode() == dns.rcode.NOERROR and answers(response, "A") == ["10.96.0.100"]
    response, _ = query(netns, f"_dns._udp.kube-dns.kube-system.{ZONE}", "SRV", tcp=tcp)
    assert answers(response, "SRV") == [f"0 100 53 kube-dns.kube-system.{ZONE}"]


def test_headless_answers_every_endpoint_as_one_rrset(server, netns):
    response, _ = query(netns, f"myapp-headless-svc.default.{ZONE}", "A")
    assert answers(response, "A") == ["10.244.0.10", "10.244.1.10", "10.244.2.10"]
    response, _ = query(netns, f"_httpport._tcp.myapp-headless-svc.default.{ZONE}", "SRV")
    assert len(answers(response, "SRV")) == 3
    response, _ = query(netns, f"10-244-1-10.myapp-headless-svc.default.{ZONE}", "A")
    assert answers(response, "A") == ["10.244.1.10"]


def test_ptr_txt_and_pod_records(server, netns):
    response, _ = query(netns, dns.reversename.from_address("10.96.0.100"), "PTR")
    assert answers(response, "PTR") == [f"myapp-svc.default.{ZONE}"]
    response, _ = query(netns, dns.reversename.from_address("10.244.2.10"), "PTR")
    assert answers(response, "PTR") == [f"10-244-2-10.myapp-headless-svc.default.{ZONE}"]
    response, _ = query(netns, "dns-version.cluster.local.", "TXT")
    assert answers(response, "TXT") == ['"1.1.0"']
    response, _ = query(netns, "10-244-0-10.default.pod.cluster.local.", "A")
    assert answers(response, "A") == ["10.244.0.10"]


def test_external_name_cname_is_answered_without_chasing(server, netns):
    for rdtype in ("CNAME", "A"):
        response, seconds = query(netns, f"my-service.prod.{ZONE}", rdtype)
        assert response.rcode() == dns.rcode.NOERROR
        assert answers(response, "CNAME") == ["my.database.example.com."]
        assert answers(response, "A") == [] and seconds < 0.1


def test_unknown_cluster_names_are_nxdomain_with_soa(server, netns):
    response, _ = query(netns, f"nope.default.{ZONE}", "A")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]
    response, _ = query(netns, dns.reversename.from_address("10.244.9.9"), "PTR")
    assert response.rcode() == dns.rcode.NXDOMAIN
    # A name with records only below it exists: NOERROR without answers.
    response, _ = query(netns, f"default.{ZONE}", "A")
    assert response.rcode() == dns.rcode.NOERROR and not response.answer
    response, _ = query(netns, f"myapp-svc.default.{ZONE}", "AAAA")
    assert response.rcode() == dns.rcode.NOERROR and not response.answer


def test_other_names_are_refused_at_once(server, netns):
    for name, rdtype in [("example.com.", "A"), ("8.8.8.8.in-addr.arpa.", "PTR"), (".", "NS")]:
        response, seconds = query(netns, name, rdtype)
        assert response.rcode() == dns.rcode.REFUSED, name
        assert seconds < 0.1, (name, seconds)


def test_a_changed_service_answers_within_a_second(server, netns):
    services = [s for s in SERVICES if s["metadata"]["name"] != "myapp-svc"]
    services.append(service("myapp-svc", "10.96.0.150", [{"port": 80}]))
    services = [s for s in services if s["metadata"]["name"] != "kube-dns"]
    started = time.perf_counter()
    sync_seconds = server.sync(cluster_records(services, SLICES, PODS))
    while True:
        response, _ = query(netns, f"myapp-svc.default.{ZONE}", "A")
        if answers(response, "A") == ["10.96.0.150"]:
            break
        assert time.perf_counter() - started < 1.0, answers(response, "A")
        time.sleep(0.01)
    assert time.perf_counter() - started < 1.0 and sync_seconds < 1.0
    response, _ = query(netns, dns.reversename.from_address("10.96.0.100"), "PTR")
    assert response.rcode() == dns.rcode.NXDOMAIN
    response, _ = query(netns, f"kube-dns.kube-system.{ZONE}", "A")   # deleted Service
    assert response.rcode() == dns.rcode.NXDOMAIN
    response, _ = query(netns, f"myapp-headless-svc.default.{ZONE}", "A")  # untouched
    assert len(answers(response, "A")) == 3


def test_stop_ends_the_process(netns, tmp_path):
    unbound = UnboundServer(tmp_path / "dns", NamespaceRunner(netns_path=netns), listen="127.0.0.1")
    unbound.start(cluster_records([], [], []))
    pid = unbound.pid
    os.kill(pid, 0)  # running
    unbound.stop()
    assert unbound.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    unbound.stop()


def test_probe_queries_from_inside_the_given_namespace(server):
    other = f"tbdns-{os.getpid()}-b"
    subprocess.run(["ip", "netns", "add", other], check=True)
    try:
        subprocess.run(["ip", "-n", other, "link", "set", "lo", "up"], check=True)
        with pytest.raises(ConnectionRefusedError):  # no unbound in that namespace
            query(f"/run/netns/{other}", f"myapp-svc.default.{ZONE}", "A", tcp=True)
    finally:
        subprocess.run(["ip", "netns", "delete", other], check=False)
