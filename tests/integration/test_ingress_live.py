"""The ingress controller with real HTTP from the external host, in every proxy mode: the seed
articles' Ingresses (virtual hosts, the single-service Ingress, TLS), the Kubernetes docs' path
matching table, wildcard hosts, TLS by SNI and the fake certificate, the redirect code, the headers,
the annotations, the ConfigMap, a broken Ingress leaving the others serving, endpoint changes."""
import json
import re
import shlex

import pytest

from testbed.timescale import scaled

from testbed import Cluster
from testbed.ingress.tls import FAKE_CN, self_signed
from testbed.kubectl import Kubectl
from tests.integration.conftest import skip_unless_runnable
from tests.unit.test_ingress import PATH_TABLE

EXTERNAL_IP = "172.18.0.100"
A = "nginx.ingress.kubernetes.io/"


def deployment(name, replicas=1, port=80):
    labels = {"app": name}
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
             "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                      "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                          {"name": name, "image": "nginx", "ports": [{"containerPort": port}]}]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
             "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": port}]}}]


def ingress(name, host, paths, annotations=None, **spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"rules": [{"host": host, "http": {"paths": [
                {"path": p, "pathType": t, "backend": {"service": {"name": s, "port": {"number": 80}}}}
                for p, t, s in paths]}}], **spec}}


def objects():
    docs = [d for name in ("s1", "s2", "s3") for d in deployment(name)]
    docs += [ingress(f"row{i}", f"row{i}.example", paths) for i, (paths, _, _) in enumerate(PATH_TABLE)]
    docs += [ingress("wild", "*.wild.example", [("/", "Prefix", "s1")]),
             ingress("rewrite", "rewrite.example", [("/something(/|$)(.*)", "ImplementationSpecific", "s2")],
                     {A + "rewrite-target": "/$2"}),
             ingress("cors", "cors.example", [("/", "Prefix", "s1")],
                     {A + "enable-cors": "true", A + "cors-allow-origin": "https://app.example",
                      A + "cors-max-age": "600"}),
             ingress("body", "body.example", [("/", "Prefix", "s1")], {A + "proxy-body-size": "1k"}),
             ingress("unknown", "unknown.example", [("/", "Prefix", "s3")], {A + "no-such-annotation": "x"}),
             ingress("svcup", "svcup.example", [("/", "Prefix", "s3-vip")], {A + "service-upstream": "true"})]
    # its own Service: an upstream is shared by every Ingress naming the Service, and the first
    # Ingress to name it decides whether it holds the endpoints or the ClusterIP (as in ingress-nginx)
    docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s3-vip"},
                 "spec": {"selector": {"app": "s3"}, "ports": [{"port": 80}]}})
    return docs


@pytest.fixture(scope="module")
def cluster(proxy_mode):
    skip_unless_runnable(proxy_mode)
    with Cluster(topo="default", proxy_mode=proxy_mode, seed=21) as c:
        c.apply("examples/")
        c.apply(objects())
        yield c


@pytest.fixture(scope="module")
def ip(cluster):
    return cluster.get("ingress", "test")["status"]["loadBalancer"]["ingress"][0]["ip"]


def curl(cluster, args: str) -> str:
    return cluster.external().cmd(f"curl -s -m {scaled(5):g} {args}").strip()


def response(cluster, args: str) -> str:
    """Status line and headers (`curl -i`/`-I`) as plain text: through a pipe, so curl does not
    style them for the pty Mininet's shell runs in, and with CRLF as LF."""
    return cluster.external().cmd(f"curl -s -m {scaled(5):g} {args} | cat").replace("\r", "")


def echo(cluster, ip, host, path="/", extra="") -> dict:
    text = curl(cluster, f"-H {shlex.quote('Host: ' + host)} {extra} http://{ip}{path}")
    return json.loads(text)


def status(cluster, ip, host, path="/", extra="", scheme="http") -> str:
    if scheme == "https":
        return curl(cluster, f"-k -o /dev/null -w '%{{http_code}}' --resolve {host}:443:{ip} {extra} https://{host}{path}")
    return curl(cluster, f"-o /dev/null -w '%{{http_code}}' -H {shlex.quote('Host: ' + host)} {extra} http://{ip}{path}")


