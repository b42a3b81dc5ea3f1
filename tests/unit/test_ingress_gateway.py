"""Gateway API on the ingress controller: validation naming the field, attachment and status
conditions, matching precedence, and the rendered nginx text (nginx -t)."""
import shutil

import pytest

from testbed import Cluster
from testbed.errors import ManifestError
from testbed.ingress import nginx
from testbed.ingress.gateway import gateway_servers, hostname_intersection
from testbed.ingress.model import build_model
from testbed.ingress.settings import settings_from_configmap
from tests.unit.test_ingress import endpoint_ip, nginx_test, objects_of, service, tls_secret

GW = "gateway.networking.k8s.io/v1"


def gateway(name="gw", listeners=None, namespace="default"):
    return {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": name, "namespace": namespace},
            "spec": {"gatewayClassName": "nginx",
                     "listeners": listeners or [{"name": "http", "port": 80, "protocol": "HTTP"}]}}


def route(name, rules, hostnames=None, parent=None, namespace="default"):
    spec = {"parentRefs": [parent or {"name": "gw"}], "rules": rules}
    if hostnames:
        spec["hostnames"] = hostnames
    return {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def backend(name, port=80, weight=None):
    ref = {"name": name, "port": port}
    if weight is not None:
        ref["weight"] = weight
    return ref


def render(cluster):
    objects = objects_of(cluster)
    model = build_model(objects, settings_from_configmap((objects.configmap or {}).get("data")))
    gateway_objects = {k: cluster.get(k, namespace=None) for k in ("GatewayClass", "Gateway", "HTTPRoute",
                                                                   "ReferenceGrant")}
    extra, status, problems = gateway_servers(gateway_objects, objects, model, "172.18.255.250",
                                              cluster.get("Namespace", namespace=None))
    return model, nginx.render(model, extra_servers=extra), status, problems


@pytest.fixture
def cluster():
    c = Cluster(network=False, seed=5, addons=["ingress"])
    c.apply(service("v1") + service("v2") + service("v3") + [gateway()])
    return c


def test_validation_names_the_field():
    c = Cluster(network=False, addons=["ingress"])
    bad = route("r", [{"matches": [{"path": {"type": "Exact", "value": "no-slash"},
                                    "headers": [{"name": "bad header", "value": "x"}]}],
                       "filters": [{"type": "URLRewrite", "requestHeaderModifier": {"set": []}}],
                       "backendRefs": [{"name": "v1", "weight": -1}]}], hostnames=["*.*.bad"])
    listener_gateway = gateway("g2", [{"name": "web", "port": 443, "protocol": "HTTPS"},
                                      {"name": "web", "port": 80, "protocol": "HTTP", "tls": {"mode": "Terminate"}}])
    with pytest.raises(ManifestError) as caught:
        c.apply([bad, listener_gateway])
    fields = {p.field for p in caught.value.problems}
    assert {"spec.hostnames[0]", "spec.rules[0].matches[0].path.value", "spec.rules[0].matches[0].headers[0].name",
            "spec.rules[0].filters[0].requestHeaderModifier", "spec.rules[0].filters[0].urlRewrite",
            "spec.rules[0].backendRefs[0].port", "spec.rules[0].backendRefs[0].weight",
            "spec.listeners[0].tls", "spec.listeners[1].name", "spec.listeners[1].tls"} <= fields
    assert all(p.kind in ("HTTPRoute", "Gateway") for p in caught.value.problems)


def test_hostname_intersection():
    assert hostname_intersection(None, "a.example") == "a.example"
    assert hostname_intersection("*.example", "a.b.example") == "a.b.example"
    assert hostname_intersection("a.example", "*.example") == "a.example"
    assert hostname_intersection("a.example", "b.example") is None
    assert hostname_intersection("*.example", "*.sub.example") == "*.sub.example"


def test_route_status_accepted_and_resolved_refs(cluster):
    cluster.apply([route("ok", [{"backendRefs": [backend("v1")]}]),
                   route("missing-backend", [{"backendRefs": [backend("nope")]}]),
                   route("no-section", [{"backendRefs": [backend("v1")]}], parent={"name": "gw", "sectionName": "nope"})])
    _, _, status, _ = render(cluster)
    def conditions(name):
        parents = status[("HTTPRoute", "default", name)]["parents"]
        return {c["type"]: (c["status"], c["reason"]) for c in parents[0]["conditions"]}
    assert conditions("ok") == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    assert conditions("missing-backend") == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("False", "BackendNotFound")}
    assert conditions("no-section")["Accepted"] == ("False", "NoMatchingParent")
    gw = status[("Gateway", "default", "gw")]
    assert gw["addresses"] == [{"type": "IPAddress", "value": "172.18.255.250"}]
    assert gw["listeners"][0]["attachedRoutes"] == 2
    assert status[("GatewayClass", "", "nginx")]["conditions"][0]["status"] == "True"


