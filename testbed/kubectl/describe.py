"""`kubectl describe` layouts, ported from k8s.io/kubectl/pkg/describe/describe.go.

Describers are pure: they take the object and a `DescribeContext` (the time, the events recorded for
an object, and a read-only lookup of related objects such as a Service's EndpointSlices), and return
text laid out by Go's tabwriter rules (padding 2), as kubectl's `tabbedString` does.

Not shown because the testbed does not model them: node capacity/allocatable and resource requests
(no `Allocated resources` section, no CPU/memory columns in a node's pod list), node leases.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from .format import TabWriter, age, format_label_selector, format_labels, rfc1123z
from .tables import node_roles

SKIPPED_ANNOTATIONS = {"kubectl.kubernetes.io/last-applied-configuration"}
MAX_ANNOTATION_LEN = 140
# Events carry no source here, so the component that records each reason names it, as in a cluster.
EVENT_SOURCES = {"Scheduled": "default-scheduler", "ScalingReplicaSet": "deployment-controller",
                 "SuccessfulCreate": "replicaset-controller", "SuccessfulDelete": "replicaset-controller",
                 "IPAllocated": "metallb-controller", "AllocationFailed": "metallb-controller",
                 **{reason: "nginx-ingress-controller" for reason in (
                     "Sync", "RELOAD", "AnnotationParsingFailed", "AnnotationIgnored", "ServiceUnavailable",
                     "TLSCertificateUnusable", "PathOverlap", "ConfigMapIgnored", "InvalidCertificateRef",
                     "HostnameConflict")}}


@dataclass(frozen=True)
class DescribeContext:
    now: datetime
    events: Callable[[dict], list[dict] | None]     # events recorded for an object (None: do not show)
    related: Callable[[str, str | None], list[dict]]  # objects of a kind in a namespace (None: everywhere)


class PrefixWriter:
    """kubectl's PrefixWriter over a tabwriter: each level indents by two spaces."""

    def __init__(self) -> None:
        self.tabs = TabWriter(minwidth=0, padding=2)

    def __call__(self, level: int, text: str) -> None:
        self.tabs.write("  " * level + text)

    def labels(self, title: str, labels: dict | None, indent: str = "") -> None:
        self.tabs.write(f"{indent}{title}:\t")
        if not labels:
            self.tabs.write("<none>\n")
        for i, key in enumerate(sorted(labels or {})):
            self.tabs.write(f"{indent}\t" if i else "")
            self.tabs.write(f"{key}={labels[key]}\n")

    def annotations(self, title: str, annotations: dict | None, indent: str = "") -> None:
        self.tabs.write(f"{indent}{title}:\t")
        keys = sorted(k for k in annotations or {} if k not in SKIPPED_ANNOTATIONS)
        if not keys:
            self.tabs.write("<none>\n")
        for i, key in enumerate(keys):
            self.tabs.write(f"{indent}\t" if i else "")
            value = str(annotations[key]).removesuffix("\n")
            if len(value) + len(key) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
                self.tabs.write(f"{key}:\n")
                for part in value.split("\n"):
                    short = part if len(part) <= MAX_ANNOTATION_LEN - 2 else part[:MAX_ANNOTATION_LEN - 2] + "..."
                    self.tabs.write(f"{indent}\t  {short}\n")
            else:
                self.tabs.write(f"{key}: {value}\n")

    def events(self, events: list[dict] | None, now: datetime) -> None:
        if events is None:   # --show-events=false
            return
        if not events:
            self(0, "Events:\t<none>\n")
            return
        self.tabs.flush()
        self(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
        self(1, "----\t------\t----\t----\t-------\n")
        for event in sorted(events, key=lambda e: e.get("time", "")):
            source = event.get("source") or EVENT_SOURCES.get(event.get("reason", ""), "testbed")
            self(1, f"{event.get('type', '')}\t{event.get('reason', '')}\t{age(event.get('time'), now)}\t"
                    f"{source}\t{str(event.get('message', '')).strip()}\n")

    def text(self) -> str:
        return self.tabs.getvalue()


def _meta(obj: dict) -> tuple[str, str]:
    return obj["metadata"]["name"], obj["metadata"].get("namespace", "")


def _header(obj: dict) -> "PrefixWriter":
    """A writer that already holds kubectl's common head: Name, Namespace, Labels, Annotations."""
    w = PrefixWriter()
    name, namespace = _meta(obj)
    w(0, f"Name:\t{name}\n")
    w(0, f"Namespace:\t{namespace}\n")
    w.labels("Labels", obj["metadata"].get("labels"))
    w.annotations("Annotations", obj["metadata"].get("annotations"))
    return w


def _controller(obj: dict) -> str:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return ""


def _owned_by(objects: list[dict], owner: dict) -> list[dict]:
    uid = owner["metadata"].get("uid")
    return [o for o in objects if any(r.get("controller") and r.get("uid") == uid
                                      for r in o["metadata"].get("ownerReferences") or [])]


# ---------------------------------------------------------------------------------------------
# Containers and pod templates
# ---------------------------------------------------------------------------------------------

def _describe_probe(probe: dict) -> str:
    attrs = (f"delay={probe.get('initialDelaySeconds', 0)}s timeout={probe.get('timeoutSeconds', 1)}s "
             f"period={probe.get('periodSeconds', 10)}s #success={probe.get('successThreshold', 1)} "
             f"#failure={probe.get('failureThreshold', 3)}")
    if "exec" in probe:
        return f"exec [{' '.join(probe['exec'].get('command') or [])}] {attrs}"
    if "httpGet" in probe:
        get = probe["httpGet"]
        scheme = str(get.get("scheme", "HTTP")).lower()
        return f"http-get {scheme}://{get.get('host', '')}:{get.get('port', '')}{get.get('path', '')} {attrs}"
    if "tcpSocket" in probe:
        return f"tcp-socket {probe['tcpSocket'].get('host', '')}:{probe['tcpSocket'].get('port', '')} {attrs}"
    if "grpc" in probe:
        return f"grpc <pod>:{probe['grpc'].get('port')} {probe['grpc'].get('service', '')} {attrs}"
    return f"unknown {attrs}"


def _ports_text(ports: list[dict], field: str) -> str:
    return ", ".join(f"{p.get(field, 0)}/{p.get('protocol', 'TCP')}" + (f" ({p['name']})" if p.get("name") else "")
                     for p in ports)


def _container_state(w: PrefixWriter, title: str, state: dict) -> None:
    if state.get("running") is not None:
        w(2, f"{title}:\tRunning\n")
        w(3, f"Started:\t{rfc1123z(state['running'].get('startedAt'))}\n")
    elif state.get("terminated") is not None:
        terminated = state["terminated"]
        w(2, f"{title}:\tTerminated\n")
        for key, label in (("reason", "Reason"), ("message", "Message")):
            if terminated.get(key):
                w(3, f"{label}:\t{terminated[key]}\n")
        w(3, f"Exit Code:\t{terminated.get('exitCode', 0)}\n")
        if terminated.get("signal"):
            w(3, f"Signal:\t{terminated['signal']}\n")
        w(3, f"Started:\t{rfc1123z(terminated.get('startedAt'))}\n")
        w(3, f"Finished:\t{rfc1123z(terminated.get('finishedAt'))}\n")
    else:
        w(2, f"{title}:\tWaiting\n")
        if (state.get("waiting") or {}).get("reason"):
            w(3, f"Reason:\t{state['waiting']['reason']}\n")


FIELD_PATHS = {"metadata.name": ("metadata", "name"), "metadata.namespace": ("metadata", "namespace"),
               "spec.nodeName": ("spec", "nodeName"), "spec.serviceAccountName": ("spec", "serviceAccountName"),
               "status.podIP": ("status", "podIP"), "status.hostIP": ("status", "hostIP")}


def _field_value(pod: dict | None, path: str) -> str:
    """The downward-API value describe shows next to a fieldRef (empty for a pod template)."""
    if pod is None or path not in FIELD_PATHS:
        return ""
    section, key = FIELD_PATHS[path]
    return str((pod.get(section) or {}).get(key, ""))


def _containers(w: PrefixWriter, label: str, containers: list[dict], statuses: list[dict] | None, space: str,
                pod: dict | None = None) -> None:
    by_name = {s.get("name"): s for s in statuses or []}
    w(0, f"{space}{label}:{'' if containers else ' <none>'}\n")
    for container in containers:
        status = by_name.get(container.get("name"))
        w(1, f"{' ' if space else ''}{container.get('name')}:\n")
        if status is not None:
            w(2, f"Container ID:\t{status.get('containerID', '')}\n")
        w(2, f"Image:\t{container.get('image', '')}\n")
        if status is not None:
            w(2, f"Image ID:\t{status.get('imageID', '')}\n")
        ports = container.get("ports") or []
        for field, one, many in (("containerPort", "Port", "Ports"), ("hostPort", "Host Port", "Host Ports")):
            text = _ports_text(ports, field)
            w(2, f"{many if ',' in text else one}:\t{text or '<none>'}\n")
        for key, title in (("command", "Command"), ("args", "Args")):
            if container.get(key):
                w(2, f"{title}:\n")
                for item in container[key]:
                    for part in str(item).split("\n"):
                        w(3, f"{part}\n")
        if status is not None:
            _container_state(w, "State", status.get("state") or {})
            if ((status.get("lastState") or {}).get("terminated")) is not None:
                _container_state(w, "Last State", status["lastState"])
            w(2, f"Ready:\t{'True' if status.get('ready') else 'False'}\n")
            w(2, f"Restart Count:\t{status.get('restartCount', 0)}\n")
        resources = container.get("resources") or {}
        for key, title in (("limits", "Limits"), ("requests", "Requests")):
            if resources.get(key):
                w(2, f"{title}:\n")
                for name in sorted(resources[key]):
                    w(3, f"{name}:\t{resources[key][name]}\n")
        for key, title in (("livenessProbe", "Liveness"), ("readinessProbe", "Readiness"), ("startupProbe", "Startup")):
            if container.get(key):
                w(2, f"{title}:\t{_describe_probe(container[key])}\n")
        env = container.get("env") or []
        w(2, f"Environment:{'' if env else chr(9) + '<none>'}\n")
        for var in env:
            if "valueFrom" not in var:
                w(3, f"{var.get('name')}:\t{var.get('value', '')}\n")
            else:
                source = var["valueFrom"]
                if "fieldRef" in source:
                    path = source["fieldRef"].get("fieldPath", "")
                    w(3, f"{var.get('name')}:\t{_field_value(pod, path)} "
                         f"({source['fieldRef'].get('apiVersion', 'v1')}:{path})\n")
                elif "secretKeyRef" in source or "configMapKeyRef" in source:
                    ref = source.get("secretKeyRef") or source.get("configMapKeyRef")
                    what = "in secret" if "secretKeyRef" in source else "of config map"
                    w(3, f"{var.get('name')}:\t<set to the key '{ref.get('key')}' {what} '{ref.get('name')}'>\t"
                         f"Optional: {'true' if ref.get('optional') else 'false'}\n")
        mounts = sorted(container.get("volumeMounts") or [], key=lambda m: m.get("mountPath", ""))
        w(2, f"Mounts:{'' if mounts else chr(9) + '<none>'}\n")
        for mount in mounts:
            w(3, f"{mount.get('mountPath')} from {mount.get('name')} ({'ro' if mount.get('readOnly') else 'rw'})\n")


def _volumes(w: PrefixWriter, volumes: list[dict], space: str) -> None:
    if not volumes:
        w(0, f"{space}Volumes:\t<none>\n")
        return
    w(0, f"{space}Volumes:\n")
    for volume in volumes:
        w(1, f"{' ' if space else ''}{volume.get('name')}:\n")
        if "configMap" in volume:
            w(2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n")
            w(2, f"Name:\t{volume['configMap'].get('name', '')}\n")
            w(2, f"Optional:\t{'true' if volume['configMap'].get('optional') else 'false'}\n")
        elif "secret" in volume:
            w(2, "Type:\tSecret (a volume populated by a Secret)\n")
            w(2, f"SecretName:\t{volume['secret'].get('secretName', '')}\n")
            w(2, f"Optional:\t{'true' if volume['secret'].get('optional') else 'false'}\n")
        elif "emptyDir" in volume:
            w(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n")
            w(2, f"Medium:\t{(volume['emptyDir'] or {}).get('medium', '')}\n")
            w(2, f"SizeLimit:\t{(volume['emptyDir'] or {}).get('sizeLimit', '<unset>')}\n")
        elif "hostPath" in volume:
            w(2, "Type:\tHostPath (bare host directory volume)\n")
            w(2, f"Path:\t{volume['hostPath'].get('path', '')}\n")
            w(2, f"HostPathType:\t{volume['hostPath'].get('type', '<none>')}\n")
        else:
            w(1, "<unknown>\n")


def _tolerations(w: PrefixWriter, tolerations: list[dict], indent: str = "") -> None:
    w.tabs.write(f"{indent}Tolerations:\t")
    if not tolerations:
        w.tabs.write("<none>\n")
    for i, toleration in enumerate(sorted(tolerations or [], key=lambda t: t.get("key", ""))):
        text = toleration.get("key", "")
        text += f"={toleration['value']}" if toleration.get("value") else ""
        text += f":{toleration['effect']}" if toleration.get("effect") else ""
        if toleration.get("operator") == "Exists" and not toleration.get("value"):
            text += " op=Exists" if toleration.get("key") or toleration.get("effect") else "op=Exists"
        if toleration.get("tolerationSeconds") is not None:
            text += f" for {toleration['tolerationSeconds']}s"
        w.tabs.write((f"{indent}\t" if i else "") + text + "\n")


def describe_pod_template(w: PrefixWriter, template: dict) -> None:
    meta, spec = template.get("metadata") or {}, template.get("spec") or {}
    w(0, "Pod Template:\n")
    w.labels("Labels", meta.get("labels"), indent="  ")
    if meta.get("annotations"):
        w.annotations("Annotations", meta["annotations"], indent="  ")
    if spec.get("serviceAccountName"):
        w(1, f"Service Account:\t{spec['serviceAccountName']}\n")
    if spec.get("initContainers"):
        _containers(w, "Init Containers", spec["initContainers"], None, "  ")
    _containers(w, "Containers", spec.get("containers") or [], None, "  ")
    _volumes(w, spec.get("volumes") or [], "  ")
    w.labels("Node-Selectors", spec.get("nodeSelector"), indent="  ")
    _tolerations(w, spec.get("tolerations") or [], indent="  ")


# ---------------------------------------------------------------------------------------------
# Describers
# ---------------------------------------------------------------------------------------------

def describe_pod(pod: dict, ctx: DescribeContext) -> str:
    w = PrefixWriter()
    name, namespace = _meta(pod)
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod["metadata"]
    w(0, f"Name:\t{name}\n")
    w(0, f"Namespace:\t{namespace}\n")
    if spec.get("priority") is not None:
        w(0, f"Priority:\t{spec['priority']}\n")
    if spec.get("priorityClassName"):
        w(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    if spec.get("serviceAccountName"):
        w(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    node = spec.get("nodeName")
    w(0, f"Node:\t{node}/{status.get('hostIP', '')}\n" if node else "Node:\t<none>\n")
    if status.get("startTime"):
        w(0, f"Start Time:\t{rfc1123z(status['startTime'])}\n")
    w.labels("Labels", meta.get("labels"))
    w.annotations("Annotations", meta.get("annotations"))
    if meta.get("deletionTimestamp") and status.get("phase") not in ("Failed", "Succeeded"):
        w(0, f"Status:\tTerminating (lasts {age(meta['deletionTimestamp'], ctx.now)})\n")
        w(0, f"Termination Grace Period:\t{meta.get('deletionGracePeriodSeconds', 30)}s\n")
    else:
        w(0, f"Status:\t{status.get('phase', '')}\n")
    for key, title in (("reason", "Reason"), ("message", "Message")):
        if status.get(key):
            w(0, f"{title}:\t{status[key]}\n")
    w(0, f"IP:\t{status.get('podIP', '')}\n")
    if status.get("podIPs"):
        w(0, "IPs:\n")
        for ip in status["podIPs"]:
            w(1, f"IP:\t{ip.get('ip', '')}\n")
    else:
        w(0, "IPs:\t<none>\n")
    if _controller(pod):
        w(0, f"Controlled By:\t{_controller(pod)}\n")
    if status.get("nominatedNodeName"):
        w(0, f"NominatedNodeName:\t{status['nominatedNodeName']}\n")
    if spec.get("initContainers"):
        _containers(w, "Init Containers", spec["initContainers"], status.get("initContainerStatuses"), "", pod)
    _containers(w, "Containers", spec.get("containers") or [], status.get("containerStatuses") or [], "", pod)
    if status.get("conditions"):
        w(0, "Conditions:\n  Type\tStatus\n")
        for condition in status["conditions"]:
            w(1, f"{condition.get('type')} \t{condition.get('status')} \n")
    _volumes(w, spec.get("volumes") or [], "")
    w(0, f"QoS Class:\t{status.get('qosClass', 'BestEffort')}\n")
    w.labels("Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, spec.get("tolerations") or [])
    w.events(ctx.events(pod), ctx.now)
    return w.text()


def format_endpoint_slices(slices: list[dict], port_name: str | None) -> str:
    """formatEndpointSlices: ready endpoints of the slices for one Service port name (None: all)."""
    if not slices:
        return "<none>"
    items, count = [], 0
    for endpoint_slice in slices:
        ready = [e for e in endpoint_slice.get("endpoints") or []
                 if (e.get("conditions") or {}).get("ready") is not False and e.get("addresses")]
        ports = endpoint_slice.get("ports") or []
        if not ports:
            items += [e["addresses"][0] for e in ready]
            count += len(ready)
        for port in ports:
            if port_name is None or (port.get("name") or "") == port_name:
                items += [f"{e['addresses'][0]}:{port.get('port')}" for e in ready]
                count += len(ready)
    text = ",".join(items[:3])
    return f"{text} + {count - 3} more..." if count > 3 else text


def _service_slices(ctx: DescribeContext, namespace: str, service: str) -> list[dict]:
    return [s for s in ctx.related("EndpointSlice", namespace)
            if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == service]


def describe_service(service: dict, ctx: DescribeContext) -> str:
    w = PrefixWriter()
    name, namespace = _meta(service)
    spec, status = service.get("spec") or {}, service.get("status") or {}
    slices = _service_slices(ctx, namespace, name)
    w(0, f"Name:\t{name}\n")
    w(0, f"Namespace:\t{namespace}\n")
    w.labels("Labels", service["metadata"].get("labels"))
    w.annotations("Annotations", service["metadata"].get("annotations"))
    w(0, f"Selector:\t{format_labels(spec.get('selector'))}\n")
    w(0, f"Type:\t{spec.get('type', 'ClusterIP')}\n")
    if spec.get("ipFamilyPolicy"):
        w(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    w(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or '<none>'}\n")
    w(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    w(0, f"IPs:\t{','.join(spec.get('clusterIPs') or []) or '<none>'}\n")
    if spec.get("externalIPs"):
        w(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("loadBalancerIP"):
        w(0, f"Desired LoadBalancer IP:\t{spec['loadBalancerIP']}\n")
    if spec.get("externalName"):
        w(0, f"External Name:\t{spec['externalName']}\n")
    lb_ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    if lb_ingress:
        w(0, "LoadBalancer Ingress:\t" + ", ".join(
            (i["ip"] + (f" ({i['ipMode']})" if i.get("ipMode") else "")) if i.get("ip") else i.get("hostname", "")
            for i in lb_ingress) + "\n")
    for port in spec.get("ports") or []:
        port_name = port.get("name") or "<unset>"
        protocol = port.get("protocol", "TCP")
        w(0, f"Port:\t{port_name}\t{port.get('port')}/{protocol}\n")
        w(0, f"TargetPort:\t{port.get('targetPort', port.get('port'))}/{protocol}\n")
        if port.get("appProtocol"):
            w(0, f"AppProtocol:\t{port['appProtocol']}\n")
        if port.get("nodePort"):
            w(0, f"NodePort:\t{port_name}\t{port['nodePort']}/{protocol}\n")
        w(0, f"Endpoints:\t{format_endpoint_slices(slices, port.get('name') or '')}\n")
    w(0, f"Session Affinity:\t{spec.get('sessionAffinity', 'None')}\n")
    if spec.get("externalTrafficPolicy"):
        w(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if spec.get("internalTrafficPolicy"):
        w(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    if spec.get("healthCheckNodePort"):
        w(0, f"HealthCheck NodePort:\t{spec['healthCheckNodePort']}\n")
    if spec.get("loadBalancerSourceRanges"):
        w(0, f"LoadBalancer Source Ranges:\t{','.join(spec['loadBalancerSourceRanges'])}\n")
    if spec.get("trafficDistribution"):
        w(0, f"Traffic Distribution:\t{spec['trafficDistribution']}\n")
    w.events(ctx.events(service), ctx.now)
    return w.text()


def describe_endpoints(endpoints: dict, ctx: DescribeContext) -> str:
    w = _header(endpoints)
    name, namespace = _meta(endpoints)
    w(0, "Subsets:\n")
    for subset in endpoints.get("subsets") or []:
        for key, title in (("addresses", "Addresses"), ("notReadyAddresses", "NotReadyAddresses")):
            w(1, f"{title}:\t{','.join(a.get('ip', '') for a in subset.get(key) or []) or '<none>'}\n")
        if subset.get("ports"):
            w(1, "Ports:\n")
            w(2, "Name\tPort\tProtocol\n")
            w(2, "----\t----\t--------\n")
            for port in subset["ports"]:
                w(2, f"{port.get('name') or '<unset>'}\t{port.get('port')}\t{port.get('protocol', 'TCP')}\n")
        w(0, "\n")
    w.events(ctx.events(endpoints), ctx.now)
    return w.text()


def describe_endpoint_slice(endpoint_slice: dict, ctx: DescribeContext) -> str:
    w = _header(endpoint_slice)
    name, namespace = _meta(endpoint_slice)
    w(0, f"AddressType:\t{endpoint_slice.get('addressType', '')}\n")
    ports = endpoint_slice.get("ports") or []
    if not ports:
        w(0, "Ports: <unset>\n")
    else:
        w(0, "Ports:\n")
        w(1, "Name\tPort\tProtocol\n")
        w(1, "----\t----\t--------\n")
        for port in ports:
            port_number = port.get("port")
            w(1, f"{port.get('name') or '<unset>'}\t{'<unset>' if port_number is None else port_number}\t"
                 f"{port.get('protocol', 'TCP')}\n")
    endpoints = endpoint_slice.get("endpoints") or []
    if not endpoints:
        w(0, "Endpoints: <none>\n")
    else:
        w(0, "Endpoints:\n")
        for endpoint in endpoints:
            conditions = endpoint.get("conditions") or {}
            w(1, f"- Addresses:\t{', '.join(endpoint.get('addresses') or []) or '<none>'}\n")
            w(2, "Conditions:\n")
            ready = conditions.get("ready")
            w(3, f"Ready:\t{'<unset>' if ready is None else str(ready).lower()}\n")
            w(2, f"Hostname:\t{endpoint.get('hostname', '<unset>')}\n")
            ref = endpoint.get("targetRef")
            w(2, f"TargetRef:\t{ref.get('kind')}/{ref.get('name')}\n" if ref else "TargetRef:\t<unset>\n")
            w(2, f"NodeName:\t{endpoint.get('nodeName', '<unset>')}\n")
            w(2, f"Zone:\t{endpoint.get('zone', '<unset>')}\n")
    w.events(ctx.events(endpoint_slice), ctx.now)
    return w.text()


def _new_and_old_replica_sets(deployment: dict, replica_sets: list[dict]) -> tuple[list[dict], list[dict]]:
    """The ReplicaSet whose template is the Deployment's (ignoring pod-template-hash), and the older
    ones that still have pods, as deploymentutil.GetAllReplicaSets finds them."""
    def without_hash(template: dict) -> dict:
        meta = dict(template.get("metadata") or {})
        meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k != "pod-template-hash"}
        return {**template, "metadata": meta}
    wanted = without_hash((deployment.get("spec") or {}).get("template") or {})
    new = [rs for rs in replica_sets if without_hash(rs["spec"].get("template") or {}) == wanted][:1]
    old = [rs for rs in replica_sets if rs not in new
           and (rs["spec"].get("replicas", 0) or (rs.get("status") or {}).get("replicas", 0))]
    return new, old


def _replica_sets_text(replica_sets: list[dict]) -> str:
    return ", ".join(f"{rs['metadata']['name']} ({(rs.get('status') or {}).get('replicas', 0)}/"
                     f"{rs['spec'].get('replicas', 0)} replicas created)" for rs in replica_sets) or "<none>"


def describe_deployment(deployment: dict, ctx: DescribeContext) -> str:
    w = PrefixWriter()
    name, namespace = _meta(deployment)
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    selector = format_label_selector(spec.get("selector"))
    w(0, f"Name:\t{name}\n")
    w(0, f"Namespace:\t{namespace}\n")
    w(0, f"CreationTimestamp:\t{rfc1123z(deployment['metadata'].get('creationTimestamp'))}\n")
    w.labels("Labels", deployment["metadata"].get("labels"))
    w.annotations("Annotations", deployment["metadata"].get("annotations"))
    w(0, f"Selector:\t{'' if selector == '<none>' else selector}\n")
    w(0, f"Replicas:\t{spec.get('replicas', 1)} desired | {status.get('updatedReplicas', 0)} updated | "
         f"{status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} available | "
         f"{status.get('unavailableReplicas', 0)} unavailable\n")
    strategy = spec.get("strategy") or {}
    w(0, f"StrategyType:\t{strategy.get('type', '')}\n")
    w(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}\n")
    if strategy.get("rollingUpdate"):
        rolling = strategy["rollingUpdate"]
        w(0, f"RollingUpdateStrategy:\t{rolling.get('maxUnavailable')} max unavailable, "
             f"{rolling.get('maxSurge')} max surge\n")
    describe_pod_template(w, spec.get("template") or {})
    if status.get("conditions"):
        w(0, "Conditions:\n  Type\tStatus\tReason\n")
        w(1, "----\t------\t------\n")
        for condition in status["conditions"]:
            w(1, f"{condition.get('type')} \t{condition.get('status')}\t{condition.get('reason', '')}\n")
    new, old = _new_and_old_replica_sets(deployment, _owned_by(ctx.related("ReplicaSet", namespace), deployment))
    if new or old:
        w(0, f"OldReplicaSets:\t{_replica_sets_text(old)}\n")
        w(0, f"NewReplicaSet:\t{_replica_sets_text(new)}\n")
    w.events(ctx.events(deployment), ctx.now)
    return w.text()


def _pods_status(pods: list[dict]) -> str:
    phases = [(p.get("status") or {}).get("phase") for p in pods]
    return (f"{phases.count('Running')} Running / {phases.count('Pending')} Waiting / "
            f"{phases.count('Succeeded')} Succeeded / {phases.count('Failed')} Failed")


def describe_replica_set(obj: dict, ctx: DescribeContext) -> str:
    """ReplicaSets and ReplicationControllers."""
    w = PrefixWriter()
    name, namespace = _meta(obj)
    spec = obj.get("spec") or {}
    is_rc = obj["kind"] == "ReplicationController"
    w(0, f"Name:\t{name}\n")
    w(0, f"Namespace:\t{namespace}\n")
    w(0, f"Selector:\t{format_labels(spec.get('selector')) if is_rc else format_label_selector(spec.get('selector'))}\n")
    w.labels("Labels", obj["metadata"].get("labels"))
    w.annotations("Annotations", obj["metadata"].get("annotations"))
    if not is_rc and _controller(obj):
        w(0, f"Controlled By:\t{_controller(obj)}\n")
    w(0, f"Replicas:\t{(obj.get('status') or {}).get('replicas', 0)} current / {spec.get('replicas', 1)} desired\n")
    w(0, f"Pods Status:\t{_pods_status(_owned_by(ctx.related('Pod', namespace), obj))}\n")
    describe_pod_template(w, spec.get("template") or {})
    w.events(ctx.events(obj), ctx.now)
    return w.text()


def _ingress_backend(backend: dict, namespace: str, ctx: DescribeContext) -> str:
    service_ref = backend.get("service")
    if service_ref:
        port = service_ref.get("port") or {}
        text = f"{service_ref.get('name')}:{port.get('number') or port.get('name', '')}"
        service = next((s for s in ctx.related("Service", namespace)
                        if s["metadata"]["name"] == service_ref.get("name")), None)
        if service is None:
            return f'{text} (<error: services "{service_ref.get("name")}" not found>)'
        port_name = ""
        for service_port in (service.get("spec") or {}).get("ports") or []:
            if (port.get("number") and port.get("number") == service_port.get("port")) or \
                    (port.get("name") and port.get("name") == service_port.get("name")):
                port_name = service_port.get("name") or ""
        return f"{text} ({format_endpoint_slices(_service_slices(ctx, namespace, service_ref['name']), port_name)})"
    resource = backend.get("resource")
    if resource:
        return f"APIGroup: {resource.get('apiGroup') or '<none>'}, Kind: {resource.get('kind')}, Name: {resource.get('name')}"
    return ""


def describe_ingress(ingress: dict, ctx: DescribeContext) -> str:
    w = PrefixWriter()
    name, namespace = _meta(ingress)
    spec = ingress.get("spec") or {}
    addresses = sorted({i.get("ip") or i.get("hostname") for i in ((ingress.get("status") or {}).get(
        "loadBalancer") or {}).get("ingress") or [] if i.get("ip") or i.get("hostname")})
    w(0, f"Name:\t{name}\n")
    w.labels("Labels", ingress["metadata"].get("labels"))
    w(0, f"Namespace:\t{namespace}\n")
    w(0, f"Address:\t{','.join(addresses)}\n")
    w(0, f"Ingress Class:\t{spec.get('ingressClassName') or '<none>'}\n")
    default = _ingress_backend(spec["defaultBackend"], namespace, ctx) if spec.get("defaultBackend") else "<default>"
    w(0, f"Default backend:\t{default}\n")
    if spec.get("tls"):
        w(0, "TLS:\n")
        for tls in spec["tls"]:
            hosts = ",".join(tls.get("hosts") or [])
            w(1, f"{tls['secretName']} terminates {hosts}\n" if tls.get("secretName") else f"SNI routes {hosts}\n")
    w(0, "Rules:\n  Host\tPath\tBackends\n")
    w(1, "----\t----\t--------\n")
    rules = [r for r in spec.get("rules") or [] if r.get("http")]
    for rule in rules:
        w(1, f"{rule.get('host') or '*'}\t\n")
        for path in rule["http"].get("paths") or []:
            w(2, f"\t{path.get('path', '')} \t{_ingress_backend(path.get('backend') or {}, namespace, ctx)}\n")
    if not rules:
        w(1, f"*\t*\t{default}\n")
    w.annotations("Annotations", ingress["metadata"].get("annotations"))
    w.events(ctx.events(ingress), ctx.now)
    return w.text()


def describe_node(node: dict, ctx: DescribeContext) -> str:
    w = PrefixWriter()
    name = node["metadata"]["name"]
    spec, status = node.get("spec") or {}, node.get("status") or {}
    w(0, f"Name:\t{name}\n")
    w(0, f"Roles:\t{','.join(node_roles(node)) or '<none>'}\n")
    w.labels("Labels", node["metadata"].get("labels"))
    w.annotations("Annotations", node["metadata"].get("annotations"))
    w(0, f"CreationTimestamp:\t{rfc1123z(node['metadata'].get('creationTimestamp'))}\n")
    taints = spec.get("taints") or []
    w(0, "Taints:\t" + ("<none>" if not taints else "\n\t".join(
        f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}" for t in taints)) + "\n")
    w(0, f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}\n")
    if status.get("conditions"):
        w(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n")
        w(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in status["conditions"]:
            w(1, f"{c.get('type')} \t{c.get('status')} \t{rfc1123z(c.get('lastHeartbeatTime'))} \t"
                 f"{rfc1123z(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t{c.get('message', '')}\n")
    w(0, "Addresses:\n")
    for address in status.get("addresses") or []:
        w(1, f"{address.get('type')}:\t{address.get('address')}\n")
    info = status.get("nodeInfo") or {}
    w(0, "System Info:\n")
    for key, title in (("machineID", "Machine ID"), ("systemUUID", "System UUID"), ("bootID", "Boot ID"),
                       ("kernelVersion", "Kernel Version"), ("osImage", "OS Image"),
                       ("operatingSystem", "Operating System"), ("architecture", "Architecture"),
                       ("containerRuntimeVersion", "Container Runtime Version"),
                       ("kubeletVersion", "Kubelet Version")):
        w(0, f"  {title}:\t{info.get(key, '')}\n")
    if spec.get("podCIDR"):
        w(0, f"PodCIDR:\t{spec['podCIDR']}\n")
    if spec.get("podCIDRs"):
        w(0, f"PodCIDRs:\t{','.join(spec['podCIDRs'])}\n")
    pods = [p for p in ctx.related("Pod", None) if (p.get("spec") or {}).get("nodeName") == name
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    w(0, f"Non-terminated Pods:\t({len(pods)} in total)\n")
    w(1, "Namespace\tName\tAge\n")
    w(1, "---------\t----\t---\n")
    for pod in pods:
        w(1, f"{pod['metadata'].get('namespace')}\t{pod['metadata']['name']}\t"
             f"{age(pod['metadata'].get('creationTimestamp'), ctx.now)}\n")
    w.events(ctx.events(node), ctx.now)
    return w.text()


def describe_namespace(namespace: dict, ctx: DescribeContext) -> str:
    w = PrefixWriter()
    w(0, f"Name:\t{namespace['metadata']['name']}\n")
    w.labels("Labels", namespace["metadata"].get("labels"))
    w.annotations("Annotations", namespace["metadata"].get("annotations"))
    w(0, f"Status:\t{(namespace.get('status') or {}).get('phase', '')}\n")
    w(0, "\nNo resource quota.\n\nNo LimitRange resource.\n")
    return w.text()


def _decoded_size(value) -> int:
    """Bytes of a base64 `data`/`binaryData` value, which is what kubectl counts."""
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value))


def describe_config_map(configmap: dict, ctx: DescribeContext) -> str:
    w = _header(configmap)
    name, namespace = _meta(configmap)
    w(0, "\nData\n====\n")
    for key in sorted(configmap.get("data") or {}):
        w(0, f"{key}:\n----\n{configmap['data'][key]}\n\n")
    w(0, "\nBinaryData\n====\n")
    for key in sorted(configmap.get("binaryData") or {}):
        w(0, f"{key}: {_decoded_size(configmap['binaryData'][key])} bytes\n")
    w(0, "\n")
    w.events(ctx.events(configmap), ctx.now)
    return w.text()


def describe_secret(secret: dict, ctx: DescribeContext) -> str:
    w = _header(secret)
    name, namespace = _meta(secret)
    w(0, f"\nType:\t{secret.get('type', 'Opaque')}\n")
    w(0, "\nData\n====\n")
    sizes = {k: len(str(v).encode()) for k, v in (secret.get("stringData") or {}).items()}
    sizes.update({k: _decoded_size(v) for k, v in (secret.get("data") or {}).items()})
    for key in sorted(sizes):
        w(0, f"{key}:\t{sizes[key]} bytes\n")
    return w.text()


def describe_ingress_class(ingress_class: dict, ctx: DescribeContext) -> str:
    w = PrefixWriter()
    spec = ingress_class.get("spec") or {}
    w(0, f"Name:\t{ingress_class['metadata']['name']}\n")
    w.labels("Labels", ingress_class["metadata"].get("labels"))
    w.annotations("Annotations", ingress_class["metadata"].get("annotations"))
    w(0, f"Controller:\t{spec.get('controller', '')}\n")
    if spec.get("parameters"):
        w(0, "Parameters:\n")
        if spec["parameters"].get("apiGroup"):
            w(1, f"APIGroup:\t{spec['parameters']['apiGroup']}\n")
        w(1, f"Kind:\t{spec['parameters'].get('kind')}\n")
        w(1, f"Name:\t{spec['parameters'].get('name')}\n")
    w.events(ctx.events(ingress_class), ctx.now)
    return w.text()


def describe_custom_resource(obj: dict, ctx: DescribeContext) -> str:
    """kubectl's generic describer (custom resources such as the Gateway API kinds): the head, then
    the object's fields as YAML-like indented text, then the events."""
    from .format import dump_yaml
    w = PrefixWriter()
    name, namespace = _meta(obj)
    w(0, f"Name:\t{name}\n")
    if namespace:
        w(0, f"Namespace:\t{namespace}\n")
    w.labels("Labels", obj["metadata"].get("labels"))
    w.annotations("Annotations", obj["metadata"].get("annotations"))
    w(0, f"API Version:\t{obj.get('apiVersion', '')}\n")
    w(0, f"Kind:\t{obj.get('kind', '')}\n")
    text = w.text()
    for section in ("spec", "status"):
        if obj.get(section):
            body = dump_yaml(obj[section]).rstrip("\n").replace("\n", "\n  ")
            text += f"{section.capitalize()}:\n  {body}\n"
    events = PrefixWriter()
    events.events(ctx.events(obj), ctx.now)
    return text + events.text()


DESCRIBERS: dict[str, Callable[[dict, DescribeContext], str]] = {  # one for every kind in KINDS
    "Pod": describe_pod, "Service": describe_service, "Endpoints": describe_endpoints,
    "EndpointSlice": describe_endpoint_slice, "Deployment": describe_deployment,
    "ReplicaSet": describe_replica_set, "ReplicationController": describe_replica_set,
    "Ingress": describe_ingress, "IngressClass": describe_ingress_class, "Node": describe_node,
    "Namespace": describe_namespace, "ConfigMap": describe_config_map, "Secret": describe_secret,
    "GatewayClass": describe_custom_resource, "Gateway": describe_custom_resource,
    "HTTPRoute": describe_custom_resource, "ReferenceGrant": describe_custom_resource,
}
