"""Gateway API HTTPRoute cases from the Gateway API conformance suite (kubernetes-sigs/gateway-api
conformance/tests/httproute-*.go and .yaml, its base manifests in conformance/base/manifests.yaml),
with the same objects and expectations, through the testbed's controller, with real HTTP from the
external host, in every proxy mode. Each case applies its routes, checks, and deletes them, as the
suite does."""
import contextlib
import json
import re
import shlex
from collections import Counter

import pytest

from testbed.timescale import scaled

from testbed import Cluster
from testbed.ingress.tls import self_signed
from tests.integration.conftest import skip_unless_runnable

NS = "gateway-conformance-infra"
GW = "gateway.networking.k8s.io/v1"


def backends():
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}]
    for version in ("v1", "v2", "v3"):
        name, labels = f"infra-backend-{version}", {"app": f"infra-backend-{version}"}
        docs += [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
                  "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                      "metadata": {"labels": labels},
                      "spec": {"containers": [{"name": "echo", "image": "gcr.io/k8s-staging-gateway-api/echo-basic",
                                               "ports": [{"containerPort": 3000}]}]}}}},
                 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
                  "spec": {"selector": labels, "ports": [{"protocol": "TCP", "port": 8080, "targetPort": 3000}]}}]
    return docs


def gateway(name, listeners):
    return {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": name, "namespace": NS},
            "spec": {"gatewayClassName": "nginx", "listeners": listeners}}


