"""Validation of single objects, with the API server's rules and wording.

Each `validate_<kind>` gets a defaulted object in its storage version and reports problems as
(field path, reason) pairs through a `FieldErrors` collector; the caller adds file, document and
object name. Rules that need the rest of the cluster (a nodePort already taken, a clusterIP in use,
a namespace that does not exist) are checked by the control plane when it admits a batch.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from typing import Any, Callable

from .errors import echo as fmt

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
IANA_SVC_NAME = re.compile(r"^[-a-z0-9]+$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
PERCENT = re.compile(r"^[0-9]+%$")

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
TOTAL_ANNOTATION_SIZE = 256 * 1024      # apimachinery ValidateAnnotationsSize
MAX_SECRET_SIZE = 1024 * 1024           # core.MaxSecretSize (Secrets and ConfigMaps)
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
PROTOCOLS = ("TCP", "UDP", "SCTP")
PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")

MSG_DNS1123_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                     "and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')")
MSG_DNS1123_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                         "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')")
MSG_DNS1035_LABEL = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
                     "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123')")


class FieldErrors:
    """Collects (field path, reason) pairs with the API server's message shapes."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, reason: str) -> None:
        self.items.append((path, reason))

    def required(self, path: str, detail: str = "") -> None:
        self.add(path, "Required value" + (f": {detail}" if detail else ""))

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self.add(path, f"Invalid value: {fmt(value)}: {detail}")

    def unsupported(self, path: str, value: Any, supported: tuple[str, ...]) -> None:
        self.add(path, f"Unsupported value: {fmt(value)}: supported values: "
                       + ", ".join(f'"{s}"' for s in supported))

    def duplicate(self, path: str, value: Any) -> None:
        self.add(path, f"Duplicate value: {fmt(value)}")

    def forbidden(self, path: str, detail: str) -> None:
        self.add(path, f"Forbidden: {detail}")

    def type_error(self, path: str, value: Any, expected: str) -> None:
        self.add(path, f"Invalid value: {fmt(value)}: must be {expected}")


# ------------------------------------------------------------------------------------------
# Field-level checks
# ------------------------------------------------------------------------------------------

