"""kubectl for the seed articles' Ingress workflow: `create secret tls`, `exec -it` accepted,
`describe ingress` with the controller's events, `get` of the add-on's objects."""
import base64
import re

import pytest

from testbed import Cluster
from testbed.errors import TestbedError
from testbed.ingress.tls import self_signed
from testbed.kubectl import Kubectl


@pytest.fixture
def kubectl():
    cluster = Cluster(network=False, seed=2)
    cluster.apply("examples/")
    return Kubectl(cluster)


def test_create_secret_tls_from_files(kubectl, tmp_path):
    cert, key = self_signed("www.wzlinux.com", ["www.wzlinux.com"])
    (tmp_path / "tls.crt").write_text(cert)
    (tmp_path / "tls.key").write_text(key)
    out = kubectl.run(["create", "secret", "tls", "wzlinux-secret", "--cert", str(tmp_path / "tls.crt"),
                       f"--key={tmp_path / 'tls.key'}"])
    assert out == "secret/wzlinux-secret created\n"
    secret = kubectl.cluster.get("Secret", "wzlinux-secret")
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]).decode() == cert
    with pytest.raises(TestbedError, match='secrets "wzlinux-secret" already exists'):
        kubectl.run(["create", "secret", "tls", "wzlinux-secret", f"--cert={tmp_path}/tls.crt",
                     f"--key={tmp_path}/tls.key"])
    with pytest.raises(TestbedError, match="--key is required"):
        kubectl.run(["create", "secret", "tls", "other", f"--cert={tmp_path}/tls.crt"])
    with pytest.raises(TestbedError, match="open /nope"):
        kubectl.run(["create", "secret", "tls", "other", "--cert=/nope", f"--key={tmp_path}/tls.key"])
    assert "secret/wzlinux-secret" not in kubectl.run(["create", "-f", "examples/myapp.yaml"])   # -f is still apply


def test_exec_accepts_it_flags(kubectl):
    with pytest.raises(TestbedError) as caught:   # no network: the flags parse, the pod does not run
        kubectl.run(["exec", "-it", "nosuch", "-n", "ingress-nginx", "--", "cat", "/etc/nginx/nginx.conf"])
    assert "NotFound" in str(caught.value) and "interactive" not in str(caught.value)


def test_describe_ingress_shows_rules_backends_and_controller_events(kubectl):
    ingress = kubectl.cluster.get("Ingress", "test")
    kubectl.cluster.control_plane.record_event(ingress, "Normal", "Sync", "Scheduled for sync")
    kubectl.cluster.control_plane.record_event(ingress, "Warning", "RELOAD", "Error reloading NGINX: ...")
    text = kubectl.run(["describe", "ingress", "test"])
    assert re.search(r"^\s+api\.ik8s\.io\s*$", text, re.M) and re.search(r"^\s+api:80 \(10\.244\.", text, re.M)
    assert re.search(r"Normal\s+Sync\s+\S+\s+nginx-ingress-controller\s+Scheduled for sync", text)
    assert re.search(r"Warning\s+RELOAD\s+\S+\s+nginx-ingress-controller\s+Error reloading NGINX", text)


def test_the_add_on_objects(kubectl):
    assert re.search(r"^ingress-nginx-controller\s+LoadBalancer\s+\S+\s+172\.18\.255\.250\s+80:\d+/TCP,443:\d+/TCP",
                     kubectl.run(["get", "svc", "-n", "ingress-nginx"]), re.M)
    assert re.search(r"^nginx\s+k8s\.io/ingress-nginx", kubectl.run(["get", "ingressclass"]), re.M)
    assert "ingress-nginx-controller" in kubectl.run(["get", "deploy", "-n", "ingress-nginx"])
    without = Kubectl(Cluster(network=False, addons=["dns"]))
    assert "ingress-nginx" not in without.run(["get", "ns"])