def test_the_seed_ingresses_from_the_external_host(cluster, ip, tmp_path):
    kubectl = Kubectl(cluster)
    assert re.search(rf"^test\s+<none>\s+api.ik8s.io,wap.ik8s.io\s+{re.escape(ip)}\s+80\s", kubectl.run(["get", "ingress"]),
                     re.M)
    for host, app in (("api.ik8s.io", "api-"), ("wap.ik8s.io", "wap-"), ("www.ilinux.io", "api-"),
                      ("www.wzlinux.com", "wap-")):
        if host == "www.wzlinux.com":   # TLS host: plain HTTP is redirected
            answer = json.loads(curl(cluster, f"-k --resolve {host}:443:{ip} https://{host}/"))
        else:
            answer = echo(cluster, ip, host, "/hostname-check")
        assert answer["pod"].startswith(app), (host, answer)
    # both replicas of api serve through the ingress
    assert len({echo(cluster, ip, "api.ik8s.io")["pod"] for _ in range(20)}) == 2
    # TLS: the fake certificate while wzlinux-secret is missing, then the Secret's by SNI
    verbose = cluster.external().cmd(
        f"curl -skv -m {scaled(5):g} --resolve www.wzlinux.com:443:{ip} https://www.wzlinux.com/ 2>&1")
    assert FAKE_CN in verbose
    describe = kubectl.run(["describe", "ingress", "wzlinux-ingress"])
    assert 'secret "default/wzlinux-secret" for host "www.wzlinux.com": secret not found' in describe
    cert, key = self_signed("www.wzlinux.com", ["www.wzlinux.com"])
    (tmp_path / "tls.crt").write_text(cert)
    (tmp_path / "tls.key").write_text(key)
    assert kubectl.run(["create", "secret", "tls", "wzlinux-secret", f"--cert={tmp_path}/tls.crt",
                        f"--key={tmp_path}/tls.key"]) == "secret/wzlinux-secret created\n"
    cluster.external().cmd(f"cat > /tmp/tb-wz-ca.pem <<'EOF'\n{cert}EOF")
    verified = curl(cluster, f"--cacert /tmp/tb-wz-ca.pem --resolve www.wzlinux.com:443:{ip} https://www.wzlinux.com/")
    cluster.external().cmd("rm -f /tmp/tb-wz-ca.pem")
    assert json.loads(verified)["pod"].startswith("wap-")
    # a TLS host redirects plain HTTP with 308 to https://host (no trailing slash), others do not
    redirect = response(cluster, f"-I -H 'Host: www.wzlinux.com' http://{ip}/")
    assert redirect.startswith("HTTP/1.1 308") and "\nLocation: https://www.wzlinux.com\n" in redirect
    assert status(cluster, ip, "api.ik8s.io") == "200"
    # the articles' workflow: pods, the rendered nginx.conf inside the controller pod, describe
    pods = kubectl.run(["get", "pods", "-n", "ingress-nginx", "-o", "wide"])
    controller = re.search(r"^(ingress-nginx-controller-\S+)\s+1/1\s+Running", pods, re.M).group(1)
    conf = kubectl.run(["exec", "-it", controller, "-n", "ingress-nginx", "--", "cat", "/etc/nginx/nginx.conf"])
    assert conf.startswith("# Configuration checksum: ") and "server_name www.wzlinux.com ;" in conf
    assert "ssl_certificate /etc/nginx/ssl/default-wzlinux-secret.pem;" in conf
    describe = kubectl.run(["describe", "ingress", "test"])
    assert re.search(r"^\s+api\.ik8s\.io\s*$", describe, re.M) and re.search(r"^\s+api:80 \(10\.244\.", describe, re.M)
    assert re.search(r"Normal\s+Sync\s+\S+\s+nginx-ingress-controller\s+Scheduled for sync", describe)
    assert f"Address:          {ip}" in describe or re.search(rf"^Address:\s+{re.escape(ip)}$", describe, re.M)


def test_default_server_answers_404_for_http_and_https(cluster, ip):
    assert status(cluster, ip, "nobody.example") == "404"
    assert status(cluster, ip, "nobody.example", scheme="https") == "404"
    assert curl(cluster, f"-0 -o /dev/null -w '%{{http_code}}' -H 'Host:' http://{ip}/") == "404"   # no Host header


