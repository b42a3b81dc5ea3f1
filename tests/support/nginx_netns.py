"""Real nginx on rendered configurations without a cluster: a throwaway network namespace with
echo servers on 127.0.0.1 (one port per backend) and nginx running the controller's rendered
nginx.conf (prefix, pid, temp files and certificates in a temporary directory; nothing of the
host's /etc/nginx, nothing on the host's ports). Configurations come from a network=False
cluster whose Endpoints point at those ports, and are reloaded with SIGHUP as the controller does.

`GatewayCluster` lets the live Gateway API tests (tests/integration/test_ingress_gateway_live.py)
run unchanged against it: apply/delete re-render and reload, status is written as the controller
writes it, `external().cmd` runs in the namespace."""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed import Cluster
from testbed.ingress import nginx
from testbed.ingress.controller import reloaded, worker_pids
from testbed.ingress.gateway import gateway_servers
from testbed.ingress.model import build_model
from testbed.ingress.settings import settings_from_configmap
from testbed.ingress.tls import self_signed

ECHO = Path(__file__).resolve().parent.parent.parent / "testbed" / "workloads" / "echo_server.py"
GATEWAY_KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant")


def local_service(name: str, port: int, namespace: str = "default", service_port: int = 80) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
             "spec": {"ports": [{"port": service_port, "targetPort": port}]}},
            {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace},
             "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": port}]}]}]


class NginxNamespace:
    def __init__(self, backends: dict[str, tuple[int, str]]):
        """backends: pod name -> (port, namespace) of an echo server."""
        self.name = f"tbngx{os.getpid()}"
        self._run(["ip", "netns", "add", self.name])
        self._run(["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"])
        self.dir = Path(tempfile.mkdtemp(prefix="tb-nginx-"))
        os.chmod(self.dir, 0o755)   # nginx's workers (user nobody) read the balancer's files
        (self.dir / "ssl").mkdir()
        self.processes = [subprocess.Popen(
            ["ip", "netns", "exec", self.name, sys.executable, "-I", "-S", str(ECHO), "--pod", pod,
             "--namespace", namespace, "--tcp", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pod, (port, namespace) in backends.items()]
        self.nginx: subprocess.Popen | None = None
        deadline = time.monotonic() + 10
        for port, _ in backends.values():
            while time.monotonic() < deadline and self.cmd(f"curl -s -m 1 -o /dev/null -w '%{{http_code}}' "
                                                           f"http://127.0.0.1:{port}/") != "200":
                time.sleep(0.05)

    @staticmethod
    def _run(args: list[str]) -> None:
        subprocess.run(args, check=True, capture_output=True)

    def cmd(self, command: str) -> str:
        return subprocess.run(["ip", "netns", "exec", self.name, "sh", "-c", command], capture_output=True,
                              text=True).stdout.strip()

    def load(self, cluster: Cluster):
        """Render like the controller, nginx -t, start or reload; returns (model, text, status, problems)."""
        ingress_namespace = cluster.get("ConfigMap", namespace="ingress-nginx") \
            if any(n["metadata"]["name"] == "ingress-nginx" for n in cluster.get("Namespace", namespace=None)) else []
        configmap = next((c for c in ingress_namespace if c["metadata"]["name"] == "nginx-configuration"), None)
        from testbed.ingress.model import ClusterObjects
        objects = ClusterObjects(cluster.get("Ingress", namespace=None), cluster.get("IngressClass", namespace=None),
                                 cluster.get("Service", namespace=None), cluster.get("EndpointSlice", namespace=None),
                                 cluster.get("Secret", namespace=None), configmap)
        model = build_model(objects, settings_from_configmap((configmap or {}).get("data")))
        gateway_objects = {k: cluster.get(k, namespace=None) for k in GATEWAY_KINDS}
        extra, status, problems = gateway_servers(gateway_objects, objects, model, "127.0.0.1",
                                                  cluster.get("Namespace", namespace=None))
        text = nginx.render(model, conf_dir=str(self.dir), state_dir=str(self.dir), extra_servers=extra)
        text = text.replace("access_log /dev/stdout", f"access_log {self.dir}/access.log")
        for file, certificate in model.certificates.items():
            (self.dir / "ssl" / file).write_text(certificate.pem)
        for path in (self.dir / "endpoints").glob("*"):
            path.unlink()
        for relative, content in nginx.support_files(model, str(self.dir)).items():
            (self.dir / relative).parent.mkdir(parents=True, exist_ok=True)
            (self.dir / relative).write_text(content)
        (self.dir / "nginx.conf").write_text(text)
        check = subprocess.run(["ip", "netns", "exec", self.name, "nginx", "-t", "-p", str(self.dir), "-c",
                                str(self.dir / "nginx.conf")], capture_output=True, text=True)
        if check.returncode != 0:
            raise AssertionError(check.stderr)
        if self.nginx is None:
            self.nginx = subprocess.Popen(["ip", "netns", "exec", self.name, "nginx", "-p", str(self.dir), "-c",
                                           str(self.dir / "nginx.conf")],
                                          stdout=open(self.dir / "nginx.log", "a"), stderr=subprocess.STDOUT)
            old_workers: set[int] = set()
        else:
            old_workers = worker_pids(self.nginx.pid)
            self.nginx.send_signal(1)   # SIGHUP: reload, as the controller does
        checksum = nginx.config_checksum(text)
        deadline = time.monotonic() + 10
        while not reloaded(self.nginx.pid, old_workers) or \
                self.cmd(f"curl -s -m 1 http://127.0.0.1:{nginx.STATUS_PORT}/configuration/checksum") != checksum:
            if time.monotonic() > deadline:
                raise TimeoutError((self.dir / "nginx.log").read_text()[-2000:])
            time.sleep(0.02)
        return model, text, status, problems

    def close(self) -> None:
        for process in self.processes + ([self.nginx] if self.nginx else []):
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class _External:
    def __init__(self, namespace: NginxNamespace, address: str):
        self.namespace, self.address = namespace, address

    def cmd(self, command: str) -> str:
        return self.namespace.cmd(command.replace(self.address, "127.0.0.1")) + "\n"


class GatewayCluster:
    """What the live Gateway tests use of a Cluster, over NginxNamespace."""
    ADDRESS = "172.18.255.250"

    def __init__(self, namespace: NginxNamespace, conformance_namespace: str, gateways: list[dict]):
        self.ns = namespace
        self.cluster = Cluster(network=False, seed=3, addons=["ingress"])
        cert, key = self_signed("example.org", ["example.org", "second-example.org", "*.wildcard-example.org"])
        self.cert = cert
        docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": conformance_namespace}}]
        for i, version in enumerate(("v1", "v2", "v3")):
            docs += local_service(f"infra-backend-{version}", 8086 + i, conformance_namespace, 8080)
        docs.append({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                     "metadata": {"name": "tls-validity-checks-certificate", "namespace": conformance_namespace},
                     "data": {"tls.crt": base64.b64encode(cert.encode()).decode(),
                              "tls.key": base64.b64encode(key.encode()).decode()}})
        self.apply(docs + gateways)

    def _sync(self) -> None:
        _, _, status, self.problems = self.ns.load(self.cluster)
        for (kind, namespace, name), value in status.items():
            self.cluster.control_plane.update_status(kind, namespace, name, value)

    def apply(self, docs) -> None:
        self.cluster.apply(docs)
        self._sync()

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        self.cluster.delete(kind, name, namespace)
        self._sync()

    def get(self, *args, **kwargs):
        return self.cluster.get(*args, **kwargs)

    def external(self) -> _External:
        return _External(self.ns, self.ADDRESS)
