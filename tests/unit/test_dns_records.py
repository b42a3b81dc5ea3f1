"""Cluster DNS records (testbed.dns.records) for the shared examples and the specification's cases."""
from testbed.dns.records import Record, RecordDiff, RecordSet, cluster_records

ZONE = "svc.cluster.local."


def service(name, cluster_ip="None", ports=(), namespace="default", **spec):
    return {"kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": cluster_ip, "ports": list(ports), **spec}}


def external_name(name, target, namespace="default", ports=()):
    return {"kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "ExternalName", "externalName": target, "ports": list(ports)}}


def endpoint_slice(service_name, endpoints, ports, namespace="default", suffix="abcde"):
    """`endpoints`: (ip, ready, hostname, pod name) tuples; `ports`: (name, port, protocol)."""
    return {"kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{service_name}-{suffix}", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready},
                           **({"hostname": host} if host else {}),
                           **({"targetRef": {"kind": "Pod", "name": pod, "namespace": namespace}} if pod else {})}
                          for ip, ready, host, pod in endpoints]}


def pod(name, ip, namespace="default", phase="Running", hostname=None, subdomain=None, ready=True):
    spec = {"containers": [{"name": "c", "image": "ikubernetes/myapp:v1"}]}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    return {"kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": {"app": "myapp"}},
            "spec": spec,
            "status": {"phase": phase, "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def a(*ips):
    return frozenset(Record("A", ip) for ip in ips)


# /work/shared/examples/myapp.yaml with addresses filled in: three myapp pods, five Services.
MYAPP_PODS = [pod("myapp-1", "10.244.0.10"), pod("myapp-2", "10.244.1.10"), pod("myapp-3", "10.244.2.10")]
MYAPP_SERVICES = [
    service("myapp-svc", "10.96.0.100", [{"protocol": "TCP", "port": 80, "targetPort": 80}]),
    service("myapp-svc-nodeport", "10.96.0.101", [{"protocol": "TCP", "port": 80, "nodePort": 32223}],
            type="NodePort"),
    service("myapp-svc-lb", "10.96.0.102", [{"protocol": "TCP", "port": 80}], type="LoadBalancer"),
    service("myapp-headless-svc", "None", [{"port": 80, "targetPort": 80, "name": "httpport"}]),
    service("myapp-sticky", "10.96.0.103", [{"port": 80, "targetPort": "http"}], sessionAffinity="ClientIP"),
]
MYAPP_ENDPOINTS = [("10.244.0.10", True, None, "myapp-1"), ("10.244.1.10", True, None, "myapp-2"),
                   ("10.244.2.10", True, None, "myapp-3")]
MYAPP_SLICES = [endpoint_slice(s["metadata"]["name"], MYAPP_ENDPOINTS,
                               [("httpport" if s["spec"]["clusterIP"] == "None" else "", 80, "TCP")])
                for s in MYAPP_SERVICES]


def myapp_records():
    return cluster_records(MYAPP_SERVICES, MYAPP_SLICES, MYAPP_PODS)


def test_schema_version_txt():
    assert cluster_records([], [], [])["dns-version.cluster.local."] == {Record("TXT", '"1.1.0"')}


def test_cluster_ip_services_get_a_and_ptr_whatever_their_type():
    records = myapp_records()
    for name, ip, reverse in [("myapp-svc", "10.96.0.100", "100.0.96.10.in-addr.arpa."),
                              ("myapp-svc-nodeport", "10.96.0.101", "101.0.96.10.in-addr.arpa."),
                              ("myapp-svc-lb", "10.96.0.102", "102.0.96.10.in-addr.arpa."),
                              ("myapp-sticky", "10.96.0.103", "103.0.96.10.in-addr.arpa.")]:
        assert records[f"{name}.default.{ZONE}"] == a(ip)
        assert records[reverse] == {Record("PTR", f"{name}.default.{ZONE}")}


def test_unnamed_ports_have_no_srv():
    records = myapp_records()
    assert not [n for n in records if n.startswith("_") and ".myapp-svc." in n]


def test_headless_service_answers_every_ready_endpoint():
    records = myapp_records()
    fqdn = f"myapp-headless-svc.default.{ZONE}"
    assert records[fqdn] == a("10.244.0.10", "10.244.1.10", "10.244.2.10")
    # No hostname: CoreDNS's per-IP label names each endpoint, and SRV and PTR point at it.
    assert records[f"10-244-1-10.{fqdn}"] == a("10.244.1.10")
    assert records[f"_httpport._tcp.{fqdn}"] == {
        Record("SRV", f"0 33 80 10-244-{i}-10.{fqdn}") for i in range(3)}
    assert records["10.1.244.10.in-addr.arpa."] == {Record("PTR", f"10-244-1-10.{fqdn}")}


def test_headless_with_hostnames_names_endpoints_by_hostname():
    services = [service("web", "None", [{"name": "http", "port": 80}])]
    slices = [endpoint_slice("web", [("10.244.0.5", True, "web-0", None), ("10.244.1.5", True, "web-1", None)],
                             [("http", 8080, "TCP")])]
    records = cluster_records(services, slices, [])
    fqdn = f"web.default.{ZONE}"
    assert records[f"web-0.{fqdn}"] == a("10.244.0.5")
    assert records[f"web-1.{fqdn}"] == a("10.244.1.5")
    # Headless SRV carries the endpoint's port: clients connect to the pods directly.
    assert records[f"_http._tcp.{fqdn}"] == {Record("SRV", f"0 50 8080 web-0.{fqdn}"),
                                             Record("SRV", f"0 50 8080 web-1.{fqdn}")}
    assert records["5.1.244.10.in-addr.arpa."] == {Record("PTR", f"web-1.{fqdn}")}
    assert f"10-244-0-5.{fqdn}" not in records


def test_headless_srv_per_named_port_per_endpoint():
    services = [service("db", "None", [{"name": "sql", "port": 5432}, {"name": "metrics", "port": 9187},
                                       {"port": 1234}])]
    slices = [endpoint_slice("db", [("10.244.0.7", True, None, None), ("10.244.1.7", True, None, None)],
                             [("sql", 5432, "TCP"), ("metrics", 9187, "TCP"), ("", 1234, "TCP")])]
    records = cluster_records(services, slices, [])
    srv_names = sorted(n for n in records if n.startswith("_"))
    assert srv_names == [f"_metrics._tcp.db.default.{ZONE}", f"_sql._tcp.db.default.{ZONE}"]
    assert all(len(records[n]) == 2 for n in srv_names)


def test_not_ready_endpoints_only_when_published():
    endpoints = [("10.244.0.8", True, None, None), ("10.244.1.8", False, None, None)]
    slices = [endpoint_slice("h", endpoints, [("p", 80, "TCP")])]
    hidden = cluster_records([service("h", "None", [{"name": "p", "port": 80}])], slices, [])
    assert hidden[f"h.default.{ZONE}"] == a("10.244.0.8")
    assert "8.1.244.10.in-addr.arpa." not in hidden
    published = cluster_records([service("h", "None", [{"name": "p", "port": 80}],
                                         publishNotReadyAddresses=True)], slices, [])
    assert published[f"h.default.{ZONE}"] == a("10.244.0.8", "10.244.1.8")


def test_headless_without_ready_endpoints_has_no_name():
    slices = [endpoint_slice("h", [("10.244.1.8", False, None, None)], [("p", 80, "TCP")])]
    records = cluster_records([service("h", "None", [{"name": "p", "port": 80}])], slices, [])
    assert not [n for n in records if n.endswith(f"h.default.{ZONE}")]


def test_named_ports_srv_for_cluster_ip_service():
    services = [service("kube-dns", "10.96.0.10", [{"name": "dns", "port": 53, "protocol": "UDP"},
                                                   {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                                                   {"name": "metrics", "port": 9153, "protocol": "TCP"}],
                        namespace="kube-system")]
    records = cluster_records(services, [], [])
    fqdn = f"kube-dns.kube-system.{ZONE}"
    assert records[f"_dns._udp.{fqdn}"] == {Record("SRV", f"0 100 53 {fqdn}")}
    assert records[f"_dns-tcp._tcp.{fqdn}"] == {Record("SRV", f"0 100 53 {fqdn}")}
    assert records[f"_metrics._tcp.{fqdn}"] == {Record("SRV", f"0 100 9153 {fqdn}")}
    assert records["10.0.96.10.in-addr.arpa."] == {Record("PTR", f"{fqdn}")}


# /work/shared/examples/external.yaml with addresses filled in.
EXTERNAL_SERVICES = [
    service("my-service", "10.96.0.200", [{"protocol": "TCP", "port": 80, "targetPort": 9376}]),
    external_name("my-service", "my.database.example.com", namespace="prod"),
    external_name("external-redis-svc", "redis.ilinux.io", ports=[{"protocol": "TCP", "port": 6379}]),
]
EXTERNAL_SLICES = [endpoint_slice("my-service", [("192.168.200.10", True, None, None)], [("", 9376, "TCP")])]


def test_external_name_is_a_cname_and_selectorless_service_a_cluster_ip():
    records = cluster_records(EXTERNAL_SERVICES, EXTERNAL_SLICES, [])
    assert records[f"my-service.prod.{ZONE}"] == {Record("CNAME", "my.database.example.com.")}
    assert records[f"external-redis-svc.default.{ZONE}"] == {Record("CNAME", "redis.ilinux.io.")}
    assert records[f"my-service.default.{ZONE}"] == a("10.96.0.200")
    assert "10.200.168.192.in-addr.arpa." not in records  # endpoints of ClusterIP Services get no PTR


def test_pod_records_for_running_pods_with_an_ip():
    pods = [*MYAPP_PODS, pod("pending", "", phase="Pending"), pod("done", "10.244.0.99", phase="Succeeded"),
            pod("other", "10.244.1.20", namespace="prod")]
    deleting = pod("deleting", "10.244.2.30")
    deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    records = cluster_records([], [], [*pods, deleting])
    pod_names = sorted(n for n in records if ".pod." in n)
    assert pod_names == ["10-244-0-10.default.pod.cluster.local.", "10-244-1-10.default.pod.cluster.local.",
                         "10-244-1-20.prod.pod.cluster.local.", "10-244-2-10.default.pod.cluster.local."]
    assert records["10-244-1-20.prod.pod.cluster.local."] == a("10.244.1.20")


def test_subdomain_record_needs_a_headless_service_named_like_the_subdomain():
    pods = [pod("busybox1", "10.244.1.30", hostname="busybox-1", subdomain="busybox-subdomain"),
            pod("busybox2", "10.244.1.31", hostname="busybox-2", subdomain="no-such-service"),
            pod("busybox3", "10.244.1.32", hostname="busybox-3", subdomain="not-headless"),
            pod("busybox4", "10.244.1.33", hostname="busybox-4", subdomain="busybox-subdomain", ready=False)]
    services = [service("busybox-subdomain", "None", [{"name": "foo", "port": 1234}]),
                service("not-headless", "10.96.0.50", [{"name": "foo", "port": 1234}])]
    records = cluster_records(services, [], pods)
    assert records[f"busybox-1.busybox-subdomain.default.{ZONE}"] == a("10.244.1.30")
    assert not [n for n in records if n.startswith(("busybox-2.", "busybox-3.", "busybox-4."))]


def test_endpoint_of_a_pod_with_matching_subdomain_takes_the_pods_hostname():
    pods = [pod("busybox1", "10.244.1.30", hostname="busybox-1", subdomain="busybox-subdomain")]
    services = [service("busybox-subdomain", "None", [{"name": "foo", "port": 1234}])]
    slices = [endpoint_slice("busybox-subdomain", [("10.244.1.30", True, None, "busybox1")], [("foo", 1234, "TCP")])]
    records = cluster_records(services, slices, pods)
    fqdn = f"busybox-subdomain.default.{ZONE}"
    assert records[f"_foo._tcp.{fqdn}"] == {Record("SRV", f"0 100 1234 busybox-1.{fqdn}")}
    assert records["30.1.244.10.in-addr.arpa."] == {Record("PTR", f"busybox-1.{fqdn}")}


def test_custom_domain():
    records = cluster_records([service("web", "10.96.0.5")], [], [], domain="corp.internal.")
    assert records["web.default.svc.corp.internal."] == a("10.96.0.5")
    assert "dns-version.corp.internal." in records


def test_lines_are_zone_file_presentation():
    records = cluster_records([service("web", "10.96.0.5", [{"name": "http", "port": 80}])], [], [])
    assert records.lines(["web.default.svc.cluster.local."]) == ["web.default.svc.cluster.local. 5 IN A 10.96.0.5"]
    assert "_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local." \
        in records.lines()
    assert records.record_count() == len(records.lines())


def test_diff_touches_only_changed_names():
    old = myapp_records()
    assert not RecordDiff.between(old, myapp_records())

    services = [s for s in MYAPP_SERVICES if s["metadata"]["name"] != "myapp-svc-lb"]
    services.append(service("myapp-svc-nodeport", "10.96.0.111", [{"port": 80}], type="NodePort"))
    services = [s for s in services if not (s["metadata"]["name"] == "myapp-svc-nodeport"
                                            and s["spec"]["clusterIP"] == "10.96.0.101")]
    services.append(service("new", "10.96.0.120"))
    new = cluster_records(services, MYAPP_SLICES, MYAPP_PODS)
    diff = RecordDiff.between(old, new)
    assert diff.removed_names == {
        f"myapp-svc-lb.default.{ZONE}", "102.0.96.10.in-addr.arpa.",       # deleted
        f"myapp-svc-nodeport.default.{ZONE}", "101.0.96.10.in-addr.arpa."}  # changed IP
    assert dict(diff.added) == {
        f"myapp-svc-nodeport.default.{ZONE}": a("10.96.0.111"),
        "111.0.96.10.in-addr.arpa.": {Record("PTR", f"myapp-svc-nodeport.default.{ZONE}")},
        f"new.default.{ZONE}": a("10.96.0.120"),
        "120.0.96.10.in-addr.arpa.": {Record("PTR", f"new.default.{ZONE}")}}


def test_diff_of_a_grown_name_adds_without_removing():
    endpoints = MYAPP_ENDPOINTS + [("10.244.0.11", True, None, None)]
    slices = [endpoint_slice("myapp-headless-svc", endpoints, [("httpport", 80, "TCP")])]
    services = [s for s in MYAPP_SERVICES if s["metadata"]["name"] == "myapp-headless-svc"]
    old = cluster_records(services, MYAPP_SLICES, [])
    diff = RecordDiff.between(old, cluster_records(services, slices, []))
    fqdn = f"myapp-headless-svc.default.{ZONE}"
    assert diff.added[fqdn] == a("10.244.0.11")              # only the new address is sent
    assert fqdn not in diff.removed_names
    assert diff.removed_names == {f"_httpport._tcp.{fqdn}"}  # SRV weights changed 33 -> 25
    assert len(diff.added[f"_httpport._tcp.{fqdn}"]) == 4
    assert f"{fqdn} 5 IN A 10.244.0.11" in diff.added_lines()


def test_recordset_equality_and_ttl_change_rewrites_everything():
    old = RecordSet({"a.cluster.local.": [Record("A", "10.0.0.1")]}, ttl=5)
    assert old == RecordSet({"a.cluster.local.": {Record("A", "10.0.0.1")}}, ttl=5)
    new = RecordSet({"a.cluster.local.": [Record("A", "10.0.0.1")]}, ttl=30)
    assert old != new
    diff = RecordDiff.between(old, new)
    assert diff.removed_names == {"a.cluster.local."}
    assert diff.added_lines() == ["a.cluster.local. 30 IN A 10.0.0.1"]