@pytest.mark.parametrize("row", range(len(PATH_TABLE)))
def test_kubernetes_path_matching_table(cluster, ip, row):
    paths, request, expected = PATH_TABLE[row]
    if expected is None:
        assert status(cluster, ip, f"row{row}.example", request) == "404", (paths, request)
    else:
        assert echo(cluster, ip, f"row{row}.example", request)["pod"].startswith(expected + "-"), (paths, request)


def test_wildcard_host_matches_exactly_one_label(cluster, ip):
    assert echo(cluster, ip, "a.wild.example")["pod"].startswith("s1-")
    assert status(cluster, ip, "a.b.wild.example") == "404"
    assert status(cluster, ip, "wild.example") == "404"


def test_headers_as_ingress_nginx_sets_them(cluster, ip):
    # the seed ConfigMap sets use-forwarded-headers and compute-full-forwarded-for
    headers = echo(cluster, ip, "api.ik8s.io", "/h")["headers"]
    assert headers["X-Real-IP"] == EXTERNAL_IP and headers["X-Forwarded-For"] == EXTERNAL_IP
    assert headers["X-Forwarded-Host"] == "api.ik8s.io" and headers["X-Forwarded-Port"] == "80"
    assert headers["X-Forwarded-Proto"] == "http" and headers["X-Forwarded-Scheme"] == "http"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])
    given = echo(cluster, ip, "api.ik8s.io", "/h", "-H 'X-Request-ID: abc-123'")["headers"]
    assert given["X-Request-ID"] == "abc-123"
    trusted = echo(cluster, ip, "api.ik8s.io", "/h", "-H 'X-Forwarded-For: 1.2.3.4' -H 'X-Forwarded-Proto: https' "
                   "-H 'X-Forwarded-Host: public.example' -H 'X-Forwarded-Port: 8443'")["headers"]
    assert trusted["X-Real-IP"] == "1.2.3.4" and trusted["X-Forwarded-For"] == f"1.2.3.4, {EXTERNAL_IP}"
    assert trusted["X-Forwarded-Proto"] == "https" and trusted["X-Forwarded-Host"] == "public.example"
    assert trusted["X-Forwarded-Port"] == "8443"
    https = json.loads(curl(cluster, f"-k --resolve api.ik8s.io:443:{ip} https://api.ik8s.io/h"))["headers"]
    assert https["X-Forwarded-Proto"] == "https" and https["X-Forwarded-Port"] == "443"
    # without use-forwarded-headers the client's X-Forwarded-* are not trusted
    configmap = cluster.get("ConfigMap", "nginx-configuration", namespace="ingress-nginx")
    data = dict(configmap["data"])
    configmap["data"] = {**data, "use-forwarded-headers": "false"}
    cluster.apply(configmap)
    try:
        untrusted = echo(cluster, ip, "api.ik8s.io", "/h", "-H 'X-Forwarded-For: 1.2.3.4' "
                         "-H 'X-Forwarded-Proto: https'")["headers"]
        assert untrusted["X-Real-IP"] == EXTERNAL_IP and untrusted["X-Forwarded-For"] == EXTERNAL_IP
        assert untrusted["X-Forwarded-Proto"] == "http"
        assert untrusted["X-Original-Forwarded-For"] == "1.2.3.4"
    finally:
        configmap["data"] = data
        cluster.apply(configmap)


