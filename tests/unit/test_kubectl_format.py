"""The pure parts of testbed.kubectl: Go's tabwriter rules, AGE, labels and selectors, flags, and the
per-kind `get` cells."""
from datetime import datetime, timedelta, timezone

import pytest

from testbed.errors import TestbedError
from testbed.kubectl.flags import Flag, parse_flags
from testbed.kubectl.format import (TabWriter, age, format_label_selector, format_labels, human_duration,
                                    parse_selector, requirements_match, tabulate)
from testbed.kubectl.tables import format_endpoints, ingress_hosts, pod_status, service_external_ip, ports_column


@pytest.mark.parametrize("seconds, text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"), (182, "3m2s"),
    (599, "9m59s"), (600, "10m"), (3 * 3600 - 1, "179m"), (3 * 3600, "3h"), (5 * 3600 + 180, "5h3m"),
    (8 * 3600, "8h"), (47 * 3600 + 59 * 60, "47h"), (48 * 3600, "2d"), (53 * 3600, "2d5h"),
    (8 * 86400, "8d"), (729 * 86400, "729d"), (730 * 86400, "2y"), (740 * 86400, "2y10d"), (9 * 365 * 86400, "9y"),
])
def test_human_duration_matches_apimachinery(seconds, text):
    assert human_duration(seconds) == text


def test_age_of_a_timestamp_and_of_none():
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert age("2024-05-01T11:56:58Z", now) == "3m2s"
    assert age(None, now) == "<unknown>"
    assert age((now - timedelta(days=3)).isoformat(), now) == "3d"


def test_tabwriter_aligns_consecutive_tabbed_lines_and_restarts_after_a_line_without_tab():
    writer = TabWriter(minwidth=0, padding=2)
    writer.write("Name:\tx\nExternal Traffic Policy:\tCluster\nConditions:\n  Type\tStatus\n  Ready \tTrue \n")
    writer.write("QoS Class:\tBestEffort\n")
    assert writer.getvalue().splitlines() == [
        "Name:                     x",
        "External Traffic Policy:  Cluster",
        "Conditions:",
        "  Type      Status",
        "  Ready     True ",
        "QoS Class:  BestEffort",
    ]


def test_tabwriter_column_blocks_end_where_a_line_has_fewer_cells():
    writer = TabWriter(minwidth=0, padding=2)
    writer.write("a\tb\tc\naa\tbbbb\n")
    assert writer.getvalue() == "a   b  c\naa  bbbb\n"


def test_get_table_has_minimum_width_six_padding_three_and_an_unpadded_last_column():
    assert tabulate([["NAME", "IP", "AGE"], ["a", "10.0.0.1", "5s"]]) == \
        "NAME   IP         AGE\na      10.0.0.1   5s\n"


def test_label_and_selector_formatting():
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert format_labels({}) == "<none>"
    selector = {"matchLabels": {"app": "x"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]},
                                     {"key": "legacy", "operator": "DoesNotExist"}]}
    assert format_label_selector(selector) == "app=x,!legacy,tier in (api,web)"
    assert format_label_selector({}) == "<none>"


def test_label_selector_parsing_and_matching():
    requirements = parse_selector("app=myapp,tier!=db,env in (prod, staging),!legacy,track")
    assert requirements_match(requirements, {"app": "myapp", "env": "prod", "track": "stable"})
    assert not requirements_match(requirements, {"app": "myapp", "env": "dev", "track": "stable"})
    assert not requirements_match(requirements, {"app": "myapp", "env": "prod", "track": "x", "legacy": "1"})
    assert not requirements_match(requirements, {"app": "myapp", "env": "prod"})
    assert requirements_match(parse_selector("env notin (prod)"), {})
    with pytest.raises(TestbedError, match="unable to parse requirement"):
        parse_selector("app=(x")