def test_listener_on_a_port_the_controller_does_not_serve_is_not_accepted(cluster):
    cluster.apply([gateway("odd", [{"name": "alt", "port": 8080, "protocol": "HTTP"}])])
    _, _, status, _ = render(cluster)
    listener = status[("Gateway", "default", "odd")]["listeners"][0]
    assert {c["type"]: c["reason"] for c in listener["conditions"]}["Accepted"] == "PortUnavailable"


def test_precedence_exact_prefix_length_headers(cluster):
    cluster.apply([route("r", [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}, {"headers": [{"name": "version", "value": "one"}]}],
         "backendRefs": [backend("v1")]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}, {"headers": [{"name": "version", "value": "two"}]}],
         "backendRefs": [backend("v2")]},
        {"matches": [{"path": {"type": "Exact", "value": "/v2/exact"}}], "backendRefs": [backend("v3")]}])])
    _, text, _, _ = render(cluster)
    block = text.split("## start server _ port 80")[1].split("## end server")[0]
    root = block.split('location "/" {')[1].split("\n        }")[0]
    # in location "/", the header match (more specific) is tested after, so it overrides, the plain prefix
    assert root.index("set $gw_upstream gw-default-r-rule0;") < root.index('if ($http_version ~ "^two$")')
    exact = block.split('location = "/v2/exact" {')[1].split("\n        }")[0]
    assert exact.rstrip().count("set $gw_upstream gw-default-r-rule2;") == 1


def test_weights_split_endpoints_and_invalid_refs_get_500(cluster):
    cluster.apply([route("w", [{"backendRefs": [backend("v1", weight=3), backend("v2", weight=1),
                                                backend("absent", weight=1)]}])])
    model, _, _, _ = render(cluster)
    upstream = model.upstreams["gw-default-w-rule0"]
    weights = {e.address + ":" + str(e.port): e.weight for e in upstream.endpoints}
    assert weights == {f"{endpoint_ip('v1')}:8080": 6000, f"{endpoint_ip('v2')}:8080": 2000, "127.0.0.1:8182": 2000}


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_gateway_config_passes_nginx_t(cluster, tmp_path):
    cluster.apply([
        tls_secret("gw-cert", ["secure.example"]),
        gateway("tls", [{"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "secure.example",
                         "tls": {"certificateRefs": [{"name": "gw-cert"}]}}]),
        route("full", [
            {"matches": [{"path": {"type": "RegularExpression", "value": "/re/[0-9]+"}, "method": "GET",
                          "headers": [{"name": "x-a", "value": "1"}, {"name": "x-b", "type": "RegularExpression",
                                                                      "value": "^b+$"}],
                          "queryParams": [{"name": "q", "value": "v"}]}],
             "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                 "set": [{"name": "X-Set", "value": "s"}], "add": [{"name": "X-Add", "value": "a"}],
                 "remove": ["X-Remove"]}}],
             "backendRefs": [backend("v1")]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/prefix/one"}}],
             "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "rewritten.example",
                                                               "path": {"type": "ReplacePrefixMatch",
                                                                        "replacePrefixMatch": "/one"}}}],
             "backendRefs": [backend("v2")]},
            {"matches": [{"path": {"type": "Exact", "value": "/full"}}],
             "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath",
                                                                        "replaceFullPath": "/one"}}}],
             "backendRefs": [backend("v3")]}]),
        route("secure", [{"backendRefs": [backend("v1")]}], parent={"name": "tls"})])
    model, text, status, problems = render(cluster)
    assert not problems, problems
    text = text.replace("/etc/nginx/", f"{tmp_path}/").replace("/var/lib/nginx", str(tmp_path))
    result = nginx_test(model, text, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "server_name secure.example ;" in text and "gateway-default-gw-cert.pem" in text


def test_kubectl_gets_and_describes_gateway_kinds(cluster):
    from testbed.kubectl import Kubectl
    kubectl = Kubectl(cluster)
    assert "nginx" in kubectl.run(["get", "gatewayclasses"]) and "CONTROLLER" in kubectl.run(["get", "gc"])
    assert kubectl.run(["get", "gateway"]).splitlines()[0].split() == ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"]
    assert kubectl.run(["describe", "gateway", "gw"]).startswith("Name:")


def test_no_gateway_objects_means_no_gateway_config():
    c = Cluster(network=False, addons=[])
    model = build_model(objects_of(c), settings_from_configmap(None))
    assert gateway_servers({}, objects_of(c), model, None) == (None, {}, [])