def test_annotations(cluster, ip):
    kubectl = Kubectl(cluster)
    # rewrite-target with capture groups
    assert echo(cluster, ip, "rewrite.example", "/something/new/path")["path"] == "/new/path"
    assert echo(cluster, ip, "rewrite.example", "/something")["path"] == "/"
    # CORS: preflight answered by nginx with 204, simple requests carry the headers
    preflight = response(cluster, f"-i -X OPTIONS -H 'Host: cors.example' -H 'Origin: https://app.example' "
                                  f"http://{ip}/")
    assert preflight.startswith("HTTP/1.1 204")
    assert "Access-Control-Allow-Origin: https://app.example" in preflight
    assert "Access-Control-Max-Age: 600" in preflight and "Access-Control-Allow-Credentials: true" in preflight
    simple = response(cluster, f"-i -H 'Host: cors.example' -H 'Origin: https://app.example' http://{ip}/")
    assert "Access-Control-Allow-Origin: https://app.example" in simple and '"pod": "s1-' in simple
    other = response(cluster, f"-i -H 'Host: cors.example' -H 'Origin: https://evil.example' http://{ip}/")
    assert "Access-Control-Allow-Origin" not in other
    # proxy-body-size
    assert status(cluster, ip, "body.example", "/", "-X POST --data-binary @/etc/services") == "413"
    assert status(cluster, ip, "body.example", "/", "-X POST --data-binary 'small'") == "200"
    # ssl-redirect: "false" turns the redirect of a TLS host off
    wz = cluster.get("ingress", "wzlinux-ingress")
    wz["metadata"]["annotations"] = {A + "ssl-redirect": "false"}
    cluster.apply(wz)
    assert status(cluster, ip, "www.wzlinux.com") == "200"
    wz["metadata"]["annotations"] = {}
    cluster.apply(wz)
    assert status(cluster, ip, "www.wzlinux.com") == "308"
    # an unknown annotation is ignored with a warning
    assert 'annotation "nginx.ingress.kubernetes.io/no-such-annotation" is not supported' in \
        kubectl.run(["describe", "ingress", "unknown"])
    assert echo(cluster, ip, "unknown.example")["pod"].startswith("s3-")
    # service-upstream: nginx proxies to the ClusterIP, the Service picks the pod
    peers = cluster.exec(_controller(cluster), "cat /etc/nginx/endpoints/default-s3-vip-80", namespace="ingress-nginx")
    cluster_ip = cluster.get("svc", "s3-vip")["spec"]["clusterIP"]
    assert peers.split() == [f"{cluster_ip}:80", "1"]
    assert echo(cluster, ip, "svcup.example")["pod"].startswith("s3-")


def _controller(cluster) -> str:
    return cluster.get("pods", namespace="ingress-nginx")[0]["metadata"]["name"]


def test_a_broken_ingress_leaves_the_others_serving(cluster, ip):
    kubectl = Kubectl(cluster)
    cluster.apply(ingress("broken", "broken.example", [("/foo(", "ImplementationSpecific", "s1")],
                          {A + "use-regex": "true"}))
    describe = kubectl.run(["describe", "ingress", "broken"])
    assert re.search(r"Warning\s+RELOAD\s+\S+\s+nginx-ingress-controller\s+Error reloading NGINX", describe)
    assert "pcre" in describe.lower()
    assert status(cluster, ip, "broken.example", "/foo") == "404"      # not served
    assert echo(cluster, ip, "api.ik8s.io")["pod"].startswith("api-")  # the others are
    assert "Error reloading NGINX" in cluster.logs(_controller(cluster), namespace="ingress-nginx")
    # a good change after the broken one is still applied
    cluster.apply(ingress("after", "after.example", [("/", "Prefix", "s2")]))
    assert echo(cluster, ip, "after.example")["pod"].startswith("s2-")
    cluster.delete("ingress", "broken")
    assert status(cluster, ip, "after.example") == "200"


def test_endpoint_changes_reach_nginx_without_a_reload(cluster, ip):
    controller = cluster.emulation.addon_components["ingress"]
    reloads = len(controller.reload_seconds)
    conf = cluster.exec(_controller(cluster), "cat /etc/nginx/nginx.conf", namespace="ingress-nginx")
    cluster.scale("deployment", "s2", 3)
    pods = {p["metadata"]["name"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("s2-")}
    seen = {echo(cluster, ip, "row15.example", "/aaa/ccc")["pod"] for _ in range(40)}
    assert seen == pods
    assert len(controller.reload_seconds) == reloads          # the balancer's files changed, not nginx.conf
    assert cluster.exec(_controller(cluster), "cat /etc/nginx/nginx.conf", namespace="ingress-nginx") == conf
    cluster.scale("deployment", "s2", 1)
    assert len({echo(cluster, ip, "row15.example", "/aaa/ccc")["pod"] for _ in range(6)}) == 1
