"""The ingress controller's pure core: Ingress objects -> routing model -> nginx.conf, checked
against golden output, a fake nginx (tests/support/fake_nginx.py) for the Kubernetes docs' path
matching table, and `nginx -t` on the rendered text (in a temporary directory, never /etc/nginx)."""
import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from testbed import Cluster
from testbed.ingress import nginx
from testbed.ingress.annotations import parse_annotations
from testbed.ingress.model import ClusterObjects, build_model, is_our_class, sort_ingresses
from testbed.ingress.settings import Settings, settings_from_configmap
from testbed.ingress.tls import FAKE_CN, certificate_from_secret, fake_certificate, names_host, self_signed
from tests.support.fake_nginx import parse, route

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "ingress"


def objects_of(cluster) -> ClusterObjects:
    configmap = None
    if any(c["metadata"]["name"] == "nginx-configuration" for c in cluster.get("ConfigMap", namespace="ingress-nginx")):
        configmap = cluster.get("ConfigMap", "nginx-configuration", namespace="ingress-nginx")
    return ClusterObjects(cluster.get("Ingress", namespace=None), cluster.get("IngressClass", namespace=None),
                          cluster.get("Service", namespace=None), cluster.get("EndpointSlice", namespace=None),
                          cluster.get("Secret", namespace=None), configmap)


def render_cluster(cluster, **kwargs):
    objects = objects_of(cluster)
    model = build_model(objects, settings_from_configmap((objects.configmap or {}).get("data")))
    return model, nginx.render(model, **kwargs)


def normalised(text: str) -> str:
    """What does not repeat between runs: the fake certificate is made per process."""
    text = re.sub(r"# PEM sha: [0-9a-f]+", "# PEM sha: <sha>", text)
    text = re.sub(r"[0-9a-f]{40}", "<checksum>", text)
    return text


