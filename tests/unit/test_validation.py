"""Validation follows the API server: one line per problem, naming file:document, kind/name and field."""
import pytest

from testbed.cluster import Cluster
from testbed.errors import ManifestError
from testbed.manifests import parse_text

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: %(replicas)s
  selector: {matchLabels: {app: %(selector)s}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, ports: [{containerPort: %(port)s, name: %(port_name)s}]}]
"""


def problems(text: str, cluster=None) -> list[str]:
    cluster = cluster or Cluster(network=False, seed=1)
    return [str(p) for p in cluster.validate(parse_text(text, "t.yaml"))]


def service(spec: str, name: str = "svc") -> str:
    return f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {spec}\n"


@pytest.mark.parametrize("spec, field, reason", [
    ("{ports: [{port: 0}]}", "spec.ports[0].port", "between 1 and 65535"),
    ("{ports: [{port: 70000}]}", "spec.ports[0].port", "between 1 and 65535"),
    ("{ports: [{port: 80}, {port: 81}]}", "spec.ports[0].name", "Required value"),
    ("{ports: [{port: 80, name: a}, {port: 81, name: a}]}", "spec.ports[1].name", "Duplicate value"),
    ("{ports: [{port: 80, targetPort: Not_Valid}]}", "spec.ports[0].targetPort", "Invalid value"),
    ("{type: NodePort, ports: [{port: 80, nodePort: 80}]}", "spec.ports[0].nodePort", "30000-32767"),
    ("{ports: [{port: 80, nodePort: 30080}]}", "spec.ports[0].nodePort", "may not be used when `type` is 'ClusterIP'"),
    ("{clusterIP: 192.168.1.1, ports: [{port: 80}]}", "spec.clusterIP", "not in the valid range"),
    ("{clusterIP: 10.96.300.1, ports: [{port: 80}]}", "spec.clusterIP", "valid IPv4 address"),
    ("{sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}, ports: [{port: 80}]}",
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "less than 86400"),
    ("{sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}, ports: [{port: 80}]}",
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "Invalid value: 86401"),
    ("{type: ExternalName}", "spec.externalName", "Required value"),
    ("{type: Bogus, ports: [{port: 80}]}", "spec.type", "Unsupported value"),
    ("{ports: [{port: 80, protocol: ICMP}]}", "spec.ports[0].protocol", "Unsupported value"),
    ("{}", "spec.ports", "Required value"),
])
def test_service_rules(spec, field, reason):
    lines = problems(service(spec))
    assert any(line.startswith(f"t.yaml:1 Service/svc: {field}: ") and reason in line for line in lines), lines


def test_service_name_is_a_dns1035_label():
    lines = problems(service("{ports: [{port: 80}]}", name="1abc"))
    assert lines and lines[0].startswith("t.yaml:1 Service/1abc: metadata.name: Invalid value")


def test_node_port_unique_across_services_in_a_batch_and_in_the_store():
    cluster = Cluster(network=False, seed=1)
    batch = service("{type: NodePort, ports: [{port: 80, nodePort: 30080}]}", "a") + "---\n" + \
        service("{type: NodePort, ports: [{port: 80, nodePort: 30080}]}", "b")
    lines = problems(batch, cluster)
    assert len(lines) == 1 and lines[0].startswith("t.yaml:2 Service/b: spec.ports[0].nodePort: ") \
        and "already allocated" in lines[0]
    cluster.apply(service("{type: NodePort, ports: [{port: 80, nodePort: 30080}]}", "a"))
    lines = problems(service("{type: NodePort, ports: [{port: 80, nodePort: 30080}]}", "c"), cluster)
    assert "already allocated" in lines[0]


def test_cluster_ip_unique_and_immutable():
    cluster = Cluster(network=False, seed=1)
    cluster.apply(service("{clusterIP: 10.96.5.5, ports: [{port: 80}]}", "a"))
    assert "already allocated" in problems(service("{clusterIP: 10.96.5.5, ports: [{port: 80}]}", "b"), cluster)[0]
    assert "field is immutable" in problems(service("{clusterIP: 10.96.5.6, ports: [{port: 80}]}", "a"), cluster)[0]
    # kube-dns's .10 and kubernetes' .1 are taken at start
    assert "already allocated" in problems(service("{clusterIP: 10.96.0.10, ports: [{port: 80}]}", "d"), cluster)[0]


@pytest.mark.parametrize("values, field, reason", [
    (dict(replicas=-1, selector="web", port=80, port_name="http"), "spec.replicas", "greater than or equal to 0"),
    (dict(replicas=1, selector="other", port=80, port_name="http"), "spec.template.metadata.labels",
     "`selector` does not match template `labels`"),
    (dict(replicas=1, selector="web", port=0, port_name="http"), "spec.template.spec.containers[0].ports[0].containerPort",
     "between 1 and 65535"),
    (dict(replicas=1, selector="web", port=80, port_name="a-very-long-port-name"),
     "spec.template.spec.containers[0].ports[0].name", "no more than 15 characters"),
])
def test_deployment_rules(values, field, reason):
    lines = problems(DEPLOYMENT % values)
    assert any(f"Deployment/web: {field}: " in line and reason in line for line in lines), lines


def ingress(spec: str, api="networking.k8s.io/v1") -> str:
    return f"apiVersion: {api}\nkind: Ingress\nmetadata: {{name: ing}}\nspec: {spec}\n"


BACKEND = "{service: {name: web, port: {number: 80}}}"


@pytest.mark.parametrize("spec, field, reason", [
    ("{}", "spec", "either `defaultBackend` or `rules` must be specified"),
    ("{rules: [{host: '*', http: {paths: [{path: /, pathType: Prefix, backend: %s}]}}]}" % BACKEND,
     "spec.rules[0].host", "bare '*'"),
    ("{rules: [{host: 'a.*.com', http: {paths: [{path: /, pathType: Prefix, backend: %s}]}}]}" % BACKEND,
     "spec.rules[0].host", "wildcard"),
    ("{rules: [{host: 10.0.0.1, http: {paths: [{path: /, pathType: Prefix, backend: %s}]}}]}" % BACKEND,
     "spec.rules[0].host", "not an IP address"),
    ("{rules: [{http: {paths: [{path: /, pathType: Regex, backend: %s}]}}]}" % BACKEND,
     "spec.rules[0].http.paths[0].pathType", "Unsupported value"),
    ("{rules: [{http: {paths: [{path: /, backend: %s}]}}]}" % BACKEND,
     "spec.rules[0].http.paths[0].pathType", "Required value"),
    ("{rules: [{http: {paths: [{path: relative, pathType: Prefix, backend: %s}]}}]}" % BACKEND,
     "spec.rules[0].http.paths[0].path", "absolute path"),
    ("{rules: [{http: {paths: [{path: /, pathType: Exact, backend: {service: {name: web, port: {}}}}]}}]}",
     "spec.rules[0].http.paths[0].backend.service.port", "port name or number is required"),
])
def test_ingress_rules(spec, field, reason):
    lines = problems(ingress(spec))
    assert any(f"Ingress/ing: {field}: " in line and reason in line for line in lines), lines


def test_wildcard_host_is_valid_and_legacy_forms_convert():
    assert problems(ingress("{rules: [{host: '*.example.com', http: {paths: [{path: /, pathType: Prefix, backend: %s}]}}]}"
                            % BACKEND)) == []
    legacy = ingress("{backend: {serviceName: web, servicePort: 80}, rules: [{host: a.b, http: {paths: "
                     "[{backend: {serviceName: web, servicePort: http}}]}}]}", api="extensions/v1beta1")
    assert problems(legacy) == []
    cluster = Cluster(network=False, seed=1)
    cluster.apply(legacy)
    stored = cluster.get("ingress", "ing")
    assert stored["apiVersion"] == "networking.k8s.io/v1"
    assert stored["spec"]["defaultBackend"] == {"service": {"name": "web", "port": {"number": 80}}}
    path = stored["spec"]["rules"][0]["http"]["paths"][0]
    assert path["pathType"] == "ImplementationSpecific" and path["backend"]["service"]["port"] == {"name": "http"}


def test_unknown_kind_and_api_version_are_named():
    lines = problems("apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: x}\n---\n"
                     "apiVersion: v1\nkind: Frobnicator\nmetadata: {name: yy}\n")
    assert lines[0].startswith('t.yaml:1 Deployment/x: apiVersion: Unsupported value: "apps/v1beta1"')
    assert lines[1].startswith('t.yaml:2 Frobnicator/yy: kind: Unsupported value: "Frobnicator"')


def test_tls_secret_needs_cert_and_key():
    lines = problems("apiVersion: v1\nkind: Secret\ntype: kubernetes.io/tls\nmetadata: {name: s}\n"
                     "data: {tls.crt: aGVsbG8=}\n")
    assert lines == ["t.yaml:1 Secret/s: data[tls.key]: Required value"]


def test_namespace_must_exist_or_come_in_the_batch():
    lines = problems("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: nowhere}\n")
    assert lines == ['t.yaml:1 ConfigMap/c: metadata.namespace: Not found: namespaces "nowhere" not found']
    assert problems("apiVersion: v1\nkind: Namespace\nmetadata: {name: nowhere}\n---\n"
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: nowhere}\n") == []


def test_apply_is_all_or_nothing():
    cluster = Cluster(network=False, seed=1)
    before = {kind: len(cluster.get(kind, namespace=None)) for kind in ("Service", "Deployment", "Pod")}
    text = DEPLOYMENT % dict(replicas=2, selector="web", port=80, port_name="http") + "---\n" + \
        service("{type: NodePort, ports: [{port: 80, nodePort: 99999}]}")
    with pytest.raises(ManifestError) as err:
        cluster.apply(text)
    assert len(err.value.problems) == 1
    after = {kind: len(cluster.get(kind, namespace=None)) for kind in ("Service", "Deployment", "Pod")}
    assert after == before


def test_examples_are_valid():
    cluster = Cluster(network=False, seed=1)
    from testbed.manifests import load
    assert cluster.validate(load(["examples"])) == []