def http_listener(name="http", hostname=None):
    listener = {"name": name, "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}
    if hostname:
        listener["hostname"] = hostname
    return listener


def https_listener(name, hostname=None):
    listener = {"name": name, "port": 443, "protocol": "HTTPS", "allowedRoutes": {"namespaces": {"from": "Same"}},
                "tls": {"certificateRefs": [{"group": "", "kind": "Secret", "name": "tls-validity-checks-certificate",
                                             "namespace": NS}]}}
    if hostname:
        listener["hostname"] = hostname
    return listener


def route(name, rules, hostnames=None, parents=None):
    spec = {"parentRefs": parents or [{"name": "same-namespace"}], "rules": rules}
    if hostnames:
        spec["hostnames"] = hostnames
    return {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": name, "namespace": NS}, "spec": spec}


def to(version, weight=None, **extra):
    ref = {"name": f"infra-backend-{version}", "port": 8080, **extra}
    if weight is not None:
        ref["weight"] = weight
    return ref


def path(kind, value, **extra):
    return {"path": {"type": kind, "value": value}, **extra}


def headers(**values):
    return {"headers": [{"name": k.replace("_", "-"), "value": v} for k, v in values.items()]}


@pytest.fixture(scope="module")
def cluster(proxy_mode):
    skip_unless_runnable(proxy_mode)
    cert, key = self_signed("example.org", ["example.org", "second-example.org", "*.wildcard-example.org"])
    with Cluster(topo="default", proxy_mode=proxy_mode, seed=31) as c:
        import base64
        c.apply(backends() + [
            {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
             "metadata": {"name": "tls-validity-checks-certificate", "namespace": NS},
             "data": {"tls.crt": base64.b64encode(cert.encode()).decode(),
                      "tls.key": base64.b64encode(key.encode()).decode()}},
            gateway("same-namespace", [http_listener()]),
            gateway("same-namespace-with-https-listener", [https_listener("https"),
                                                           https_listener("https-with-hostname", "second-example.org")])])
        c.cert = cert
        yield c


@pytest.fixture(scope="module")
def address(cluster):
    return cluster.get("gateway", "same-namespace", namespace=NS)["status"]["addresses"][0]["value"]


@contextlib.contextmanager
def applied(cluster, *docs):
    cluster.apply(list(docs))
    try:
        yield
    finally:
        for doc in docs:
            cluster.delete(doc["kind"], doc["metadata"]["name"], namespace=NS)


def request(cluster, address, path="/", host=None, header_values=None, method="GET"):
    """(status, echo JSON or None) of one request from the external host."""
    args = [f"-X {method}", "-o /tmp/tb-gw-body", "-w '%{http_code}'"]
    if host:
        args.append(f"-H {shlex.quote('Host: ' + host)}")
    for name, value in (header_values or {}).items():
        args.append(f"-H {shlex.quote(f'{name}: {value}')}")
    code = cluster.external().cmd(f"curl -s -m {scaled(5):g} {' '.join(args)} http://{address}{path}").strip()
    body = cluster.external().cmd("cat /tmp/tb-gw-body; rm -f /tmp/tb-gw-body")
    try:
        return code, json.loads(body)
    except ValueError:
        return code, None


def expect(cluster, address, cases):
    for case in cases:
        req, backend, code = case["req"], case.get("backend"), case.get("code", "200")
        got, body = request(cluster, address, **req)
        assert got == code, (req, got, body)
        if backend:
            assert body["pod"].startswith(f"infra-backend-{backend}-") and body["namespace"] == NS, (req, body)
        for name, value in (case.get("seen") or {}).items():
            assert body["headers"].get(name) == value, (req, name, body["headers"])
        for name in case.get("absent") or ():
            assert name not in body["headers"], (req, name, body["headers"])
        if "path" in case:
            assert body["path"] == case["path"], (req, body["path"])
        if "host" in case:
            assert body["host"] == case["host"], (req, body["host"])


def conditions(cluster, name, gateway="same-namespace"):
    parents = cluster.get("httproute", name, namespace=NS)["status"]["parents"]
    parent = next(p for p in parents if p["parentRef"]["name"] == gateway)
    return {c["type"]: (c["status"], c["reason"]) for c in parent["conditions"]}


def test_gateway_status(cluster, address):
    gateway_status = cluster.get("gateway", "same-namespace", namespace=NS)["status"]
    assert {c["type"]: c["status"] for c in gateway_status["conditions"]} == {"Accepted": "True", "Programmed": "True"}
    assert gateway_status["listeners"][0]["supportedKinds"] == [{"group": "gateway.networking.k8s.io",
                                                                 "kind": "HTTPRoute"}]
    assert address == cluster.get("svc", "ingress-nginx-controller", namespace="ingress-nginx")[
        "status"]["loadBalancer"]["ingress"][0]["ip"]
    assert cluster.get("gatewayclass", "nginx", namespace=None)["status"]["conditions"][0]["status"] == "True"


def test_simple_same_namespace(cluster, address):
    with applied(cluster, route("gateway-conformance-infra-test", [{"backendRefs": [to("v1")]}])):
        assert conditions(cluster, "gateway-conformance-infra-test") == {
            "Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
        expect(cluster, address, [{"req": {"path": "/"}, "backend": "v1"}])


def test_exact_path_matching(cluster, address):
    with applied(cluster, route("exact-matching", [{"matches": [path("Exact", "/one")], "backendRefs": [to("v1")]},
                                                   {"matches": [path("Exact", "/two")], "backendRefs": [to("v2")]}])):
        expect(cluster, address, [
            {"req": {"path": "/one"}, "backend": "v1"}, {"req": {"path": "/two"}, "backend": "v2"},
            {"req": {"path": "/"}, "code": "404"}, {"req": {"path": "/one/example"}, "code": "404"},
            {"req": {"path": "/two/"}, "code": "404"}, {"req": {"path": "/Two"}, "code": "404"}])


def test_matching(cluster, address):
    with applied(cluster, route("matching", [
            {"matches": [path("PathPrefix", "/"), headers(version="one")], "backendRefs": [to("v1")]},
            {"matches": [path("PathPrefix", "/v2"), headers(version="two")], "backendRefs": [to("v2")]}])):
        expect(cluster, address, [
            {"req": {"path": "/"}, "backend": "v1"}, {"req": {"path": "/example"}, "backend": "v1"},
            {"req": {"path": "/", "header_values": {"Version": "one"}}, "backend": "v1"},
            {"req": {"path": "/v2"}, "backend": "v2"}, {"req": {"path": "/v2/example"}, "backend": "v2"},
            {"req": {"path": "/", "header_values": {"Version": "two"}}, "backend": "v2"},
            {"req": {"path": "/v2/"}, "backend": "v2"}, {"req": {"path": "/v2example"}, "backend": "v1"},
            {"req": {"path": "/foo/v2/example"}, "backend": "v1"}])


def test_header_matching(cluster, address):
    with applied(cluster, route("header-matching", [
            {"matches": [headers(version="one")], "backendRefs": [to("v1")]},
            {"matches": [headers(version="two")], "backendRefs": [to("v2")]},
            {"matches": [headers(version="two", color="orange")], "backendRefs": [to("v1")]},
            {"matches": [headers(color="blue"), headers(color="green")], "backendRefs": [to("v1")]},
            {"matches": [headers(color="red"), headers(color="yellow")], "backendRefs": [to("v2")]}])):
        cases = [({"Version": "one"}, "v1"), ({"Version": "two"}, "v2"), ({"Version": "two", "Color": "orange"}, "v1"),
                 ({"Version": "two", "Color": "blue"}, "v2"), ({"Color": "orange"}, None),
                 ({"Some-Other-Header": "one"}, None), ({"Color": "blue"}, "v1"), ({"Color": "green"}, "v1"),
                 ({"Color": "red"}, "v2"), ({"Color": "yellow"}, "v2"), ({"Color": "purple"}, None)]
        expect(cluster, address, [{"req": {"path": "/", "header_values": h}, "backend": b, "code": "200" if b else "404"}
                                  for h, b in cases])


def test_matching_across_routes(cluster, address):
    with applied(cluster,
                 route("matching-part1", [{"matches": [path("PathPrefix", "/"), headers(version="one")],
                                           "backendRefs": [to("v1")]}], hostnames=["example.com", "example.net"]),
                 route("matching-part2", [{"matches": [path("PathPrefix", "/v2"), headers(version="two")],
                                           "backendRefs": [to("v2")]}], hostnames=["example.com"])):
        expect(cluster, address, [
            {"req": {"host": "example.com", "path": "/"}, "backend": "v1"},
            {"req": {"host": "example.com", "path": "/example"}, "backend": "v1"},
            {"req": {"host": "example.net", "path": "/"}, "backend": "v1"},
            {"req": {"host": "example.com", "path": "/", "header_values": {"Version": "one"}}, "backend": "v1"},
            {"req": {"host": "example.com", "path": "/v2"}, "backend": "v2"},
            {"req": {"host": "example.net", "path": "/v2"}, "backend": "v1"},
            {"req": {"host": "example.com", "path": "/v2/example"}, "backend": "v2"},
            {"req": {"host": "example.com", "path": "/", "header_values": {"Version": "two"}}, "backend": "v2"}])


def test_path_match_order(cluster, address):
    rules = [("Exact", "/match", "v1"), ("Exact", "/match/exact", "v2"), ("Exact", "/match/exact/one", "v3"),
             ("PathPrefix", "/match/", "v3"), ("PathPrefix", "/match/prefix/", "v1"),
             ("PathPrefix", "/match/prefix/one", "v2")]
    with applied(cluster, route("path-matching-order", [{"matches": [path(k, v)], "backendRefs": [to(b)]}
                                                        for k, v, b in rules])):
        expect(cluster, address, [{"req": {"path": p}, "backend": b} for p, b in (
            ("/match", "v1"), ("/match/exact", "v2"), ("/match/exact/one", "v3"), ("/match/", "v3"),
            ("/match/prefix/", "v1"), ("/match/prefix/one", "v2"), ("/match/prefix/two", "v1"),
            ("/match/exact/two", "v3"), ("/match/prefix", "v1"), ("/match/prefix/one/extra", "v2"))])


def test_listener_hostname_matching(cluster, address):
    name = "httproute-listener-hostname-matching"
    listeners = [http_listener("listener-1", "bar.com"), http_listener("listener-2", "foo.bar.com"),
                 http_listener("listener-3", "*.bar.com"), http_listener("listener-4", "*.foo.com")]

    def parent(section):
        return {"name": name, "namespace": NS, "sectionName": section}
    with applied(cluster, gateway(name, listeners),
                 route("backend-v1", [{"backendRefs": [to("v1")]}], parents=[parent("listener-1")]),
                 route("backend-v2", [{"backendRefs": [to("v2")]}], parents=[parent("listener-2")]),
                 route("backend-v3", [{"backendRefs": [to("v3")]}], parents=[parent("listener-3"), parent("listener-4")])):
        expect(cluster, address, [{"req": {"host": h}, "backend": b} for h, b in (
            ("bar.com", "v1"), ("foo.bar.com", "v2"), ("baz.bar.com", "v3"), ("boo.bar.com", "v3"),
            ("multiple.prefixes.bar.com", "v3"), ("multiple.prefixes.foo.com", "v3"), ("x.foo.com", "v3"))] + [
            {"req": {"host": h}, "code": "404"} for h in ("foo.com", "no.matching.host")])


def test_https_listener(cluster, address):
    gateway_name = "same-namespace-with-https-listener"
    with applied(cluster,
                 route("httproute-https-test", [{"backendRefs": [to("v1")]}], hostnames=["example.org"],
                       parents=[{"name": gateway_name}]),
                 route("httproute-https-test-no-hostname", [{"backendRefs": [to("v2")]}],
                       parents=[{"name": gateway_name, "sectionName": "https-with-hostname"}])):
        ext = cluster.external()
        ext.cmd(f"cat > /tmp/tb-gw-ca.pem <<'EOF'\n{cluster.cert}EOF")
        try:
            for host, code, backend in (("example.org", "200", "v1"), ("unknown-example.org", "404", None),
                                        ("second-example.org", "200", "v2")):
                flags = "--cacert /tmp/tb-gw-ca.pem" if backend else "-k"
                out = ext.cmd(f"curl -s -m {scaled(5):g} {flags} -o /tmp/tb-gw-body -w '%{{http_code}}' "
                              f"--resolve {host}:443:{address} https://{host}/").strip()
                assert out == code, (host, out)
                if backend:
                    assert json.loads(ext.cmd("cat /tmp/tb-gw-body"))["pod"].startswith(f"infra-backend-{backend}-")
        finally:
            ext.cmd("rm -f /tmp/tb-gw-ca.pem /tmp/tb-gw-body")


def test_request_header_modifier(cluster, address):
    def modifier(**actions):
        return {"type": "RequestHeaderModifier", "requestHeaderModifier": actions}
    with applied(cluster, route("request-header-modifier", [
            {"matches": [path("PathPrefix", "/set")], "backendRefs": [to("v1")],
             "filters": [modifier(set=[{"name": "X-Header-Set", "value": "set-overwrites-values"}])]},
            {"matches": [path("PathPrefix", "/add")], "backendRefs": [to("v1")],
             "filters": [modifier(add=[{"name": "X-Header-Add", "value": "add-appends-values"}])]},
            {"matches": [path("PathPrefix", "/remove")], "backendRefs": [to("v1")],
             "filters": [modifier(remove=["X-Header-Remove"])]},
            {"matches": [path("PathPrefix", "/multiple")], "backendRefs": [to("v1")],
             "filters": [modifier(set=[{"name": "X-Header-Set-1", "value": "header-set-1"},
                                       {"name": "X-Header-Set-2", "value": "header-set-2"}],
                                  add=[{"name": "X-Header-Add-1", "value": "header-add-1"},
                                       {"name": "X-Header-Add-2", "value": "header-add-2"},
                                       {"name": "X-Header-Add-3", "value": "header-add-3"}],
                                  remove=["X-Header-Remove-1", "X-Header-Remove-2"])]}])):
        expect(cluster, address, [
            {"req": {"path": "/set", "header_values": {"Some-Other-Header": "val"}},
             "seen": {"Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"}},
            {"req": {"path": "/set", "header_values": {"X-Header-Set": "some-other-value"}},
             "seen": {"X-Header-Set": "set-overwrites-values"}},
            {"req": {"path": "/add", "header_values": {"Some-Other-Header": "val"}},
             "seen": {"Some-Other-Header": "val", "X-Header-Add": "add-appends-values"}},
            {"req": {"path": "/add", "header_values": {"X-Header-Add": "some-other-value"}},
             "seen": {"X-Header-Add": "some-other-value,add-appends-values"}},
            {"req": {"path": "/remove", "header_values": {"X-Header-Remove": "val"}}, "absent": ["X-Header-Remove"]},
            {"req": {"path": "/multiple", "header_values": {"X-Header-Set-2": "set-val-2", "X-Header-Add-2": "add-val-2",
                                                            "X-Header-Remove-2": "remove-val-2", "Another-Header": "x"}},
             "seen": {"X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2",
                      "X-Header-Add-1": "header-add-1", "X-Header-Add-2": "add-val-2,header-add-2",
                      "X-Header-Add-3": "header-add-3", "Another-Header": "x"},
             "absent": ["X-Header-Remove-1", "X-Header-Remove-2"]}])


def test_rewrite_path(cluster, address):
    def rewrite(kind, value):
        field = {"ReplacePrefixMatch": "replacePrefixMatch", "ReplaceFullPath": "replaceFullPath"}[kind]
        return [{"type": "URLRewrite", "urlRewrite": {"path": {"type": kind, field: value}}}]
    with applied(cluster, route("rewrite-path", [
            {"matches": [path("PathPrefix", "/prefix/one")], "filters": rewrite("ReplacePrefixMatch", "/one"),
             "backendRefs": [to("v1")]},
            {"matches": [path("PathPrefix", "/strip-prefix")], "filters": rewrite("ReplacePrefixMatch", "/"),
             "backendRefs": [to("v1")]},
            {"matches": [path("PathPrefix", "/full/one")], "filters": rewrite("ReplaceFullPath", "/one"),
             "backendRefs": [to("v1")]}])):
        expect(cluster, address, [{"req": {"path": p}, "backend": "v1", "path": want} for p, want in (
            ("/prefix/one/two", "/one/two"), ("/strip-prefix/three", "/three"), ("/strip-prefix", "/"),
            ("/full/one/two", "/one"))])


def test_rewrite_host(cluster, address):
    with applied(cluster, route("rewrite-host", [
            {"matches": [path("PathPrefix", "/one")], "backendRefs": [to("v1")],
             "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "one.example.org"}}]},
            {"backendRefs": [to("v2")], "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "example.org"}}]}],
            hostnames=["rewrite.example"])):
        expect(cluster, address, [
            {"req": {"host": "rewrite.example", "path": "/one"}, "backend": "v1", "host": "one.example.org", "path": "/one"},
            {"req": {"host": "rewrite.example", "path": "/two"}, "backend": "v2", "host": "example.org", "path": "/two"}])


def test_weight(cluster, address):
    with applied(cluster, route("weighted-backends", [{"backendRefs": [to("v1", 70), to("v2", 30), to("v3", 0)]}])):
        seen = Counter(re.match(r"infra-backend-v\d", request(cluster, address, "/")[1]["pod"]).group(0)
                       for _ in range(100))
        assert set(seen) <= {"infra-backend-v1", "infra-backend-v2"}, seen
        assert 55 <= seen["infra-backend-v1"] <= 85 and 15 <= seen["infra-backend-v2"] <= 45, seen


def test_invalid_nonexistent_backend_ref(cluster, address):
    with applied(cluster, route("invalid-nonexistent-backend-ref", [
            {"matches": [path("PathPrefix", "/v2")], "backendRefs": [{"name": "nonexistent", "port": 8080}]}])):
        assert conditions(cluster, "invalid-nonexistent-backend-ref") == {
            "Accepted": ("True", "Accepted"), "ResolvedRefs": ("False", "BackendNotFound")}
        expect(cluster, address, [{"req": {"path": "/v2"}, "code": "500"}])


def test_invalid_parent_ref_not_matching_section_name(cluster, address):
    with applied(cluster, route("httproute-does-not-match-section-name", [{"backendRefs": [to("v1")]}],
                                parents=[{"name": "same-namespace", "sectionName": "unknown-listener"}])):
        assert conditions(cluster, "httproute-does-not-match-section-name")["Accepted"] == ("False", "NoMatchingParent")
        expect(cluster, address, [{"req": {"path": "/"}, "code": "404"}])
