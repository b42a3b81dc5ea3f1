import pytest

from testbed.errors import TestbedError
from testbed.experiments import list_experiments, parse_options
from testbed.kubelet.containers import workload_for
from testbed.kubelet.podfiles import container_env, hosts_file, resolv_conf, service_env
from testbed.topology import load_topology, parse_topology


def svc(name, ns, ip, ports, type_="ClusterIP"):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"type": type_, "clusterIP": ip, "ports": ports}}


def test_service_env_as_the_kubelet_writes_it():
    services = [
        svc("redis-master", "default", "10.0.0.11", [{"port": 6379, "protocol": "TCP"}]),
        svc("web", "default", "10.0.0.12", [{"name": "http", "port": 80, "protocol": "TCP"},
                                            {"name": "dns", "port": 53, "protocol": "UDP"}]),
        svc("headless", "default", "None", [{"port": 80}]),
        svc("other-ns", "prod", "10.0.0.13", [{"port": 80}]),
        svc("kubernetes", "default", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}]),
    ]
    env = service_env(services, "default")
    assert env["REDIS_MASTER_SERVICE_HOST"] == "10.0.0.11"
    assert env["REDIS_MASTER_SERVICE_PORT"] == "6379"
    assert env["REDIS_MASTER_PORT"] == "tcp://10.0.0.11:6379"
    assert env["REDIS_MASTER_PORT_6379_TCP"] == "tcp://10.0.0.11:6379"
    assert env["REDIS_MASTER_PORT_6379_TCP_PROTO"] == "tcp"
    assert env["REDIS_MASTER_PORT_6379_TCP_PORT"] == "6379"
    assert env["REDIS_MASTER_PORT_6379_TCP_ADDR"] == "10.0.0.11"
    assert env["WEB_SERVICE_PORT_HTTP"] == "80" and env["WEB_PORT_53_UDP_PROTO"] == "udp"
    assert not any(k.startswith("HEADLESS_") or k.startswith("OTHER_NS_") for k in env)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    # in another namespace only that namespace's Services, plus the master service
    prod = service_env(services, "prod")
    assert "OTHER_NS_SERVICE_HOST" in prod and "WEB_SERVICE_HOST" not in prod and "KUBERNETES_SERVICE_HOST" in prod
    # enableServiceLinks: false keeps only the master service
    assert set(service_env(services, "default", enable_service_links=False)) == \
        {k for k in env if k.startswith("KUBERNETES_")}


def pod(**spec):
    return {"metadata": {"name": "web-1", "namespace": "shop", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec},
            "status": {"podIP": "10.244.1.5", "hostIP": "172.18.0.11"}}


def test_resolv_conf_for_cluster_first_and_dns_config():
    text = resolv_conf(pod(), "10.96.0.10")
    assert text == ("search shop.svc.cluster.local svc.cluster.local cluster.local\n"
                    "nameserver 10.96.0.10\noptions ndots:5\n")
    custom = resolv_conf(pod(dnsConfig={"searches": ["corp.example"], "options": [{"name": "ndots", "value": "2"}]}),
                         "10.96.0.10")
    assert "corp.example" in custom and "options ndots:2" in custom
    assert "nameserver" not in resolv_conf(pod(dnsPolicy="Default"), "10.96.0.10")


def test_hosts_file_has_the_pod_fqdn_with_a_subdomain():
    text = hosts_file(pod(hostname="db-0", subdomain="db"))
    assert "10.244.1.5\tdb-0.db.shop.svc.cluster.local\tdb-0" in text
    assert "10.244.1.5\tweb-1" in hosts_file(pod())


def test_container_env_downward_api_overrides_services():
    env = container_env(pod(nodeName="node2"), {"env": [
        {"name": "A", "value": "1"}, {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "X_SERVICE_HOST", "value": "mine"}]}, {"X_SERVICE_HOST": "10.0.0.1"})
    assert env == {"X_SERVICE_HOST": "mine", "A": "1", "NODE": "node2", "HOSTNAME": "web-1", "HOME": "/root",
                   "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


@pytest.mark.parametrize("container, kind, ports", [
    ({"name": "c", "image": "nginx", "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]},
     "echo", (80,)),
    ({"name": "c", "image": "ikubernetes/myapp:v1"}, "echo", (80,)),
    ({"name": "c", "image": "networkstatic/iperf3", "ports": [{"containerPort": 5201}]}, "iperf", (5201,)),
    ({"name": "c", "image": "busybox"}, "sleep", ()),
    ({"name": "c", "image": "registry.k8s.io/coredns/coredns:v1.11.1"}, "dns", ()),
    ({"name": "c", "image": "busybox", "command": ["sh", "-c"], "args": ["echo hi"]}, "command", ()),
])
def test_images_map_to_workloads(container, kind, ports):
    workload = workload_for(pod(), {"protocol": "TCP", **container})
    assert workload.kind == kind and workload.tcp_ports == ports
    if kind == "command":
        assert workload.argv == ("sh", "-c", "echo hi")


def test_shipped_topologies_load_and_bad_ones_name_the_problem():
    assert load_topology("default").nodes == ("node1", "node2", "node3")
    assert load_topology("leaf-spine").uplink_of("node3") == "leaf2"
    assert len(load_topology("leaf-spine").switch_links()) == 4
    with pytest.raises(TestbedError, match="unknown topology 'nope'"):
        load_topology("nope")
    with pytest.raises(TestbedError, match="node a: must have exactly one link"):
        parse_topology({"nodes": ["a"], "switches": ["s"], "links": [], "external": "s"})
    with pytest.raises(TestbedError, match="external"):
        parse_topology({"nodes": ["a"], "switches": ["s"], "links": [["a", "s"]], "external": "a"})


def test_experiment_options_override_the_grid():
    class Toy:
        NAME, GRID, QUICK, REPEATS = "toy", {"mode": ["iptables"], "services": [1000]}, {"services": [1]}, 1
    options = parse_options(["--modes", "iptables,sdn", "--services", "1,10", "--repeat", "2"], Toy)
    assert options.grid == {"mode": ["iptables", "sdn"], "services": [1, 10]} and options.repeat == 2
    assert parse_options(["--quick"], Toy).grid["services"] == [1]
    with pytest.raises(TestbedError, match="unknown option --bogus"):
        parse_options(["--bogus", "1"], Toy)
    with pytest.raises(TestbedError, match="not a list of int"):
        parse_options(["--services", "many"], Toy)
    assert {name for name, _ in list_experiments()} >= {"throughput", "sync-scale", "lb-fairness", "proxy-scale"}


def test_udp_ports_bound_reads_the_namespace_socket_table(tmp_path, monkeypatch):
    import builtins
    from testbed.kubelet.probes import udp_ports_bound
    table = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
             "  1: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2\n"
             "  2: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2\n")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: __import__("io").StringIO(table)
                        if str(path) == "/proc/4242/net/udp" else real_open(path, *a, **k))
    assert udp_ports_bound(4242) == {5353, 53}
    assert udp_ports_bound(999999999) == set()