def test_flags_like_pflag():
    flags = [Flag("namespace", "n"), Flag("filename", "f", repeated=True), Flag("all-namespaces", "A", takes_value=False),
             Flag("stdin", "i", takes_value=False), Flag("tty", "t", takes_value=False), Flag("output", "o")]
    parsed = parse_flags(["get", "-nprod", "-f", "a.yaml", "--filename=b.yaml", "-oyaml", "-it", "pods",
                          "--all-namespaces=false", "--", "sh", "-c", "ls -n"], flags)
    assert parsed.args == ["get", "pods"]
    assert parsed.options == {"namespace": "prod", "filename": ["a.yaml", "b.yaml"], "output": "yaml",
                              "stdin": True, "tty": True, "all-namespaces": False}
    assert parsed.command == ["sh", "-c", "ls -n"] and parsed.dashdash
    assert parse_flags(["-f", "-"], flags).options == {"filename": ["-"]}
    dry_run = [Flag("dry-run", bare_value="client"), Flag("output", "o")]
    assert parse_flags(["--dry-run", "-o", "yaml"], dry_run).options == {"dry-run": "client", "output": "yaml"}
    for argv, message in ((["--nope"], "unknown flag: --nope"), (["-z"], "unknown shorthand flag: 'z' in -z"),
                          (["-n"], "flag needs an argument: 'n' in -n"), (["--namespace"], "flag needs an argument"),
                          (["-A=maybe"], "invalid argument")):
        with pytest.raises(TestbedError, match=message):
            parse_flags(argv, flags)


def _service(kind, **spec):
    return {"kind": "Service", "metadata": {"name": "s"}, "spec": {"type": kind, **spec}}


def test_service_external_ip_column_per_type():
    assert service_external_ip(_service("ClusterIP"), False) == "<none>"
    assert service_external_ip(_service("NodePort", externalIPs=["1.2.3.4"]), False) == "1.2.3.4"
    assert service_external_ip(_service("LoadBalancer"), False) == "<pending>"
    lb = {**_service("LoadBalancer"), "status": {"loadBalancer": {"ingress": [
        {"ip": "172.18.255.200"}, {"hostname": "a-very-long-load-balancer.example.com"}]}}}
    assert service_external_ip(lb, False) == "172.18.255.20..."   # clipped to 16 characters
    assert service_external_ip(lb, True) == "172.18.255.200,a-very-long-load-balancer.example.com"
    assert service_external_ip(_service("ExternalName", externalName="db.example.com"), False) == "db.example.com"
    assert ports_column(_service("NodePort", ports=[{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                                                     {"port": 53, "protocol": "UDP"}])) == "80:30080/TCP,53/UDP"
    assert ports_column(_service("ExternalName")) == "<none>"


def test_endpoints_and_hosts_list_three_then_count_the_rest():
    endpoints = {"subsets": [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)],
                              "ports": [{"port": 80}]}]}
    assert format_endpoints(endpoints) == "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more..."
    assert format_endpoints({"subsets": []}) == "<none>"
    ingress = {"spec": {"rules": [{"host": f"h{i}.example"} for i in range(5)]}}
    assert ingress_hosts(ingress) == "h0.example,h1.example,h2.example + 2 more..."
    assert ingress_hosts({"spec": {"rules": [{"http": {}}]}}) == "*"


def test_pod_status_column_follows_kubectl():
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"phase": "Running", "containerStatuses": [
               {"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}},
               {"name": "b", "ready": False, "restartCount": 4,
                "lastState": {"terminated": {"finishedAt": "2024-05-01T11:59:00Z"}},
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert pod_status(pod) == ("CrashLoopBackOff", 1, 2, 4, "2024-05-01T11:59:00Z")
    pod["metadata"]["deletionTimestamp"] = "2024-05-01T12:00:00Z"
    assert pod_status(pod)[0] == "Terminating"
    pending = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}}
    assert pod_status(pending) == ("Pending", 0, 1, 0, None)