def is_dns1123_label(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(DNS1123_LABEL.match(value))


def is_dns1123_subdomain(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 253 and bool(DNS1123_SUBDOMAIN.match(value))


def is_dns1035_label(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(DNS1035_LABEL.match(value))


def iana_svc_name_problem(value: Any) -> str | None:
    """Port names (container and Service target ports): IANA_SVC_NAME, as validation.IsValidPortName."""
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > 15:
        return "must be no more than 15 characters"
    if not IANA_SVC_NAME.match(value):
        return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
    if "--" in value:
        return "must not contain consecutive hyphens"
    if not re.search(r"[a-z]", value):
        return "must contain at least one letter (a-z)"
    if value.startswith("-") or value.endswith("-"):
        return "must not begin or end with a hyphen"
    return None


def check_port_number(errors: FieldErrors, path: str, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.type_error(path, value, "an integer between 1 and 65535, inclusive")
        return False
    if not 1 <= value <= 65535:
        errors.invalid(path, value, "must be between 1 and 65535, inclusive")
        return False
    return True


def check_ipv4(errors: FieldErrors, path: str, value: Any) -> bool:
    try:
        ipaddress.IPv4Address(value)
        return True
    except (ipaddress.AddressValueError, ValueError, TypeError):
        errors.invalid(path, value, "must be a valid IPv4 address, (e.g. 10.9.8.7)")
        return False


def special_ip_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """validation.go ValidateNonSpecialIP (external IPs, endpoint addresses)."""
    if ip.is_unspecified:
        return f"may not be unspecified ({ip})"
    if ip.is_loopback:
        return "may not be in the loopback range (127.0.0.0/8, ::1/128)"
    if ip.is_link_local:
        return "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
    if ip in LINK_LOCAL_MULTICAST_V4 or (ip.version == 6 and ip in LINK_LOCAL_MULTICAST_V6):
        return "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
    return None


LINK_LOCAL_MULTICAST_V4 = ipaddress.IPv4Network("224.0.0.0/24")
LINK_LOCAL_MULTICAST_V6 = ipaddress.IPv6Network("ff02::/16")


def check_endpoint_ip(errors: FieldErrors, path: str, value: Any, version: int = 4) -> bool:
    """A valid address of the family, and not a special one (validation.go ValidateEndpointIP)."""
    try:
        ip = ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)
    except (ipaddress.AddressValueError, ValueError, TypeError):
        errors.invalid(path, value, "must be a valid IPv4 address, (e.g. 10.9.8.7)" if version == 4 else
                       "must be a valid IPv6 address, (e.g. 2001:db8::1)")
        return False
    problem = special_ip_problem(ip)
    if problem:
        errors.invalid(path, value, problem)
        return False
    return True


def name_problem(name: str, rule: str) -> str | None:
    """Why `name` breaks a kind's name rule (None when it does not)."""
    ok, message = {
        "dns1123-subdomain": (is_dns1123_subdomain, MSG_DNS1123_SUBDOMAIN),
        "dns1123-label": (is_dns1123_label, MSG_DNS1123_LABEL),
        "dns1035-label": (is_dns1035_label, MSG_DNS1035_LABEL),
    }[rule]
    return None if ok(name) else message


def _check_string_map(errors: FieldErrors, path: str, mapping: Any, check_value=None) -> None:
    """Labels and annotations: qualified-name keys, string values (checked further if asked)."""
    if mapping is None:
        return
    if not isinstance(mapping, dict):
        errors.type_error(path, mapping, "a map of string keys to string values")
        return
    for key, value in mapping.items():
        check_qualified_name(errors, path, key)
        if not isinstance(value, str):
            errors.type_error(f"{path}.{key}", value, "a string")
        elif check_value is not None:
            check_value(value)


def check_labels(errors: FieldErrors, path: str, labels: Any) -> None:
    def check_value(value: str) -> None:
        if len(value) > 63 or not LABEL_VALUE.match(value):
            errors.invalid(path, value, "a valid label must be an empty string or consist of alphanumeric "
                           "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
                           "(at most 63 characters)")
    _check_string_map(errors, path, labels, check_value)


def check_qualified_name(errors: FieldErrors, path: str, key: Any) -> None:
    if not isinstance(key, str) or not key:
        errors.invalid(path, key, "name part must be non-empty")
        return
    prefix, _, name = key.rpartition("/")
    if prefix and not is_dns1123_subdomain(prefix):
        errors.invalid(path, key, "prefix part " + MSG_DNS1123_SUBDOMAIN)
    if len(name) > 63 or not QUALIFIED_NAME.match(name):
        errors.invalid(path, key, "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                       "start and end with an alphanumeric character (at most 63 characters)")


def check_annotations(errors: FieldErrors, path: str, annotations: Any) -> None:
    _check_string_map(errors, path, annotations)


def check_metadata(errors: FieldErrors, obj: dict, name_rule: str, namespaced: bool) -> None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        errors.required("metadata")
        return
    name = meta.get("name")
    if not name:
        if not meta.get("generateName"):   # an invalid generateName is reported where names are generated
            errors.required("metadata.name", "name or generateName is required")
    else:
        message = name_problem(name, name_rule)
        if message:
            errors.invalid("metadata.name", name, message)
    if namespaced:
        namespace = meta.get("namespace")
        if namespace is not None and not is_dns1123_label(namespace):
            errors.invalid("metadata.namespace", namespace, MSG_DNS1123_LABEL)
    check_labels(errors, "metadata.labels", meta.get("labels"))
    check_annotations(errors, "metadata.annotations", meta.get("annotations"))
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):   # ValidateAnnotationsSize: keys and values, in bytes
        size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
        if size > TOTAL_ANNOTATION_SIZE:
            errors.add("metadata.annotations", f"Too long: must have at most {TOTAL_ANNOTATION_SIZE} bytes")


def as_list(errors: FieldErrors, path: str, value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.type_error(path, value, "a list")
        return []
    return value


def as_dict(errors: FieldErrors, path: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.type_error(path, value, "an object")
        return {}
    return value


def int_or_percent(errors: FieldErrors, path: str, value: Any, at_most_100: bool = True) -> float | int | None:
    """maxSurge/maxUnavailable: a non-negative integer or a percentage string (ValidatePositiveIntOrPercent;
    IsNotMoreThan100Percent only for maxUnavailable)."""
    if isinstance(value, bool):
        errors.invalid(path, value, "must be an integer or percentage (e.g '5%')")
        return None
    if isinstance(value, int):
        if value < 0:
            errors.invalid(path, value, "must be greater than or equal to 0")
            return None
        return value
    if isinstance(value, str) and PERCENT.match(value):
        percent = int(value[:-1])
        if percent > 100 and at_most_100:
            errors.invalid(path, value, "must not be greater than 100%")
        return percent / 100.0
    errors.invalid(path, value, "a valid percent string must be a numeric string followed by an ending '%' "
                   "(e.g. '1%',  or '93%')")
    return None


# ------------------------------------------------------------------------------------------
# Pods and pod templates
# ------------------------------------------------------------------------------------------

def check_probe(errors: FieldErrors, path: str, probe: Any, port_names: set[str]) -> None:
    probe = as_dict(errors, path, probe)
    if not probe:
        return
    handlers = [h for h in ("httpGet", "tcpSocket", "exec", "grpc") if probe.get(h) is not None]
    if len(handlers) != 1:
        errors.required(path, "must specify a handler type" if not handlers else
                        "may not specify more than 1 handler type")
    for handler in ("httpGet", "tcpSocket"):
        action = probe.get(handler)
        if isinstance(action, dict):
            port = action.get("port")
            if isinstance(port, str):
                if port not in port_names:
                    problem = iana_svc_name_problem(port)
                    if problem:
                        errors.invalid(f"{path}.{handler}.port", port, problem)
            else:
                check_port_number(errors, f"{path}.{handler}.port", port)
    for field in ("periodSeconds", "timeoutSeconds", "successThreshold", "failureThreshold"):
        value = probe.get(field)
        if value is not None and (not isinstance(value, int) or value < 1):
            errors.invalid(f"{path}.{field}", value, "must be greater than or equal to 1")
    delay = probe.get("initialDelaySeconds")
    if delay is not None and (not isinstance(delay, int) or delay < 0):
        errors.invalid(f"{path}.initialDelaySeconds", delay, "must be greater than or equal to 0")


STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def check_resources(errors: FieldErrors, path: str, resources: Any) -> None:
    """ValidateResourceRequirements: known or domain-qualified names, non-negative, requests <= limits."""
    if not isinstance(resources, dict):
        return
    from .schema import quantity_value
    values: dict[str, dict] = {}
    for part in ("limits", "requests"):
        for name, quantity in (resources.get(part) or {}).items():
            qpath = f"{path}.{part}[{name}]"
            if name not in STANDARD_RESOURCES and not name.startswith("hugepages-") and "/" not in name:
                errors.invalid(qpath, name, "must be a standard resource type or fully qualified")
                continue
            value = quantity_value(quantity)
            if value < 0:
                errors.invalid(qpath, quantity, "must be greater than or equal to 0")
                continue
            values.setdefault(part, {})[name] = (value, quantity)
    for name, (request, text) in (values.get("requests") or {}).items():
        limit = (values.get("limits") or {}).get(name)
        if limit is not None and request > limit[0]:
            errors.invalid(f"{path}.requests[{name}]", text, f"must be less than or equal to {name} limit of {limit[1]}")


def check_pod_spec(errors: FieldErrors, path: str, spec: Any) -> None:
    spec = as_dict(errors, path, spec)
    containers = as_list(errors, f"{path}.containers", spec.get("containers"))
    if not containers:
        errors.required(f"{path}.containers")
    container_names: set[str] = set()
    port_names: set[str] = set()
    host_ports: set[tuple] = set()
    for i, container in enumerate(containers):
        cpath = f"{path}.containers[{i}]"
        container = as_dict(errors, cpath, container)
        name = container.get("name")
        if not name:
            errors.required(f"{cpath}.name")
        elif not is_dns1123_label(name):
            errors.invalid(f"{cpath}.name", name, MSG_DNS1123_LABEL)
        elif name in container_names:
            errors.duplicate(f"{cpath}.name", name)
        else:
            container_names.add(name)
        if not container.get("image"):
            errors.required(f"{cpath}.image")
        check_resources(errors, f"{cpath}.resources", container.get("resources"))
        for field in ("command", "args"):
            value = container.get(field)
            if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                errors.type_error(f"{cpath}.{field}", value, "a list of strings")
        for j, port in enumerate(as_list(errors, f"{cpath}.ports", container.get("ports"))):
            ppath = f"{cpath}.ports[{j}]"
            port = as_dict(errors, ppath, port)
            check_port_number(errors, f"{ppath}.containerPort", port.get("containerPort"))
            if port.get("protocol") not in PROTOCOLS:
                errors.unsupported(f"{ppath}.protocol", port.get("protocol"), PROTOCOLS)
            port_name = port.get("name")
            if port_name is not None:
                problem = iana_svc_name_problem(port_name)
                if problem:
                    errors.invalid(f"{ppath}.name", port_name, problem)
                elif port_name in port_names:
                    errors.duplicate(f"{ppath}.name", port_name)
                else:
                    port_names.add(port_name)
            if port.get("hostPort") is not None:
                if check_port_number(errors, f"{ppath}.hostPort", port["hostPort"]):
                    key = (port["hostPort"], port.get("protocol"))
                    if key in host_ports:
                        errors.duplicate(f"{ppath}.hostPort", f"{key[0]}/{key[1]}")
                    host_ports.add(key)
        for env_index, env in enumerate(as_list(errors, f"{cpath}.env", container.get("env"))):
            if not isinstance(env, dict) or not env.get("name"):
                errors.required(f"{cpath}.env[{env_index}].name")
    for i, container in enumerate(containers):
        if isinstance(container, dict):
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if container.get(probe) is not None:
                    check_probe(errors, f"{path}.containers[{i}].{probe}", container[probe], port_names)
    restart = spec.get("restartPolicy")
    if restart not in (None, "Always", "OnFailure", "Never"):
        errors.unsupported(f"{path}.restartPolicy", restart, ("Always", "OnFailure", "Never"))
    for field, rule in (("hostname", is_dns1123_label), ("subdomain", is_dns1123_label)):
        value = spec.get(field)
        if value is not None and not rule(value):
            errors.invalid(f"{path}.{field}", value, MSG_DNS1123_LABEL)
    node_name = spec.get("nodeName")
    if node_name is not None and not is_dns1123_subdomain(node_name):
        errors.invalid(f"{path}.nodeName", node_name, MSG_DNS1123_SUBDOMAIN)
    check_labels(errors, f"{path}.nodeSelector", spec.get("nodeSelector"))


def validate_pod(obj: dict, errors: FieldErrors) -> None:
    check_pod_spec(errors, "spec", obj.get("spec"))
    # validateContainersOnlyForPod: a pod's images (not a template's: " " is a token there for some
    # tools) may not have leading or trailing whitespace; spaces inside are the kubelet's
    # InvalidImageName, not the API server's business.
    for i, container in enumerate((obj.get("spec") or {}).get("containers") or []):
        image = container.get("image") if isinstance(container, dict) else None
        if isinstance(image, str) and image and image != image.strip():
            errors.invalid(f"spec.containers[{i}].image", image, "must not have leading or trailing whitespace")


def selector_matches(selector: dict, labels: dict) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) or a plain map selector against labels."""
    if "matchLabels" in selector or "matchExpressions" in selector:
        for key, value in (selector.get("matchLabels") or {}).items():
            if labels.get(key) != value:
                return False
        for expr in selector.get("matchExpressions") or []:
            key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
            if op == "In" and labels.get(key) not in values:
                return False
            if op == "NotIn" and key in labels and labels[key] in values:
                return False
            if op == "Exists" and key not in labels:
                return False
            if op == "DoesNotExist" and key in labels:
                return False
        return True
    return all(labels.get(k) == v for k, v in selector.items())


def check_label_selector(errors: FieldErrors, path: str, selector: Any) -> dict:
    selector = as_dict(errors, path, selector)
    check_labels(errors, f"{path}.matchLabels", selector.get("matchLabels"))
    for i, expr in enumerate(as_list(errors, f"{path}.matchExpressions", selector.get("matchExpressions"))):
        epath = f"{path}.matchExpressions[{i}]"
        expr = as_dict(errors, epath, expr)
        if not expr.get("key"):
            errors.required(f"{epath}.key")
        operator = expr.get("operator")
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            errors.unsupported(f"{epath}.operator", operator, ("In", "NotIn", "Exists", "DoesNotExist"))
        elif operator in ("In", "NotIn") and not expr.get("values"):
            errors.required(f"{epath}.values", "must be specified when `operator` is 'In' or 'NotIn'")
        elif operator in ("Exists", "DoesNotExist") and expr.get("values"):
            errors.forbidden(f"{epath}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
    return selector


def check_workload(errors: FieldErrors, obj: dict, map_selector: bool = False) -> None:
    """Deployment, ReplicaSet (LabelSelector) and ReplicationController (map selector)."""
    spec = as_dict(errors, "spec", obj.get("spec"))
    replicas = spec.get("replicas")
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0):
        errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")
    template = as_dict(errors, "spec.template", spec.get("template"))
    template_labels = as_dict(errors, "spec.template.metadata", template.get("metadata")).get("labels") or {}
    check_labels(errors, "spec.template.metadata.labels", template_labels)
    if map_selector:
        selector = spec.get("selector") or {}
        check_labels(errors, "spec.selector", selector)
        if not selector:
            errors.required("spec.selector")
        ok = isinstance(selector, dict) and selector_matches(selector, template_labels)
    else:
        if spec.get("selector") is None:
            errors.required("spec.selector")
            ok = True
        else:
            selector = check_label_selector(errors, "spec.selector", spec.get("selector"))
            if not selector.get("matchLabels") and not selector.get("matchExpressions"):
                errors.invalid("spec.selector", selector, "empty selector is invalid for deployment")
            ok = selector_matches(selector, template_labels) if isinstance(template_labels, dict) else False
    if not ok:
        errors.invalid("spec.template.metadata.labels", template_labels,
                       "`selector` does not match template `labels`")
    if not template:
        errors.required("spec.template")
    else:
        check_pod_spec(errors, "spec.template.spec", template.get("spec"))
        restart = (template.get("spec") or {}).get("restartPolicy") if isinstance(template.get("spec"), dict) else None
        if restart not in (None, "Always"):
            errors.unsupported("spec.template.spec.restartPolicy", restart, ("Always",))


def validate_deployment(obj: dict, errors: FieldErrors) -> None:
    check_workload(errors, obj)
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    min_ready = spec.get("minReadySeconds", 0)
    if min_ready < 0:
        errors.invalid("spec.minReadySeconds", min_ready, "must be greater than or equal to 0")
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None:   # ValidateDeploymentSpec
        if deadline < 0:
            errors.invalid("spec.progressDeadlineSeconds", deadline, "must be greater than or equal to 0")
        elif deadline <= min_ready:
            errors.invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds")
    limit = spec.get("revisionHistoryLimit")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        errors.invalid("spec.revisionHistoryLimit", limit, "must be greater than or equal to 0")
    strategy = as_dict(errors, "spec.strategy", spec.get("strategy"))
    kind = strategy.get("type", "RollingUpdate")
    if kind not in ("RollingUpdate", "Recreate"):
        errors.unsupported("spec.strategy.type", kind, ("Recreate", "RollingUpdate"))
    elif kind == "Recreate" and strategy.get("rollingUpdate"):
        errors.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
    elif kind == "RollingUpdate":
        rolling = as_dict(errors, "spec.strategy.rollingUpdate", strategy.get("rollingUpdate"))
        surge = int_or_percent(errors, "spec.strategy.rollingUpdate.maxSurge", rolling.get("maxSurge", "25%"),
                               at_most_100=False)
        unavailable = int_or_percent(errors, "spec.strategy.rollingUpdate.maxUnavailable",
                                     rolling.get("maxUnavailable", "25%"))
        if surge == 0 and unavailable == 0:
            errors.invalid("spec.strategy.rollingUpdate.maxUnavailable", rolling.get("maxUnavailable"),
                           "may not be 0 when `maxSurge` is 0")


def validate_replicaset(obj: dict, errors: FieldErrors) -> None:
    check_workload(errors, obj)
    min_ready = (obj.get("spec") or {}).get("minReadySeconds", 0)
    if min_ready < 0:
        errors.invalid("spec.minReadySeconds", min_ready, "must be greater than or equal to 0")


def validate_replication_controller(obj: dict, errors: FieldErrors) -> None:
    check_workload(errors, obj, map_selector=True)


# ------------------------------------------------------------------------------------------
# Services, Endpoints, EndpointSlices
# ------------------------------------------------------------------------------------------

def validate_service(obj: dict, errors: FieldErrors, *, node_port_range: tuple[int, int] = (30000, 32767),
                     service_cidr: str = "10.96.0.0/12") -> None:
    spec = as_dict(errors, "spec", obj.get("spec"))
    service_type = spec.get("type", "ClusterIP")
    if service_type not in SERVICE_TYPES:
        errors.unsupported("spec.type", service_type, SERVICE_TYPES)
        return
    if service_type == "ExternalName":
        external_name = spec.get("externalName")
        if not external_name:
            errors.required("spec.externalName")
        elif not is_dns1123_subdomain(str(external_name).rstrip(".")):
            errors.invalid("spec.externalName", external_name, MSG_DNS1123_SUBDOMAIN)
        if spec.get("clusterIP") not in (None, ""):
            errors.forbidden("spec.clusterIP", "may not be set for ExternalName services")
        for field in ("clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if spec.get(field):
                errors.forbidden(f"spec.{field}", "may not be set for ExternalName services")
    cluster_ip = spec.get("clusterIP")
    headless = cluster_ip == "None"
    if cluster_ip not in (None, "", "None") and service_type != "ExternalName":
        if check_ipv4(errors, "spec.clusterIP", cluster_ip):
            network = ipaddress.IPv4Network(service_cidr)
            # The allocator's range leaves out the network and broadcast addresses (ipallocator.NewCIDRRange).
            if ipaddress.IPv4Address(cluster_ip) not in network or \
                    ipaddress.IPv4Address(cluster_ip) in (network.network_address, network.broadcast_address):
                errors.invalid("spec.clusterIP", cluster_ip,
                               f"provided IP is not in the valid range. The range of valid IPs is {service_cidr}")
    if service_type != "ExternalName":
        check_cluster_ips_and_families(errors, spec)
    if headless and service_type in ("NodePort", "LoadBalancer"):
        errors.invalid("spec.clusterIP", cluster_ip, f'may not be set to "None" for {service_type} services')
    ports = as_list(errors, "spec.ports", spec.get("ports"))
    if not ports and service_type != "ExternalName" and not headless:
        errors.required("spec.ports")
    seen_names: set[str] = set()
    seen_ports: set[tuple] = set()
    seen_node_ports: set[tuple] = set()
    for i, port in enumerate(ports):
        ppath = f"spec.ports[{i}]"
        port = as_dict(errors, ppath, port)
        name = port.get("name")
        if len(ports) > 1 and not name:
            errors.required(f"{ppath}.name")
        elif name:
            if not is_dns1123_label(name):
                errors.invalid(f"{ppath}.name", name, MSG_DNS1123_LABEL)
            elif name in seen_names:
                errors.duplicate(f"{ppath}.name", name)
            seen_names.add(name)
        protocol = port.get("protocol", "TCP")
        if protocol not in PROTOCOLS:
            errors.unsupported(f"{ppath}.protocol", protocol, PROTOCOLS)
        if check_port_number(errors, f"{ppath}.port", port.get("port")):
            key = (port["port"], protocol)
            if key in seen_ports:
                errors.duplicate(ppath, {"port": port["port"], "protocol": protocol})
            seen_ports.add(key)
        target = port.get("targetPort")
        if isinstance(target, str):   # ValidatePortNumOrName: a string is a port name, "8080" included
            problem = iana_svc_name_problem(target)
            if problem:
                errors.invalid(f"{ppath}.targetPort", target, problem)
        elif target is not None:
            check_port_number(errors, f"{ppath}.targetPort", target)
        node_port = port.get("nodePort")
        if node_port not in (None, 0):
            if service_type not in ("NodePort", "LoadBalancer"):
                errors.forbidden(f"{ppath}.nodePort", f"may not be used when `type` is '{service_type}'")
            elif isinstance(node_port, bool) or not isinstance(node_port, int) \
                    or not node_port_range[0] <= node_port <= node_port_range[1]:
                errors.invalid(f"{ppath}.nodePort", node_port,
                               f"provided port is not in the valid range. The range of valid ports is "
                               f"{node_port_range[0]}-{node_port_range[1]}")
            else:
                key = (node_port, protocol)
                if key in seen_node_ports:
                    errors.duplicate(f"{ppath}.nodePort", node_port)
                seen_node_ports.add(key)
    selector = spec.get("selector")
    if selector is not None:
        check_labels(errors, "spec.selector", selector)
    affinity = spec.get("sessionAffinity", "None")
    if affinity not in ("None", "ClientIP"):
        errors.unsupported("spec.sessionAffinity", affinity, ("ClientIP", "None"))
    config = as_dict(errors, "spec.sessionAffinityConfig", spec.get("sessionAffinityConfig"))
    if config:
        if affinity != "ClientIP":
            errors.forbidden("spec.sessionAffinityConfig",
                             'must not be set when session affinity is None')
        timeout = as_dict(errors, "spec.sessionAffinityConfig.clientIP", config.get("clientIP")).get("timeoutSeconds")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)
                                    or not 1 <= timeout <= 86400):
            errors.invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                           "must be greater than 0 and less than 86400")
    for field, allowed in (("externalTrafficPolicy", ("Cluster", "Local")),
                           ("internalTrafficPolicy", ("Cluster", "Local"))):
        value = spec.get(field)
        if value is not None and value not in allowed:
            errors.unsupported(f"spec.{field}", value, allowed)
    # validateServiceExternalTrafficPolicy: apiservice.ExternallyAccessible is NodePort, LoadBalancer,
    # or ClusterIP with externalIPs.
    externally_accessible = service_type in ("NodePort", "LoadBalancer") or \
        (service_type == "ClusterIP" and bool(spec.get("externalIPs")))
    if spec.get("externalTrafficPolicy") is not None and not externally_accessible \
            and service_type != "ExternalName":
        errors.invalid("spec.externalTrafficPolicy", spec["externalTrafficPolicy"],
                       "may only be set for externally-accessible services")
    needs_health_check = service_type == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
    health_port = spec.get("healthCheckNodePort")
    if health_port not in (None, 0) and not needs_health_check:
        errors.invalid("spec.healthCheckNodePort", health_port,
                       "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'")
    elif health_port not in (None, 0) and not node_port_range[0] <= health_port <= node_port_range[1]:
        errors.invalid("spec.healthCheckNodePort", health_port,
                       f"provided port is not in the valid range. The range of valid ports is "
                       f"{node_port_range[0]}-{node_port_range[1]}")
    for i, ip in enumerate(as_list(errors, "spec.externalIPs", spec.get("externalIPs"))):
        check_endpoint_ip(errors, f"spec.externalIPs[{i}]", ip)
    if spec.get("loadBalancerIP"):
        if service_type != "LoadBalancer":
            errors.forbidden("spec.loadBalancerIP", "may only be used when `type` is 'LoadBalancer'")
        else:
            check_ipv4(errors, "spec.loadBalancerIP", spec["loadBalancerIP"])
    for field in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
        if spec.get(field) is not None and service_type != "LoadBalancer":
            errors.forbidden(f"spec.{field}", "may only be used when `type` is 'LoadBalancer'")
    if spec.get("loadBalancerClass") is not None and service_type == "LoadBalancer":
        check_qualified_name(errors, "spec.loadBalancerClass", spec["loadBalancerClass"])
    ranges = as_list(errors, "spec.loadBalancerSourceRanges", spec.get("loadBalancerSourceRanges"))
    if ranges and service_type != "LoadBalancer":
        # validation.go names this field with a capital L (a historical accident kept there).
        errors.forbidden("spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'")
    for i, cidr in enumerate(ranges):
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
        except (ValueError, TypeError):
            errors.invalid(f"spec.loadBalancerSourceRanges[{i}]", cidr,
                           "must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 ")


def check_cluster_ips_and_families(errors: FieldErrors, spec: dict) -> None:
    """validateServiceClusterIPsRelatedFields and validateIPFamilyPolicy, on this single-stack IPv4
    cluster (the registry refuses IPv6 and dual-stack requests: "not configured on this cluster")."""
    cluster_ips = spec.get("clusterIPs") or []
    cluster_ip = spec.get("clusterIP")
    if cluster_ips and cluster_ip and cluster_ip != cluster_ips[0]:
        errors.invalid("spec.clusterIPs", cluster_ips, "first value must match `clusterIP`")
    elif len(cluster_ips) > 2:
        errors.invalid("spec.clusterIPs", cluster_ips, "may only hold up to 2 values")
    elif len(cluster_ips) == 2:
        errors.invalid("spec.clusterIPs[1]", cluster_ips[1], "this cluster is not configured for dual-stack services")
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in IP_FAMILY_POLICIES:
        errors.unsupported("spec.ipFamilyPolicy", policy, IP_FAMILY_POLICIES)
    elif policy == "RequireDualStack":
        errors.invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services")
    families = spec.get("ipFamilies") or []
    seen: set[str] = set()
    for i, family in enumerate(families):
        if family not in ("IPv4", "IPv6"):
            errors.unsupported(f"spec.ipFamilies[{i}]", family, ("IPv4", "IPv6"))
        elif family in seen:
            errors.duplicate(f"spec.ipFamilies[{i}]", family)
        elif family == "IPv6":
            errors.invalid(f"spec.ipFamilies[{i}]", family, "not configured on this cluster")
        seen.add(family)
    if len(families) > 2:
        errors.invalid("spec.ipFamilies", families, "may be either a single or dual stack")


def validate_endpoints(obj: dict, errors: FieldErrors) -> None:
    """validateEndpointSubsets: every subset has addresses, every address is a real one."""
    for i, subset in enumerate(as_list(errors, "subsets", obj.get("subsets"))):
        spath = f"subsets[{i}]"
        subset = as_dict(errors, spath, subset)
        if not subset.get("addresses") and not subset.get("notReadyAddresses"):
            errors.required(spath, "must specify `addresses` or `notReadyAddresses`")
        for field in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(as_list(errors, f"{spath}.{field}", subset.get(field))):
                address = as_dict(errors, f"{spath}.{field}[{j}]", address)
                check_endpoint_ip(errors, f"{spath}.{field}[{j}].ip", address.get("ip"))
                hostname = address.get("hostname")
                if hostname is not None and not is_dns1123_label(hostname):
                    errors.invalid(f"{spath}.{field}[{j}].hostname", hostname, MSG_DNS1123_LABEL)
        ports = as_list(errors, f"{spath}.ports", subset.get("ports"))
        for j, port in enumerate(ports):
            port = as_dict(errors, f"{spath}.ports[{j}]", port)
            check_port_number(errors, f"{spath}.ports[{j}].port", port.get("port"))
            if port.get("protocol", "TCP") not in PROTOCOLS:
                errors.unsupported(f"{spath}.ports[{j}].protocol", port.get("protocol"), PROTOCOLS)
            name = port.get("name")
            if len(ports) > 1 and not name:
                errors.required(f"{spath}.ports[{j}].name")
            elif name and not is_dns1123_label(name):
                errors.invalid(f"{spath}.ports[{j}].name", name, MSG_DNS1123_LABEL)


def validate_endpoint_slice(obj: dict, errors: FieldErrors) -> None:
    address_type = obj.get("addressType")
    if address_type not in ("IPv4", "IPv6", "FQDN"):
        errors.unsupported("addressType", address_type, ("FQDN", "IPv4", "IPv6"))
    endpoints = as_list(errors, "endpoints", obj.get("endpoints"))
    if len(endpoints) > 1000:
        errors.add("endpoints", f"Too many: {len(endpoints)}: must have at most 1000 items")
    for i, endpoint in enumerate(endpoints):
        endpoint = as_dict(errors, f"endpoints[{i}]", endpoint)
        addresses = as_list(errors, f"endpoints[{i}].addresses", endpoint.get("addresses"))
        if not addresses:
            errors.required(f"endpoints[{i}].addresses", "must contain at least 1 address")
        for j, address in enumerate(addresses):   # validateEndpoints: each address of the slice's type
            apath = f"endpoints[{i}].addresses[{j}]"
            if address_type in ("IPv4", "IPv6"):
                check_endpoint_ip(errors, apath, address, 4 if address_type == "IPv4" else 6)
            elif address_type == "FQDN" and not is_fqdn(address):
                errors.invalid(apath, address, "a valid FQDN must consist of at least two labels, each a lowercase "
                               "RFC 1123 label")
    port_names: set[str] = set()
    for i, port in enumerate(as_list(errors, "ports", obj.get("ports"))):
        port = as_dict(errors, f"ports[{i}]", port)
        if port.get("port") is not None:
            check_port_number(errors, f"ports[{i}].port", port.get("port"))
        if port.get("protocol", "TCP") not in PROTOCOLS:
            errors.unsupported(f"ports[{i}].protocol", port.get("protocol"), PROTOCOLS)
        name = port.get("name") or ""
        if name and not is_dns1123_label(name):
            errors.invalid(f"ports[{i}].name", name, MSG_DNS1123_LABEL)
        elif name in port_names:
            errors.duplicate(f"ports[{i}].name", name)
        port_names.add(name)


def is_fqdn(value: Any) -> bool:
    """apimachinery IsFullyQualifiedDomainName: a subdomain of at least two labels."""
    return isinstance(value, str) and is_dns1123_subdomain(value.rstrip(".")) and "." in value.rstrip(".")


# ------------------------------------------------------------------------------------------
# Ingress and IngressClass
# ------------------------------------------------------------------------------------------

def check_ingress_host(errors: FieldErrors, path: str, host: Any) -> None:
    if not isinstance(host, str):
        errors.type_error(path, host, "a string")
        return
    try:
        ipaddress.ip_address(host)
        errors.invalid(path, host, "must be a DNS name, not an IP address")
        return
    except ValueError:
        pass
    if host.startswith("*."):
        if not is_dns1123_subdomain(host[2:]):
            errors.invalid(path, host, "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid "
                           "DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' "
                           "and end with an alphanumeric character (e.g. '*.example.com')")
    elif "*" in host:
        errors.invalid(path, host, "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS "
                       "subdomain (e.g. '*.example.com'); a bare '*' or a '*' elsewhere is not allowed")
    elif not is_dns1123_subdomain(host):
        errors.invalid(path, host, MSG_DNS1123_SUBDOMAIN)


def check_ingress_backend(errors: FieldErrors, path: str, backend: Any) -> None:
    backend = as_dict(errors, path, backend)
    service, resource = backend.get("service"), backend.get("resource")
    if service is None and resource is None:
        errors.invalid(path, "", "one backend (service or resource) must be specified")
        return
    if service is not None and resource is not None:
        errors.invalid(path, "", "cannot set both service and resource backends")
        return
    if resource is not None:   # validateIngressTypedLocalObjectReference
        resource = as_dict(errors, f"{path}.resource", resource)
        if resource.get("apiGroup") is not None and not is_dns1123_subdomain(resource["apiGroup"]):
            errors.invalid(f"{path}.resource.apiGroup", resource["apiGroup"], MSG_DNS1123_SUBDOMAIN)
        for part in ("kind", "name"):
            value = resource.get(part)
            if not value:
                errors.required(f"{path}.resource.{part}", f"{part} is required")
            elif value in (".", "..") or "/" in value or "%" in value:
                errors.invalid(f"{path}.resource.{part}", value, "may not be '.' or '..' or contain '/' or '%'")
    if service is not None:
        service = as_dict(errors, f"{path}.service", service)
        name = service.get("name")
        if not name:
            errors.required(f"{path}.service.name")
        elif not is_dns1035_label(name):
            errors.invalid(f"{path}.service.name", name, MSG_DNS1035_LABEL)
        port = as_dict(errors, f"{path}.service.port", service.get("port"))
        if port.get("name") and port.get("number"):
            errors.invalid(f"{path}.service.port", port, "cannot set both port name & port number")
        elif port.get("name"):
            problem = iana_svc_name_problem(port["name"])
            if problem:
                errors.invalid(f"{path}.service.port.name", port["name"], problem)
        elif port.get("number") is not None:
            check_port_number(errors, f"{path}.service.port.number", port["number"])
        else:
            errors.required(f"{path}.service.port", "port name or number is required")


def validate_ingress(obj: dict, errors: FieldErrors) -> None:
    spec = as_dict(errors, "spec", obj.get("spec"))
    rules = as_list(errors, "spec.rules", spec.get("rules"))
    if not rules and spec.get("defaultBackend") is None:
        errors.invalid("spec", "", "either `defaultBackend` or `rules` must be specified")
    if spec.get("defaultBackend") is not None:
        check_ingress_backend(errors, "spec.defaultBackend", spec["defaultBackend"])
    class_name = spec.get("ingressClassName")
    if class_name is not None and not is_dns1123_subdomain(class_name):
        errors.invalid("spec.ingressClassName", class_name, MSG_DNS1123_SUBDOMAIN)
    for i, rule in enumerate(rules):
        rpath = f"spec.rules[{i}]"
        rule = as_dict(errors, rpath, rule)
        if rule.get("host") not in (None, ""):
            check_ingress_host(errors, f"{rpath}.host", rule["host"])
        http = rule.get("http")
        if http is None:
            continue
        http = as_dict(errors, f"{rpath}.http", http)
        paths = as_list(errors, f"{rpath}.http.paths", http.get("paths"))
        if not paths:
            errors.required(f"{rpath}.http.paths")
        for j, path in enumerate(paths):
            ppath = f"{rpath}.http.paths[{j}]"
            path = as_dict(errors, ppath, path)
            path_type = path.get("pathType")
            if path_type is None:
                errors.required(f"{ppath}.pathType", "pathType must be specified")
            elif path_type not in PATH_TYPES:
                errors.unsupported(f"{ppath}.pathType", path_type, PATH_TYPES)
            value = path.get("path")
            if path_type in ("Exact", "Prefix"):
                if not isinstance(value, str) or not value.startswith("/"):
                    errors.invalid(f"{ppath}.path", value, "must be an absolute path")
                elif "//" in value or any(seg in value for seg in ("/./", "/../")) or value.endswith(("/..", "/.")):
                    errors.invalid(f"{ppath}.path", value, "must not contain '//', '/./' or '/../'")
            elif value is not None and (not isinstance(value, str) or not value.startswith("/")):
                errors.invalid(f"{ppath}.path", value, "must be an absolute path")
            check_ingress_backend(errors, f"{ppath}.backend", path.get("backend"))
    for i, tls in enumerate(as_list(errors, "spec.tls", spec.get("tls"))):
        tls = as_dict(errors, f"spec.tls[{i}]", tls)
        for j, host in enumerate(as_list(errors, f"spec.tls[{i}].hosts", tls.get("hosts"))):
            check_ingress_host(errors, f"spec.tls[{i}].hosts[{j}]", host)
        secret = tls.get("secretName")
        if secret is not None and not is_dns1123_subdomain(secret):
            errors.invalid(f"spec.tls[{i}].secretName", secret, MSG_DNS1123_SUBDOMAIN)


def validate_ingress_class(obj: dict, errors: FieldErrors) -> None:
    spec = as_dict(errors, "spec", obj.get("spec"))
    controller = spec.get("controller")
    if not controller:
        errors.required("spec.controller")
    elif not isinstance(controller, str) or "/" not in controller or \
            not is_dns1123_subdomain(controller.split("/", 1)[0]):
        errors.invalid("spec.controller", controller, "must be a domain-prefixed path (such as \"acme.io/foo\")")


# ------------------------------------------------------------------------------------------
# Secrets, ConfigMaps, Namespaces
# ------------------------------------------------------------------------------------------

def check_config_keys(errors: FieldErrors, path: str, data: Any, base64_values: bool) -> int:
    """IsConfigMapKey for every key; returns the data's size in bytes (base64 values decoded; the
    decoder (schema.py) has checked that they are base64)."""
    from .schema import base64_length
    data = as_dict(errors, path, data)
    size = 0
    for key, value in data.items():
        if not isinstance(key, str) or len(key) > 253 or not CONFIG_KEY.match(key) or key in (".", ".."):
            errors.invalid(path, key, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
            continue
        if not isinstance(value, str):
            errors.type_error(f"{path}[{key}]", value, "a string")
            continue
        size += base64_length(value) if base64_values else len(value.encode())
    return size


# Keys each Secret type requires (ValidateSecret); stringData counts, as it is merged into data.
SECRET_TYPE_KEYS = {
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def validate_secret(obj: dict, errors: FieldErrors) -> None:
    data = as_dict(errors, "data", obj.get("data"))
    string_data = as_dict(errors, "stringData", obj.get("stringData"))
    size = check_config_keys(errors, "data", data, base64_values=True)
    size += check_config_keys(errors, "stringData", string_data, base64_values=False)
    if size > MAX_SECRET_SIZE:
        errors.add("data", f"Too long: must have at most {MAX_SECRET_SIZE} bytes")
    secret_type = obj.get("type")
    for key in SECRET_TYPE_KEYS.get(secret_type, ()):
        if key not in data and key not in string_data:
            errors.required(f"data[{key}]")
    if secret_type == "kubernetes.io/basic-auth" and not any(
            k in data or k in string_data for k in ("username", "password")):
        errors.required("data[username]")
    if secret_type in ("kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"):
        key = ".dockerconfigjson" if secret_type.endswith("json") else ".dockercfg"
        text = string_data.get(key) if key in string_data else data.get(key)
        if isinstance(text, str):
            try:
                json.loads(text if key in string_data else base64.b64decode("".join(text.split())))
            except (ValueError, binascii.Error) as err:
                errors.invalid(f"data[{key}]", "<secret contents redacted>", str(err).split(":")[0])


def validate_configmap(obj: dict, errors: FieldErrors) -> None:
    """ValidateConfigMap: valid keys, none in both data and binaryData, at most 1 MiB in all."""
    data = as_dict(errors, "data", obj.get("data"))
    binary = as_dict(errors, "binaryData", obj.get("binaryData"))
    size = check_config_keys(errors, "data", data, base64_values=False)
    size += check_config_keys(errors, "binaryData", binary, base64_values=True)
    for key in binary:
        if key in data:
            errors.invalid(f"binaryData[{key}]", key, f"duplicate of key present in data[{key}]")
    if size > MAX_SECRET_SIZE:
        errors.add("", f"Too long: must have at most {MAX_SECRET_SIZE} bytes")


def validate_namespace(obj: dict, errors: FieldErrors) -> None:
    pass


VALIDATORS: dict[str, tuple[Callable[[dict, FieldErrors], None], str]] = {
    "Namespace": (validate_namespace, "dns1123-label"),
    "Pod": (validate_pod, "dns1123-subdomain"),
    "Service": (validate_service, "dns1035-label"),
    "Endpoints": (validate_endpoints, "dns1123-subdomain"),
    "EndpointSlice": (validate_endpoint_slice, "dns1123-subdomain"),
    "Secret": (validate_secret, "dns1123-subdomain"),
    "ConfigMap": (validate_configmap, "dns1123-subdomain"),
    "Deployment": (validate_deployment, "dns1123-subdomain"),
    "ReplicaSet": (validate_replicaset, "dns1123-subdomain"),
    "ReplicationController": (validate_replication_controller, "dns1123-subdomain"),
    "Ingress": (validate_ingress, "dns1123-subdomain"),
    "IngressClass": (validate_ingress_class, "dns1123-subdomain"),
}


def validate_object(obj: dict, *, namespaced: bool, service_cidr: str = "10.96.0.0/12",
                    node_port_range: tuple[int, int] = (30000, 32767)) -> list[tuple[str, str]]:
    """All (field, reason) problems of one defaulted object in its storage version."""
    errors = FieldErrors()
    validator, name_rule = VALIDATORS[obj["kind"]]
    check_metadata(errors, obj, name_rule, namespaced)
    if obj["kind"] == "Service":
        validate_service(obj, errors, node_port_range=node_port_range, service_cidr=service_cidr)
    else:
        validator(obj, errors)
    return errors.items


# The Gateway API kinds are validated apart (their own module, merged here).
from .ingress.gateway_validation import GATEWAY_VALIDATORS  # noqa: E402
VALIDATORS.update(GATEWAY_VALIDATORS)
