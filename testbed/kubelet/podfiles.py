"""What the kubelet puts into a pod besides its processes, computed purely from API objects:
environment variables for Services, /etc/resolv.conf, /etc/hosts and the hostname."""
from __future__ import annotations

from typing import Iterable


def _env_name(service_name: str) -> str:
    return service_name.upper().replace("-", "_")


def service_env(services: Iterable[dict], namespace: str, enable_service_links: bool = True) -> dict[str, str]:
    """kubelet's getServiceEnvVarMap: `{SVC}_SERVICE_HOST/PORT[_NAME]` and the Docker-link variables
    (`{SVC}_PORT=tcp://ip:port`, `{SVC}_PORT_80_TCP_ADDR`, ...) for every Service of the pod's namespace
    with a ClusterIP, plus `default/kubernetes` always. Services created later are not seen (as in a
    real cluster: the environment is fixed when the container starts)."""
    env: dict[str, str] = {}
    chosen = []
    for service in services:
        meta, spec = service["metadata"], service.get("spec") or {}
        if spec.get("clusterIP") in (None, "", "None") or spec.get("type") == "ExternalName":
            continue
        is_master = meta.get("namespace") == "default" and meta["name"] == "kubernetes"
        if meta.get("namespace") == namespace and (enable_service_links or is_master):
            chosen.append(service)
        elif is_master:
            chosen.append(service)
    for service in sorted(chosen, key=lambda s: (s["metadata"]["namespace"] != namespace, s["metadata"]["name"])):
        name, spec = _env_name(service["metadata"]["name"]), service["spec"]
        ports = spec.get("ports") or []
        if not ports:
            continue
        host = spec["clusterIP"]
        env[f"{name}_SERVICE_HOST"] = host
        env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{name}_SERVICE_PORT_{_env_name(port['name'])}"] = str(port["port"])
        first = ports[0]
        env[f"{name}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{host}:{first['port']}"
        for port in ports:
            protocol = port.get("protocol", "TCP")
            prefix = f"{name}_PORT_{port['port']}_{protocol.upper()}"
            env[prefix] = f"{protocol.lower()}://{host}:{port['port']}"
            env[f"{prefix}_PROTO"] = protocol.lower()
            env[f"{prefix}_PORT"] = str(port["port"])
            env[f"{prefix}_ADDR"] = host
    return env


# What images set when they set nothing else (Docker's and containerd's default PATH).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ContainerConfigError(ValueError):
    """The kubelet cannot build the container's environment (CreateContainerConfigError)."""


def _decoded(secret: dict, key: str) -> str | None:
    if key in (secret.get("stringData") or {}):
        return str(secret["stringData"][key])
    value = (secret.get("data") or {}).get(key)
    if value is None:
        return None
    import base64
    return base64.b64decode("".join(str(value).split())).decode(errors="replace")


def _source_values(kind: str, obj: dict) -> dict[str, str]:
    if kind == "ConfigMap":
        return {k: str(v) for k, v in (obj.get("data") or {}).items()}
    keys = set(obj.get("data") or {}) | set(obj.get("stringData") or {})
    return {k: _decoded(obj, k) or "" for k in sorted(keys)}


def container_env(pod: dict, container: dict, service_vars: dict[str, str], lookup=None) -> dict[str, str]:
    """The environment a container starts with, as kubelet_pods.go makeEnvironmentVariables builds
    it and a container runtime completes it:

    - what the image sets (modelled: the default PATH) and what the runtime adds (HOSTNAME, the
      pod's hostname; HOME=/root when nothing set it);
    - `envFrom` (ConfigMaps and Secrets, with their prefix), then `env` (literal values, the
      downward API fields the testbed knows, configMapKeyRef, secretKeyRef), later entries winning;
    - the Service variables, each only where the container did not define that name.

    `lookup(kind, namespace, name)` returns a ConfigMap or Secret (None when absent). A missing
    source that is not optional raises ContainerConfigError, as the kubelet fails the container."""
    namespace = pod["metadata"].get("namespace", "default")
    meta, status = pod["metadata"], pod.get("status") or {}
    lookup = lookup or (lambda kind, ns, name: None)
    defined: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(field)
            if not ref:
                continue
            obj = lookup(kind, namespace, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            for key, value in _source_values(kind, obj).items():
                defined[source.get("prefix", "") + key] = value
    field_values = {"metadata.name": meta["name"], "metadata.namespace": namespace,
                    "metadata.uid": meta.get("uid", ""), "spec.nodeName": pod["spec"].get("nodeName", ""),
                    "status.podIP": status.get("podIP", ""), "status.hostIP": status.get("hostIP", ""),
                    "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default")}
    for item in container.get("env") or []:
        if "value" in item or not item.get("valueFrom"):
            defined[item["name"]] = str(item.get("value", ""))
            continue
        source = item["valueFrom"]
        if "fieldRef" in source:
            field = source["fieldRef"].get("fieldPath")
            if field in field_values:
                defined[item["name"]] = field_values[field]
            continue
        for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            ref = source.get(field)
            if not ref:
                continue
            obj = lookup(kind, namespace, ref.get("name", ""))
            value = None if obj is None else _source_values(kind, obj).get(ref.get("key", ""))
            if value is None:
                if ref.get("optional"):
                    continue
                what = f'{kind.lower()} "{ref.get("name", "")}" not found' if obj is None else \
                    f'couldn\'t find key {ref.get("key", "")} in {kind} {namespace}/{ref.get("name", "")}'
                raise ContainerConfigError(what)
            defined[item["name"]] = value
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": pod_hostname(pod)}
    env.update(defined)
    for name, value in service_vars.items():
        if name not in defined:
            env[name] = value
    env.setdefault("HOME", "/root")
    return env


def exec_size(env: dict[str, str], argv=()) -> int:
    """Bytes execve(2) needs for the arguments and environment: strings with their NULs plus one
    pointer each (what counts against ARG_MAX)."""
    strings = [f"{k}={v}" for k, v in env.items()] + list(argv)
    return sum(len(s.encode()) + 1 + 8 for s in strings) + 16


def fits_exec(env: dict[str, str], argv=()) -> bool:
    """Whether a process could be started with this environment (ARG_MAX and the 128 KiB limit on
    one string, MAX_ARG_STRLEN)."""
    import os
    limit = os.sysconf("SC_ARG_MAX")
    return exec_size(env, argv) <= limit and all(len(k) + len(v) + 2 <= 131072 for k, v in env.items())


def resolv_conf(pod: dict, dns_ip: str, domain: str = "cluster.local") -> str:
    """/etc/resolv.conf for the pod's dnsPolicy (ClusterFirst: the kube-dns VIP and the search path)."""
    spec = pod.get("spec") or {}
    namespace = pod["metadata"].get("namespace", "default")
    policy = spec.get("dnsPolicy", "ClusterFirst")
    if spec.get("hostNetwork") and policy == "ClusterFirst":
        policy = "Default"  # ClusterFirst on the host network falls back to the node's settings
    nameservers, searches, options = [], [], []
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        nameservers = [dns_ip]
        searches = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]
        options = ["ndots:5"]
    config = spec.get("dnsConfig") or {}
    nameservers += [n for n in config.get("nameservers") or [] if n not in nameservers]
    searches += [s for s in config.get("searches") or [] if s not in searches]
    for option in config.get("options") or []:
        text = option["name"] + (f":{option['value']}" if option.get("value") is not None else "")
        options = [o for o in options if o.split(":")[0] != option["name"]] + [text]
    lines = []
    if searches:
        lines.append("search " + " ".join(searches))
    lines += [f"nameserver {n}" for n in nameservers]
    if options:
        lines.append("options " + " ".join(options))
    if not nameservers:
        lines.insert(0, "# no cluster DNS for this pod (dnsPolicy %s) and no upstream resolver in the emulation"
                     % policy)
    return "\n".join(lines) + "\n"


def pod_hostname(pod: dict) -> str:
    spec = pod.get("spec") or {}
    return (spec.get("hostname") or pod["metadata"]["name"])[:63]


def hosts_file(pod: dict, domain: str = "cluster.local") -> str:
    """The kubelet-managed /etc/hosts: localhost, the pod's own name (FQDN with a subdomain), hostAliases."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix",
             "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
    hostname = pod_hostname(pod)
    if status.get("podIP"):
        if spec.get("subdomain"):
            fqdn = f"{hostname}.{spec['subdomain']}.{pod['metadata'].get('namespace', 'default')}.svc.{domain}"
            lines.append(f"{status['podIP']}\t{fqdn}\t{hostname}")
        else:
            lines.append(f"{status['podIP']}\t{hostname}")
    aliases = spec.get("hostAliases") or []
    if aliases:
        lines.append("")
        lines.append("# Entries added by HostAliases.")
        lines += [f"{a['ip']}\t" + "\t".join(a.get("hostnames") or []) for a in aliases]
    return "\n".join(lines) + "\n"
