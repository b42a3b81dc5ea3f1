"""The objects `kubectl run`, `kubectl create deployment` and `kubectl run --expose` generate.

Two generations of `kubectl run` live here, because the seed articles predate kubectl 1.18:
- before 1.18, `run` chose a generator (k8s.io/kubectl/pkg/generate/versioned/run.go, removed in
  1.18): with the default `--restart=Always` it made a Deployment (`deployment/apps.v1`: labels
  `run=NAME` on the Deployment, its selector and its pod template); `--restart=Never` made a Pod
  (`run-pod/v1`); `run/v1` made a ReplicationController;
- since 1.18, `run` makes a Pod only (k8s.io/kubectl/pkg/cmd/run, createPod).
The testbed follows the old generator when the command line names one (`--generator`) or uses an
option only the old kubectl had (`--replicas`), and today's kubectl otherwise.

`create deployment` is k8s.io/kubectl/pkg/cmd/create/create_deployment.go (labels `app=NAME`).
`as_printed` adds the zero values Go's encoder writes (`creationTimestamp: null`, `resources: {}`,
`status: {}`), so `--dry-run=client -o yaml` prints what kubectl prints. Pure.
"""
from __future__ import annotations

import copy
import re
import secrets
from dataclasses import dataclass, field

from ..errors import TestbedError

DEPLOYMENT_GENERATOR = "deployment/apps.v1"
POD_GENERATOR = "run-pod/v1"
RC_GENERATOR = "run/v1"
RUN_GENERATORS = (DEPLOYMENT_GENERATOR, POD_GENERATOR, RC_GENERATOR)
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
ENV_VAR_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")   # validation.IsEnvVarName

# github.com/distribution/reference's ReferenceRegexp, which `kubectl run` checks --image against.
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|[-]+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
IMAGE_REFERENCE = re.compile(rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
                             r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$")


@dataclass
class RunSpec:
    """What `kubectl run NAME ...` was asked for, parsed and checked."""
    name: str
    image: str
    labels: dict[str, str] | None = None        # None: run=NAME
    annotations: dict[str, str] = field(default_factory=dict)
    env: list[dict] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)   # what follows `--`
    command: bool = False                       # the arguments are the command, not args
    port: int | None = None
    image_pull_policy: str = ""
    restart: str = "Always"
    replicas: int = 1

    @property
    def pod_labels(self) -> dict[str, str]:
        return dict(self.labels) if self.labels else {"run": self.name}


def check_image(image: str) -> None:
    if not image:
        raise TestbedError("error: --image is required")
    if not IMAGE_REFERENCE.match(image):
        raise TestbedError(f'error: invalid image name "{image}": invalid reference format')


def parse_run_labels(text: str) -> dict[str, str] | None:
    """run.go parseLabels: `k=v,k2=v2`."""
    if not text:
        return None
    labels = {}
    for spec in text.split(","):
        parts = spec.split("=")
        if len(parts) != 2:
            raise TestbedError(f"error: unexpected label spec: {spec}")
        if not parts[0]:
            raise TestbedError("error: unexpected empty label key")
        labels[parts[0]] = parts[1]
    return labels


def parse_env(values: list[str]) -> list[dict]:
    """run.go parseEnvs: NAME=VALUE, NAME a valid environment variable name."""
    env = []
    for value in values:
        name, equals, text = value.partition("=")
        if not equals or not name or not ENV_VAR_NAME.match(name):
            raise TestbedError(f"error: invalid env: {value}")
        env.append({"name": name, "value": text})
    return env


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value and value not in choices:
        raise TestbedError(f"error: invalid {what}: {value}, valid values are: {', '.join(choices)}")
    return value


def _container(spec: RunSpec) -> dict:
    container: dict = {"name": spec.name, "image": spec.image}
    if spec.arguments:
        container["command" if spec.command else "args"] = list(spec.arguments)
    if spec.env:
        container["env"] = copy.deepcopy(spec.env)
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    if spec.port is not None:
        container["ports"] = [{"containerPort": spec.port}]
    return container


def _metadata(name: str, labels: dict, annotations: dict | None = None) -> dict:
    metadata: dict = {"name": name, "labels": dict(labels)}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


def run_pod(spec: RunSpec) -> dict:
    """createPod (and run-pod/v1): one container named after the pod, dnsPolicy ClusterFirst."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _metadata(spec.name, spec.pod_labels, spec.annotations),
            "spec": {"containers": [_container(spec)], "dnsPolicy": "ClusterFirst", "restartPolicy": spec.restart}}


def run_deployment(spec: RunSpec) -> dict:
    """DeploymentAppsV1.Generate: the labels on the Deployment, as its selector, and on the template."""
    labels = spec.pod_labels
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(spec.name, labels, spec.annotations),
            "spec": {"replicas": spec.replicas, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [_container(spec)]}}}}


def run_replication_controller(spec: RunSpec) -> dict:
    """BasicReplicationController.Generate (run/v1): a map selector, no dnsPolicy."""
    labels = spec.pod_labels
    return {"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": _metadata(spec.name, labels, spec.annotations),
            "spec": {"replicas": spec.replicas, "selector": dict(labels),
                     "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [_container(spec)]}}}}


def run_service(spec: RunSpec) -> dict:
    """The Service of `run --expose`: selects the pod labels, carries only the labels the user gave,
    port and targetPort both --port."""
    metadata: dict = {"name": spec.name}
    if spec.labels:
        metadata["labels"] = dict(spec.labels)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata,
            "spec": {"ports": [{"port": spec.port, "protocol": "TCP", "targetPort": spec.port}],
                     "selector": spec.pod_labels}}


def container_name_for(image: str) -> str:
    """create_deployment.go buildPodSpec: the image's last path part without tag or digest; `_` and
    `.` become `-` followed by five random characters (sanitizeAndUniquify)."""
    name = image.split("/")[-1].split(":")[0].split("@")[0]
    if "_" in name or "." in name:
        suffix = "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        name = f"{name.replace('_', '-').replace('.', '-')}-{suffix}"
    return name


def create_deployment(name: str, images: list[str], replicas: int, port: int | None, command: list[str]) -> dict:
    labels = {"app": name}
    containers = []
    for image in images:
        container: dict = {"name": container_name_for(image), "image": image}
        if command:
            container["command"] = list(command)
        containers.append(container)
    if port is not None and containers:
        containers[0]["ports"] = [{"containerPort": port}]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": containers}}}}


def create_namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def as_printed(obj: dict) -> dict:
    """The object as kubectl's YAML/JSON printer shows a generated (never stored) object: Go's
    encoder writes the zero values of the struct fields without `omitempty`."""
    printed = copy.deepcopy(obj)
    printed["metadata"]["creationTimestamp"] = None
    kind, spec = printed["kind"], printed.get("spec")
    printed["status"] = {"Service": {"loadBalancer": {}}, "ReplicationController": {"replicas": 0}}.get(kind, {})
    if kind == "Namespace":
        printed["spec"] = {}
    if kind == "Deployment":
        spec.setdefault("strategy", {})
    if kind in ("Deployment", "ReplicationController"):
        spec["template"]["metadata"]["creationTimestamp"] = None
        spec = spec["template"]["spec"]
    for container in (spec or {}).get("containers", []) if kind != "Service" else []:
        container.setdefault("resources", {})
    return printed
