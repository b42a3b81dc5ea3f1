"""Real nginx on the controller's rendered configurations, without a cluster (so without the
cluster lock, in seconds): a throwaway network namespace with echo servers on 127.0.0.1 and nginx
(tests/support/nginx_netns.py). The same expectations as the live tests, for what nginx itself
decides: the path table, wildcards, redirects, headers, annotations, the ConfigMap, the default
server; and every live Gateway API conformance case, run unchanged."""
import inspect
import json
import os
import re
import shlex
import shutil

import pytest

from testbed.timescale import scaled

from testbed import Cluster
from tests.integration import test_ingress_gateway_live as gateway_cases
from tests.integration.test_ingress_live import A, ingress
from tests.support.nginx_netns import GatewayCluster, NginxNamespace, local_service
from tests.unit.test_ingress import PATH_TABLE

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nginx"),
                                reason="needs root (a network namespace) and nginx")
BACKENDS = {"s1-pod": (8081, "default"), "s2-pod": (8082, "default"), "s3-pod": (8083, "default"),
            "infra-backend-v1-pod": (8086, gateway_cases.NS), "infra-backend-v2-pod": (8087, gateway_cases.NS),
            "infra-backend-v3-pod": (8088, gateway_cases.NS)}


@pytest.fixture(scope="module")
def netns():
    namespace = NginxNamespace(BACKENDS)
    yield namespace
    namespace.close()


@pytest.fixture(scope="module")
def ingresses(netns):
    cluster = Cluster(network=False, seed=3)
    cluster.apply("examples/ingress-nginx-config.yaml")
    docs = local_service("s1", 8081) + local_service("s2", 8082) + local_service("s3", 8083)
    docs += [ingress(f"row{i}", f"row{i}.example", paths) for i, (paths, _, _) in enumerate(PATH_TABLE)]
    docs += [ingress("wild", "*.wild.example", [("/", "Prefix", "s1")]),
             ingress("rewrite", "rewrite.example", [("/something(/|$)(.*)", "ImplementationSpecific", "s2")],
                     {A + "rewrite-target": "/$2"}),
             ingress("cors", "cors.example", [("/", "Prefix", "s1")],
                     {A + "enable-cors": "true", A + "cors-allow-origin": "https://app.example", A + "cors-max-age": "600"}),
             ingress("body", "body.example", [("/", "Prefix", "s1")], {A + "proxy-body-size": "1k"}),
             ingress("tls", "tls.example", [("/", "Prefix", "s1")], tls=[{"hosts": ["tls.example"]}])]
    cluster.apply(docs)
    netns.load(cluster)
    return cluster


def echo(netns, host, path="/", extra=""):
    return json.loads(netns.cmd(f"curl -s -m {scaled(3):g} -H {shlex.quote('Host: ' + host)} {extra} http://127.0.0.1{path}"))


def code(netns, host, path="/", extra=""):
    return netns.cmd(f"curl -s -m {scaled(3):g} -o /dev/null -w '%{{http_code}}' -H {shlex.quote('Host: ' + host)} {extra} "
                     f"http://127.0.0.1{path}")


@pytest.mark.parametrize("row", range(len(PATH_TABLE)))
def test_path_matching_table(netns, ingresses, row):
    paths, request, expected = PATH_TABLE[row]
    if expected is None:
        assert code(netns, f"row{row}.example", request) == "404", (paths, request)
    else:
        assert echo(netns, f"row{row}.example", request)["pod"] == f"{expected}-pod", (paths, request)


def test_hosts_redirects_and_the_default_server(netns, ingresses):
    assert echo(netns, "a.wild.example")["pod"] == "s1-pod" and code(netns, "a.b.wild.example") == "404"
    assert code(netns, "nobody.example") == "404"
    assert netns.cmd("curl -sk -o /dev/null -w '%{http_code}' --resolve nobody.example:443:127.0.0.1 "
                     "https://nobody.example/") == "404"
    assert netns.cmd("curl -s -0 -o /dev/null -w '%{http_code}' -H 'Host:' http://127.0.0.1/") == "404"
    head = netns.cmd("curl -s -I -H 'Host: tls.example:8080' http://127.0.0.1/")
    assert head.startswith("HTTP/1.1 308") and "Location: https://tls.example\r\n" in head + "\r\n"
    head = netns.cmd("curl -s -I -H 'Host: tls.example' 'http://127.0.0.1/foo/?a=1'")
    assert "Location: https://tls.example/foo/?a=1" in head
    assert "Kubernetes Ingress Controller Fake Certificate" in netns.cmd(
        "curl -skv --resolve tls.example:443:127.0.0.1 https://tls.example/ 2>&1")