def nginx_test(model, text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`nginx -t` with prefix, pid, temp paths and certificates in tmp_path."""
    (tmp_path / "ssl").mkdir(exist_ok=True)
    for file, certificate in model.certificates.items():
        (tmp_path / "ssl" / file).write_text(certificate.pem)
    for relative, content in nginx.support_files(model, str(tmp_path)).items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(content)
    text = text.replace("access_log /dev/stdout", f"access_log {tmp_path}/access.log")
    (tmp_path / "nginx.conf").write_text(text)
    return subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                          capture_output=True, text=True)


needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (make setup)")


@pytest.fixture
def cluster():
    c = Cluster(network=False, seed=7)
    c.apply("examples/")
    return c


def service(name, port=80, namespace="default"):
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
             "spec": {"ports": [{"port": port, "targetPort": 8080}]}},
            {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace},
             "subsets": [{"addresses": [{"ip": endpoint_ip(name)}], "ports": [{"port": 8080}]}]}]


def endpoint_ip(name: str) -> str:
    return f"10.244.9.{2 + sum(map(ord, name)) % 250}"


def ingress(name, rules, annotations=None, **spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"ingressClassName": "nginx", "rules": rules, **spec}}


def rule(host, *paths):
    return {"host": host, "http": {"paths": [
        {"path": p, "pathType": t, "backend": {"service": {"name": s, "port": {"number": 80}}}} for p, t, s in paths]}}


# -- golden and nginx -t ---------------------------------------------------------------------------

def test_examples_render_as_the_golden_config(cluster):
    model, text = render_cluster(cluster)
    golden = GOLDEN / "examples.conf"
    if os.environ.get("UPDATE_GOLDEN"):   # UPDATE_GOLDEN=1 pytest ... rewrites it; review the diff in git
        golden.write_text(normalised(text))
    assert normalised(text) == golden.read_text()
    assert [s.hostname for s in model.servers] == ["_", "api.ik8s.io", "wap.ik8s.io", "www.ilinux.io", "www.wzlinux.com"]


@needs_nginx
def test_rendered_configs_pass_nginx_t(cluster, tmp_path):
    cluster.apply(service("echo") + [
        ingress("rich", [rule("rich.example", ("/something(/|$)(.*)", "ImplementationSpecific", "echo"))],
                {"nginx.ingress.kubernetes.io/rewrite-target": "/$2",
                 "nginx.ingress.kubernetes.io/enable-cors": "true",
                 "nginx.ingress.kubernetes.io/cors-allow-origin": "https://a.example, https://*.b.example",
                 "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
                 "nginx.ingress.kubernetes.io/x-forwarded-prefix": "/something"}),
        ingress("wild", [rule("*.wild.example", ("/", "Prefix", "echo"))])])
    model, text = render_cluster(cluster, conf_dir=str(tmp_path), state_dir=str(tmp_path))
    result = nginx_test(model, text, tmp_path)
    assert result.returncode == 0, result.stderr


@needs_nginx
def test_nginx_t_rejects_a_bad_regex_path(cluster, tmp_path):
    cluster.apply(service("echo") + [ingress("bad", [rule("bad.example", ("/foo(", "ImplementationSpecific", "echo"))],
                                             {"nginx.ingress.kubernetes.io/use-regex": "true"})])
    model, text = render_cluster(cluster, conf_dir=str(tmp_path), state_dir=str(tmp_path))
    result = nginx_test(model, text, tmp_path)
    assert result.returncode != 0 and "pcre" in result.stderr.lower()


# -- the Kubernetes docs' path matching table -------------------------------------------------------
# https://kubernetes.io/docs/concepts/services-networking/ingress/#examples
PATH_TABLE = [
    # (paths as (path, type, service), request, expected service or None for the default backend)
    ([("/", "Prefix", "s1")], "/anything/at/all", "s1"),
    ([("/foo", "Exact", "s1")], "/foo", "s1"),
    ([("/foo", "Exact", "s1")], "/bar", None),
    ([("/foo", "Exact", "s1")], "/foo/", None),
    ([("/foo/", "Exact", "s1")], "/foo", None),
    ([("/foo", "Prefix", "s1")], "/foo", "s1"),
    ([("/foo", "Prefix", "s1")], "/foo/", "s1"),
    ([("/foo/", "Prefix", "s1")], "/foo", "s1"),
    ([("/foo/", "Prefix", "s1")], "/foo/", "s1"),
    ([("/aaa/bb", "Prefix", "s1")], "/aaa/bbb", None),
    ([("/aaa/bbb", "Prefix", "s1")], "/aaa/bbb", "s1"),
    ([("/aaa/bbb/", "Prefix", "s1")], "/aaa/bbb", "s1"),
    ([("/aaa/bbb", "Prefix", "s1")], "/aaa/bbb/", "s1"),
    ([("/aaa/bbb", "Prefix", "s1")], "/aaa/bbb/ccc", "s1"),
    ([("/aaa/bbb", "Prefix", "s1")], "/aaa/bbbxyz", None),
    ([("/", "Prefix", "s1"), ("/aaa", "Prefix", "s2")], "/aaa/ccc", "s2"),
    ([("/", "Prefix", "s1"), ("/aaa", "Prefix", "s2"), ("/aaa/bbb", "Prefix", "s3")], "/aaa/bbb", "s3"),
    ([("/", "Prefix", "s1"), ("/aaa", "Prefix", "s2"), ("/aaa/bbb", "Prefix", "s3")], "/ccc", "s1"),
    ([("/aaa", "Prefix", "s1")], "/ccc", None),
    ([("/foo", "Prefix", "s1"), ("/foo", "Exact", "s2")], "/foo", "s2"),
    ([("/foo", "Prefix", "s1"), ("/foo", "Exact", "s2")], "/foo/x", "s1"),
]


@pytest.fixture(scope="module")
def path_table_config():
    c = Cluster(network=False, seed=3, addons=["ingress"])
    c.apply([doc for name in ("s1", "s2", "s3") for doc in service(name)] +
            [ingress(f"row{i}", [rule(f"row{i}.example", *paths)]) for i, (paths, _, _) in enumerate(PATH_TABLE)])
    return render_cluster(c)[1]


@pytest.mark.parametrize("row", range(len(PATH_TABLE)))
def test_kubernetes_path_matching_table(path_table_config, row):
    paths, request, expected = PATH_TABLE[row]
    got = route(path_table_config, f"row{row}.example", request)
    assert got == (f"upstream default-{expected}-80" if expected else "upstream upstream-default-backend"), \
        f"{paths} {request}"


def test_prefix_renders_a_prefix_location_and_an_exact_twin(path_table_config):
    server = next(s for s in parse(path_table_config) if "row11.example" in s.names)   # Prefix /aaa/bbb/
    assert {(loc.modifier, loc.path) for loc in server.locations} == {("", "/"), ("", "/aaa/bbb/"), ("=", "/aaa/bbb")}


# -- hosts, classes, merging -----------------------------------------------------------------------

def test_wildcard_host_matches_exactly_one_label(cluster):
    cluster.apply(service("echo") + [ingress("wild", [rule("*.foo.com", ("/", "Prefix", "echo"))])])
    _, text = render_cluster(cluster)
    assert route(text, "bar.foo.com", "/") == "upstream default-echo-80"
    assert route(text, "baz.bar.foo.com", "/") == "upstream upstream-default-backend"
    assert route(text, "foo.com", "/") == "upstream upstream-default-backend"


def test_hosts_merge_across_ingresses_and_the_first_keeps_a_path(cluster):
    cluster.apply(service("a") + service("b") + [
        ingress("first", [rule("merge.example", ("/a", "Prefix", "a"), ("/same", "Exact", "a"))]),
        ingress("second", [rule("merge.example", ("/b", "Prefix", "b"), ("/same", "Exact", "b"))])])
    model, text = render_cluster(cluster)
    assert route(text, "merge.example", "/a/x") == "upstream default-a-80"
    assert route(text, "merge.example", "/b") == "upstream default-b-80"
    # both were created in the same second: namespace/name descending wins (sortIngressSlice)
    assert route(text, "merge.example", "/same") == "upstream default-b-80"
    overlap = [p for p in model.problems if p.reason == "PathOverlap"]
    assert [(p.name, p.message.split(":")[0]) for p in overlap] == [
        ("first", 'host "merge.example" and path "/same" are already defined in ingress default/second')]


def test_sort_order_is_creation_then_name_descending():
    def ing(name, ts):
        return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": ts}}
    ordered = sort_ingresses([ing("a", "2024-01-01T00:00:02Z"), ing("b", "2024-01-01T00:00:01Z"),
                              ing("c", "2024-01-01T00:00:02Z")])
    assert [i["metadata"]["name"] for i in ordered] == ["b", "c", "a"]


def test_class_selection():
    ours = {"metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "k8s.io/ingress-nginx"}}
    other = {"metadata": {"name": "traefik"}, "spec": {"controller": "traefik.io/ingress-controller"}}
    classes = {"nginx": ours, "traefik": other}

    def ing(spec=None, annotations=None):
        return {"metadata": {"name": "x", "annotations": annotations or {}}, "spec": spec or {}}
    assert is_our_class(ing({"ingressClassName": "nginx"}), classes)
    assert not is_our_class(ing({"ingressClassName": "traefik"}), classes)
    assert not is_our_class(ing({"ingressClassName": "missing"}), classes)
    assert is_our_class(ing(annotations={"kubernetes.io/ingress.class": "nginx"}), classes)
    assert not is_our_class(ing(annotations={"kubernetes.io/ingress.class": "traefik"}), classes)
    assert is_our_class(ing(), classes)                     # no class: the default class is ours
    not_default = {"nginx": {**ours, "metadata": {"name": "nginx"}}}
    assert not is_our_class(ing(), not_default)


def test_legacy_extensions_v1beta1_ingress_is_served(cluster):
    _, text = render_cluster(cluster)
    assert route(text, "api.ik8s.io", "/x") == "upstream default-api-80"   # test: serviceName/servicePort, no path
    assert route(text, "wap.ik8s.io", "/") == "upstream default-wap-80"
    assert route(text, "www.ilinux.io", "/") == "upstream default-api-80"   # the kubernetes.io/ingress.class annotation
    assert route(text, "nothing.example", "/") == "upstream upstream-default-backend"
    assert route(text, None, "/") == "upstream upstream-default-backend"
    assert route(text, "nothing.example", "/", port=443) == "upstream upstream-default-backend"


def test_default_backend_of_an_ingress(cluster):
    cluster.apply(service("fallback") + service("echo") + [
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "catch-all"},
         "spec": {"defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}}}},
        ingress("with-rules", [rule("rules.example", ("/x", "Prefix", "echo"))],
                defaultBackend={"service": {"name": "echo", "port": {"number": 80}}})])
    _, text = render_cluster(cluster)
    assert route(text, "unknown.example", "/") == "upstream default-fallback-80"   # no rules: the catch-all server
    assert route(text, "rules.example", "/other") == "upstream default-echo-80"    # its servers' root


def test_regex_mode_applies_to_every_location_of_the_host(cluster):
    cluster.apply(service("echo") + service("plain") + [
        ingress("rewrite", [rule("re.example", ("/something(/|$)(.*)", "ImplementationSpecific", "echo"))],
                {"nginx.ingress.kubernetes.io/rewrite-target": "/$2"}),
        ingress("plain", [rule("re.example", ("/plain", "Exact", "plain"))])])
    _, text = render_cluster(cluster)
    server = next(s for s in parse(text) if "re.example" in s.names)
    assert {(loc.modifier, loc.path) for loc in server.locations} >= {("~*", "^/something(/|$)(.*)"),
                                                                     ("~*", "^/plain"), ("~*", "^/")}
    location = next(loc for loc in server.locations if loc.path.startswith("^/something"))
    assert 'rewrite "(?i)/something(/|$)(.*)" /$2 break;' in location.directives
    assert route(text, "re.example", "/SOMETHING/else") == "upstream default-echo-80"   # case-insensitive


def test_upstreams_are_pod_ips_or_the_cluster_ip(cluster):
    cluster.apply(service("echo") + [ingress("direct", [rule("direct.example", ("/", "Prefix", "api"))]),
                                     ingress("svc", [rule("svc.example", ("/", "Prefix", "echo"))],
                                             {"nginx.ingress.kubernetes.io/service-upstream": "true"})])
    model, _ = render_cluster(cluster)
    pods = sorted(p["status"]["podIP"] for p in cluster.get("Pod") if p["metadata"]["labels"].get("app") == "api")
    assert sorted(e.address for e in model.upstreams["default-api-80"].endpoints) == pods
    assert [(e.address, e.port) for e in model.upstreams["default-api-80"].endpoints][0][1] == 80
    echo = cluster.get("Service", "echo")["spec"]["clusterIP"]
    assert [(e.address, e.port) for e in model.upstreams["default-echo-80"].endpoints] == [(echo, 80)]


@needs_nginx
def test_a_backend_without_endpoints_answers_503(cluster, tmp_path):
    cluster.apply([ingress("nosvc", [rule("nosvc.example", ("/", "Prefix", "missing"))])])
    model, text = render_cluster(cluster, conf_dir=str(tmp_path), state_dir=str(tmp_path))
    assert route(text, "nosvc.example", "/") == "upstream default-missing-80"
    assert "endpoints/default-missing-80" not in nginx.endpoint_files(model)   # the balancer answers 503
    assert nginx_test(model, text, tmp_path).returncode == 0
    assert any(p.reason == "ServiceUnavailable" and 'service "default/missing" not found' in p.message
               for p in model.problems)


# -- TLS -------------------------------------------------------------------------------------------

def tls_secret(name, hosts, namespace="default"):
    cert, key = self_signed(hosts[0], hosts)
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"tls.crt": base64.b64encode(cert.encode()).decode(),
                     "tls.key": base64.b64encode(key.encode()).decode()}}


def test_tls_secret_gives_the_server_its_certificate_and_a_308_redirect(cluster):
    cluster.apply(tls_secret("wzlinux-secret", ["www.wzlinux.com"]))
    model, text = render_cluster(cluster)
    server = next(s for s in model.servers if s.hostname == "www.wzlinux.com")
    assert server.tls and server.certificate.file == "default-wzlinux-secret.pem"
    assert "ssl_certificate /etc/nginx/ssl/default-wzlinux-secret.pem;" in text
    block = text.split("## start server www.wzlinux.com")[1].split("## end server")[0]
    assert "return 308 https://$redirect_host$redirect_uri;" in block
    other = text.split("## start server www.ilinux.io")[1].split("## end server")[0]
    assert "return 308" not in other        # no TLS section: no redirect
    assert not any(p.reason == "TLSCertificateUnusable" for p in model.problems)


def test_ssl_redirect_false_turns_the_redirect_off(cluster):
    cluster.apply(tls_secret("wzlinux-secret", ["www.wzlinux.com"]))
    wz = cluster.get("Ingress", "wzlinux-ingress")
    wz["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}
    cluster.apply(wz)
    _, text = render_cluster(cluster)
    assert "return 308" not in text.split("## start server www.wzlinux.com")[1].split("## end server")[0]


def test_missing_or_bad_secret_falls_back_to_the_fake_certificate(cluster):
    model, _ = render_cluster(cluster)          # examples: wzlinux-secret does not exist
    server = next(s for s in model.servers if s.hostname == "www.wzlinux.com")
    assert server.tls and server.certificate is None
    assert any(p.reason == "TLSCertificateUnusable" and "secret not found" in p.message for p in model.problems)
    wrong = tls_secret("wzlinux-secret", ["other.example"])
    cluster.apply(wrong)
    model, _ = render_cluster(cluster)
    assert any("names other.example, not www.wzlinux.com" in p.message for p in model.problems)


def test_certificate_checks():
    secret = tls_secret("s", ["*.example.com"])
    assert certificate_from_secret(secret, "a.example.com")[0] is not None
    assert certificate_from_secret(secret, "a.b.example.com")[1].startswith("the certificate names")
    _, other_key = self_signed("x", ["x"])
    secret["data"]["tls.key"] = base64.b64encode(other_key.encode()).decode()
    assert certificate_from_secret(secret, "a.example.com")[1] == "tls.key does not match the certificate in tls.crt"
    secret["data"]["tls.crt"] = base64.b64encode(b"not a certificate").decode()
    assert "is not a PEM certificate" in certificate_from_secret(secret, "a.example.com")[1]
    assert names_host(("*.example.com",), "x.example.com") and not names_host(("*.example.com",), "example.com")
    fake = fake_certificate()
    assert FAKE_CN in fake.pem or "BEGIN CERTIFICATE" in fake.pem
    from cryptography import x509
    parsed = x509.load_pem_x509_certificate(fake.pem.encode())
    assert parsed.subject.rfc4514_string() == f"CN={FAKE_CN},O=Acme Co"


# -- annotations and the ConfigMap -----------------------------------------------------------------

def test_annotations_parse_with_defaults_and_warnings():
    config, warnings = parse_annotations({
        "nginx.ingress.kubernetes.io/rewrite-target": "/$2",
        "nginx.ingress.kubernetes.io/proxy-body-size": "huge",
        "nginx.ingress.kubernetes.io/enable-cors": "true",
        "nginx.ingress.kubernetes.io/cors-max-age": "600",
        "nginx.ingress.kubernetes.io/affinity": "cookie",
        "kubernetes.io/ingress.class": "nginx"}, Settings(proxy_body_size="50m"))
    assert config.rewrite_target == "/$2" and config.body_size == "50m"
    assert config.cors.max_age == 600 and config.cors.allow_origin == ("*",)
    assert warnings == [
        'annotation "nginx.ingress.kubernetes.io/affinity" is not supported by the testbed\'s controller: ignored',
        'annotation "nginx.ingress.kubernetes.io/proxy-body-size": invalid value "huge": must be a size such as 8m '
        "(0: no limit); ignored"]


def test_cors_and_body_size_render(cluster):
    cluster.apply(service("echo") + [ingress("cors", [rule("cors.example", ("/", "Prefix", "echo"))],
                                             {"nginx.ingress.kubernetes.io/enable-cors": "true",
                                              "nginx.ingress.kubernetes.io/cors-allow-origin": "https://a.example",
                                              "nginx.ingress.kubernetes.io/cors-allow-credentials": "false",
                                              "nginx.ingress.kubernetes.io/proxy-body-size": "2m"})])
    _, text = render_cluster(cluster)
    block = text.split("## start server cors.example")[1].split("## end server")[0]
    assert "if ($http_origin ~* ((https://a\\.example))$ ) { set $cors 'true'; }" in block
    assert "Access-Control-Allow-Credentials" not in block
    assert "add_header 'Access-Control-Max-Age' '1728000' always;" in block
    assert "return 204;" in block and "client_max_body_size 2m;" in block


def test_the_seed_configmap_maps_onto_nginx(cluster):
    data = cluster.get("ConfigMap", "nginx-configuration", namespace="ingress-nginx")["data"]
    settings = settings_from_configmap(data)
    assert settings.use_forwarded_headers and settings.compute_full_forwarded_for
    assert settings.proxy_body_size == "50m" and settings.large_client_header_buffers == "4 512k"
    assert settings.warnings == ()
    _, text = render_cluster(cluster)
    for line in ("real_ip_header X-Forwarded-For;", "set_real_ip_from 0.0.0.0/0;", "client_header_buffer_size 512k;",
                 "large_client_header_buffers 4 512k;", "client_body_buffer_size 128k;", "proxy_buffer_size 256k;",
                 "server_names_hash_bucket_size 128;", "map_hash_bucket_size 128;", "ssl_protocols TLSv1.2 TLSv1.3;",
                 "proxy_set_header X-Forwarded-For $full_x_forwarded_for;", "map $http_x_forwarded_proto $pass_access_scheme {",
                 "log_format upstreaminfo '[$the_real_ip] - $remote_user"):
        assert line in text, line
    bad = settings_from_configmap({"use-forwarded-headers": "maybe", "no-such-key": "1", "http-redirect-code": "399"})
    assert bad.use_forwarded_headers is False and bad.http_redirect_code == 308
    assert len(bad.warnings) == 3


def test_without_forwarded_headers_the_client_values_are_used():
    c = Cluster(network=False, seed=1, addons=["ingress"])
    c.apply(service("echo") + [ingress("x", [rule("x.example", ("/", "Prefix", "echo"))])])
    _, text = render_cluster(c)
    assert "real_ip_header" not in text and "proxy_set_header X-Forwarded-For $remote_addr;" in text
    assert "map '' $pass_access_scheme {" in text
