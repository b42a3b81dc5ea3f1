"""`version` and `cluster-info`, after k8s.io/kubectl/pkg/cmd/version/version.go and
pkg/cmd/clusterinfo/clusterinfo.go.

The server's version is the one the testbed's Nodes report (status.nodeInfo.kubeletVersion, the
kubelet and API server of one release); the testbed's kubectl is built for that cluster, so it
reports the same client version. kubectl also prints a `Kustomize Version` line: the testbed has no
kustomize (`-k`), so that line is left out rather than invented.

The API server address is the one a client inside the cluster uses: the `kubernetes` Service
(https://10.96.0.1:443 by default), as kubectl's in-cluster configuration builds it from
KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT; the testbed's control plane has no other
address.
"""
from __future__ import annotations

import json
import re

from ..errors import TestbedError
from .common import OUTPUT, lines
from .flags import HELP, NAMESPACE, Flag, parse_flags
from .format import dump_yaml

CLUSTER_SERVICE_LABEL = "kubernetes.io/cluster-service"
PLATFORM = "linux/amd64"


class InfoCommands:
    """Mixed into Kubectl: uses its cluster."""

    def version(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [HELP, OUTPUT, Flag("client", takes_value=False)])
        if parsed.args:
            raise TestbedError(f"error: extra arguments: [{' '.join(parsed.args)}]")
        output = parsed.get("output") or ""
        if output not in ("", "yaml", "json"):
            raise TestbedError("error: --output must be 'yaml' or 'json'")
        server = self._server_version()
        info = {"clientVersion": _version_info(server)}
        if not parsed.get("client"):
            info["serverVersion"] = _version_info(server)
        if output == "json":   # json.MarshalIndent of the struct: field order, two spaces
            return json.dumps(info, indent=2) + "\n"
        if output == "yaml":
            return dump_yaml(info) + "\n"
        return lines([f"Client Version: {server}"] + ([] if parsed.get("client") else [f"Server Version: {server}"]))

    def _server_version(self) -> str:
        nodes = self.cluster.get("Node", None, namespace=None)
        versions = [((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") for n in nodes]
        return next((v for v in versions if v), "v0.0.0-unknown")

    def cluster_info(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [HELP, NAMESPACE])
        if parsed.args:
            if parsed.args[0] == "dump":
                raise TestbedError("error: cluster-info dump is not supported by the testbed: use get -A -o yaml "
                                   "and describe")
            raise TestbedError(f'error: unknown command "{parsed.args[0]}" for "kubectl cluster-info"')
        namespace = parsed.get("namespace") or "kube-system"
        host = self._api_server_address()
        out = [f"Kubernetes control plane is running at {host}"]
        for service in self.cluster.get("Service", None, namespace=namespace):
            labels = service["metadata"].get("labels") or {}
            if labels.get(CLUSTER_SERVICE_LABEL) != "true":
                continue
            out.append(f"{labels.get('kubernetes.io/name') or service['metadata']['name']} is running at "
                       f"{_service_link(host, service)}")
        return lines(out) + "\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n"

    def _api_server_address(self) -> str:
        service = self.cluster.get("Service", "kubernetes", namespace="default")
        port = next((p["port"] for p in service["spec"].get("ports") or [] if p.get("name") == "https"), 443)
        return f"https://{service['spec']['clusterIP']}:{port}"


def _version_info(git_version: str) -> dict:
    """apimachinery's version.Info; the build fields the testbed does not have stay empty."""
    match = re.match(r"v(\d+)\.(\d+)", git_version)
    major, minor = match.groups() if match else ("", "")
    return {"major": major, "minor": minor, "gitVersion": git_version, "gitCommit": "", "gitTreeState": "",
            "buildDate": "", "goVersion": "", "compiler": "", "platform": PLATFORM}


def _service_link(host: str, service: dict) -> str:
    """clusterinfo.go: a LoadBalancer's http://IP:PORT for each port, else the API server's proxy
    path `<scheme>:<name>:<port name>` (utilnet.JoinSchemeNamePort)."""
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ports = service["spec"].get("ports") or []
    if ingress:
        address = ingress[0].get("ip") or ingress[0].get("hostname")
        return "".join(f"http://{address}:{p['port']} " for p in ports)
    name = service["metadata"]["name"]
    if ports:
        port_name = ports[0].get("name") or ""
        scheme = "https" if port_name == "https" or ports[0].get("port") == 443 else ""
        if scheme:
            name = f"{scheme}:{name}:{port_name}"
        elif port_name:
            name = f"{name}:{port_name}"
    return f"{host}/api/v1/namespaces/{service['metadata']['namespace']}/services/{name}/proxy"