def test_annotations(netns, ingresses):
    assert echo(netns, "rewrite.example", "/something/new/path")["path"] == "/new/path"
    assert echo(netns, "rewrite.example", "/something")["path"] == "/"
    preflight = netns.cmd("curl -s -i -X OPTIONS -H 'Host: cors.example' -H 'Origin: https://app.example' "
                          "http://127.0.0.1/")
    assert preflight.startswith("HTTP/1.1 204") and "Access-Control-Max-Age: 600" in preflight
    simple = netns.cmd("curl -s -i -H 'Host: cors.example' -H 'Origin: https://app.example' http://127.0.0.1/")
    assert "Access-Control-Allow-Origin: https://app.example" in simple and '"pod": "s1-pod"' in simple
    assert "Access-Control-Allow-Origin" not in netns.cmd("curl -s -i -H 'Host: cors.example' "
                                                          "-H 'Origin: https://evil.example' http://127.0.0.1/")
    assert code(netns, "body.example", "/", "-X POST --data-binary @/etc/services") == "413"
    assert code(netns, "body.example", "/", "-X POST --data-binary small") == "200"


def test_headers_and_the_configmap(netns, ingresses):
    headers = echo(netns, "row0.example", "/h")["headers"]
    assert headers["X-Real-IP"] == headers["X-Forwarded-For"] == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"]) and headers["X-Forwarded-Port"] == "80"
    trusted = echo(netns, "row0.example", "/h", "-H 'X-Forwarded-For: 1.2.3.4' -H 'X-Forwarded-Proto: https' "
                   "-H 'X-Forwarded-Host: pub.example' -H 'X-Forwarded-Port: 8443'")["headers"]
    assert (trusted["X-Real-IP"], trusted["X-Forwarded-For"]) == ("1.2.3.4", "1.2.3.4, 127.0.0.1")
    assert (trusted["X-Forwarded-Proto"], trusted["X-Forwarded-Host"], trusted["X-Forwarded-Port"]) == \
        ("https", "pub.example", "8443")
    https = json.loads(netns.cmd("curl -sk --resolve row0.example:443:127.0.0.1 https://row0.example/h"))["headers"]
    assert (https["X-Forwarded-Proto"], https["X-Forwarded-Port"]) == ("https", "443")
    configmap = ingresses.get("ConfigMap", "nginx-configuration", namespace="ingress-nginx")
    configmap["data"]["use-forwarded-headers"] = "false"
    ingresses.apply(configmap)
    netns.load(ingresses)
    untrusted = echo(netns, "row0.example", "/h", "-H 'X-Forwarded-For: 1.2.3.4' -H 'X-Forwarded-Proto: https'")["headers"]
    assert (untrusted["X-Real-IP"], untrusted["X-Forwarded-For"], untrusted["X-Forwarded-Proto"]) == \
        ("127.0.0.1", "127.0.0.1", "http")
    assert untrusted["X-Original-Forwarded-For"] == "1.2.3.4"


@pytest.fixture(scope="module")
def gateway_cluster(netns):
    return GatewayCluster(netns, gateway_cases.NS, [
        gateway_cases.gateway("same-namespace", [gateway_cases.http_listener()]),
        gateway_cases.gateway("same-namespace-with-https-listener", [
            gateway_cases.https_listener("https"),
            gateway_cases.https_listener("https-with-hostname", "second-example.org")])])


CASES = [name for name, fn in inspect.getmembers(gateway_cases, inspect.isfunction)
         if name.startswith("test_") and name != "test_gateway_status"]


@pytest.mark.parametrize("case", CASES)
def test_gateway_conformance_case(gateway_cluster, case):
    getattr(gateway_cases, case)(gateway_cluster, GatewayCluster.ADDRESS)
    assert not gateway_cluster.problems
