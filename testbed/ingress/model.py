"""Ingress objects -> the controller's routing model, as ingress-nginx builds it (pure).

Follows internal/ingress/controller/controller.go (getBackendServers, createUpstreams,
createServers), location.go (updateServerLocations) and store.go, with the Kubernetes Ingress
documentation's semantics:

- **Class** (store.go, ingressclass): `spec.ingressClassName` naming an IngressClass whose
  controller is ours; else the `kubernetes.io/ingress.class` annotation equal to our class name;
  else, with neither, ours when our IngressClass carries `ingressclass.kubernetes.io/is-default-class:
  "true"` (what the API server's DefaultIngressClass admission plugin gives such Ingresses).
- **Order**: Ingresses by creationTimestamp, ties by namespace/name descending (sortIngressSlice);
  the first Ingress to define a host+path+pathType keeps it, later ones are reported as overlapping.
- **Hosts**: one server per host, merged across Ingresses; a rule without a host goes to the
  catch-all server `_`, which also answers every host no server names. `*.foo.com` becomes a regex
  server_name matching exactly one label (template.go buildServerName).
- **Path types** (k8s.SetDefaultNGINXPathType turns ImplementationSpecific into Prefix): Exact is
  `location = /p`; Prefix /p is `location /p/` plus `location = /p` (updateServerLocations), which
  gives element-wise matching. ingress-nginx keeps a trailing slash in the exact twin (`= /p/`) and
  lets nginx answer `/p` with a 301; the Kubernetes path table says Prefix `/p/` matches `/p`, so the
  twin here is `= /p` (the only deliberate difference). When any location of a server has
  `use-regex` or a `rewrite-target`, every location of that server is a case-insensitive regex
  `~* "^path"` (enforceRegexModifier), tried longest path first.
- **Default backend**: an Ingress's spec.defaultBackend serves the root of the servers it creates
  and, for an Ingress without rules, the catch-all server; otherwise the default backend answers
  404 (upstream-default-backend).
- **Upstreams** are named namespace-service-port and hold the ready endpoints' addresses (from the
  EndpointSlices), or the ClusterIP with `service-upstream: "true"`; without endpoints the
  location answers 503, as ingress-nginx's balancer does.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .annotations import LocationConfig, parse_annotations
from .settings import Settings
from .tls import Certificate, certificate_from_secret, fake_certificate

CONTROLLER = "k8s.io/ingress-nginx"
CLASS_NAME = "nginx"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
DEFAULT_SERVER = "_"
DEFAULT_UPSTREAM = "upstream-default-backend"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class Problem:
    """Something to tell the user about one object: an event, a log line, `describe`."""
    kind: str
    namespace: str
    name: str
    type: str          # "Warning" | "Normal"
    reason: str
    message: str


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int
    weight: int = 1


@dataclass(frozen=True)
class Upstream:
    name: str
    endpoints: tuple[Endpoint, ...]


@dataclass
class Location:
    path: str                       # the nginx path (normalised)
    path_type: str                  # Exact | Prefix
    upstream: str
    config: LocationConfig
    ingress: tuple[str, str] | None = None      # (namespace, name) of the Ingress it comes from
    service: str = ""
    port: str = ""
    ingress_path: str = ""          # the path as written in the Ingress
    is_default_backend: bool = False


@dataclass
class Server:
    hostname: str
    locations: list[Location] = field(default_factory=list)
    certificate: Certificate | None = None      # None: the default (fake) certificate on 443
    tls: bool = False                           # listed in an Ingress's spec.tls (redirect applies)

    @property
    def enforce_regex(self) -> bool:
        return any(needs_rewrite(loc) or loc.config.use_regex for loc in self.locations)


@dataclass
class RoutingModel:
    servers: list[Server]
    upstreams: dict[str, Upstream]
    certificates: dict[str, Certificate]
    settings: Settings
    problems: list[Problem] = field(default_factory=list)
    ingresses: list[tuple[str, str]] = field(default_factory=list)   # the Ingresses of our class
    default_ports: set[int] = field(default_factory=lambda: {80, 443})  # where the Ingress catch-all listens


@dataclass(frozen=True)
class ClusterObjects:
    """What the controller reads (lists as the API returns them)."""
    ingresses: list[dict] = field(default_factory=list)
    ingress_classes: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)
    endpoint_slices: list[dict] = field(default_factory=list)
    secrets: list[dict] = field(default_factory=list)
    configmap: dict | None = None


def needs_rewrite(location: Location) -> bool:
    return bool(location.config.rewrite_target) and location.config.rewrite_target != location.path


def _key(obj: dict) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def is_our_class(ingress: dict, classes: dict[str, dict], class_name: str = CLASS_NAME,
                 controller: str = CONTROLLER) -> bool:
    spec = ingress.get("spec") or {}
    if spec.get("ingressClassName"):
        chosen = classes.get(spec["ingressClassName"])
        return chosen is not None and (chosen.get("spec") or {}).get("controller") == controller
    annotation = (ingress["metadata"].get("annotations") or {}).get(CLASS_ANNOTATION)
    if annotation is not None:
        return annotation == class_name
    return any((c.get("spec") or {}).get("controller") == controller
               and (c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
               for c in classes.values())


def sort_ingresses(ingresses: list[dict]) -> list[dict]:
    """sortIngressSlice: creationTimestamp ascending; equal timestamps by namespace/name descending."""
    by_name = sorted(ingresses, key=lambda i: f"{i['metadata'].get('namespace', '')}/{i['metadata']['name']}",
                     reverse=True)
    return sorted(by_name, key=lambda i: i["metadata"].get("creationTimestamp") or "")


def upstream_name(namespace: str, service_ref: dict) -> str:
    port = service_ref.get("port") or {}
    if port.get("number"):
        return f"{namespace}-{service_ref.get('name')}-{port['number']}"
    if port.get("name"):
        return f"{namespace}-{service_ref.get('name')}-{port['name']}"
    return f"{namespace}-INVALID"


class _Index:
    def __init__(self, objects: ClusterObjects):
        self.services = {_key(s): s for s in objects.services}
        self.slices: dict[tuple[str, str], list[dict]] = {}
        for endpoint_slice in objects.endpoint_slices:
            owner = (endpoint_slice["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
            if owner:
                self.slices.setdefault((endpoint_slice["metadata"].get("namespace", ""), owner), []).append(endpoint_slice)
        self.secrets = {_key(s): s for s in objects.secrets}


def service_endpoints(index: _Index, namespace: str, service_ref: dict,
                      cluster_ip: bool) -> tuple[tuple[Endpoint, ...], str | None]:
    """The endpoints of an Ingress backend's Service port, or (empty, why)."""
    name = service_ref.get("name")
    service = index.services.get((namespace, name))
    if service is None:
        return (), f'service "{namespace}/{name}" not found'
    spec = service.get("spec") or {}
    wanted = service_ref.get("port") or {}
    port = next((p for p in spec.get("ports") or []
                 if (wanted.get("number") and p.get("port") == wanted["number"])
                 or (wanted.get("name") and p.get("name") == wanted["name"])), None)
    if spec.get("type") == "ExternalName":
        return (), f'service "{namespace}/{name}" is of type ExternalName, which the testbed\'s controller does not proxy'
    if port is None:
        wanted_text = wanted.get("number") or wanted.get("name")
        return (), f'service "{namespace}/{name}" does not have port {wanted_text}'
    if cluster_ip:
        if spec.get("clusterIP") in (None, "", "None"):
            return (), f'service "{namespace}/{name}" has no ClusterIP (service-upstream needs one)'
        return (Endpoint(spec["clusterIP"], port["port"]),), None
    endpoints = []
    for endpoint_slice in sorted(index.slices.get((namespace, name), []), key=lambda s: s["metadata"]["name"]):
        slice_port = next((p for p in endpoint_slice.get("ports") or []
                           if (p.get("name") or "") == (port.get("name") or "") and p.get("protocol", "TCP") == "TCP"),
                          None)
        if slice_port is None or slice_port.get("port") is None:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or []:
                endpoints.append(Endpoint(address, int(slice_port["port"])))
    unique = tuple(sorted(set(endpoints), key=lambda e: (tuple(int(x) for x in e.address.split(".")), e.port)))
    return unique, None if unique else f'service "{namespace}/{name}" has no ready endpoints'


def _problem(ingress: dict, type_: str, reason: str, message: str) -> Problem:
    namespace, name = _key(ingress)
    return Problem("Ingress", namespace, name, type_, reason, message)


def _prefix_twins(locations: list[Location]) -> list[Location]:
    """updateServerLocations: Prefix /p -> `/p/` and an exact twin (here `= /p`, see the docstring)."""
    exact = {loc.path for loc in locations if loc.path_type == "Exact"}
    result = []
    for loc in locations:
        if loc.path == "/" or loc.path_type != "Prefix" or needs_rewrite(loc) or loc.config.use_regex:
            result.append(loc)
            continue
        bare = loc.path.rstrip("/") or "/"
        loc.ingress_path = loc.ingress_path or loc.path
        loc.path = bare + "/"
        result.append(loc)
        if bare not in exact:
            result.append(replace(loc, path=bare, path_type="Exact"))
    return result


def _no_auto_redirect(locations: list[Location]) -> list[Location]:
    """nginx answers `/p` with a 301 to `/p/` when a location `/p/` proxies and none is `= /p`
    (ngx_http_core_module, location). Where only an Exact `/p/` asks for that, the Kubernetes table
    says `/p` does not match it: `= /p` then does what `/p` would do without `/p/`."""
    exact = {loc.path for loc in locations if loc.path_type == "Exact"}
    added = []
    for loc in locations:
        if loc.path_type != "Exact" or len(loc.path) < 2 or not loc.path.endswith("/") or loc.path[:-1] in exact:
            continue
        bare = loc.path[:-1]
        fallback = max((other for other in locations if other.path_type == "Prefix" and bare.startswith(other.path)),
                       key=lambda other: len(other.path), default=None)
        if fallback is not None:
            added.append(replace(fallback, path=bare, path_type="Exact"))
            exact.add(bare)
    return locations + added


def build_model(objects: ClusterObjects, settings: Settings, *, class_name: str = CLASS_NAME,
                controller: str = CONTROLLER) -> RoutingModel:
    index = _Index(objects)
    classes = {c["metadata"]["name"]: c for c in objects.ingress_classes}
    ours = sort_ingresses([i for i in objects.ingresses if is_our_class(i, classes, class_name, controller)])
    problems: list[Problem] = []
    upstreams: dict[str, Upstream] = {DEFAULT_UPSTREAM: Upstream(DEFAULT_UPSTREAM, (Endpoint("127.0.0.1", 8181),))}
    configs: dict[tuple[str, str], LocationConfig] = {}
    for ingress in ours:
        config, warnings = parse_annotations(ingress["metadata"].get("annotations"), settings)
        configs[_key(ingress)] = config
        for warning in warnings:
            reason = "AnnotationParsingFailed" if "invalid value" in warning else "AnnotationIgnored"
            problems.append(_problem(ingress, "Warning", reason, warning))

    def backend_upstream(ingress: dict, service_ref: dict) -> str:
        namespace = ingress["metadata"].get("namespace", "default")
        name = upstream_name(namespace, service_ref)
        if name not in upstreams:
            endpoints, why = service_endpoints(index, namespace, service_ref, configs[_key(ingress)].service_upstream)
            upstreams[name] = Upstream(name, endpoints)
            if why:
                problems.append(_problem(ingress, "Warning", "ServiceUnavailable", f"{why}: requests get 503"))
        return name

    default_config = LocationConfig(ssl_redirect=settings.ssl_redirect, force_ssl_redirect=settings.force_ssl_redirect,
                                    body_size=settings.proxy_body_size, connect_timeout=settings.proxy_connect_timeout,
                                    send_timeout=settings.proxy_send_timeout, read_timeout=settings.proxy_read_timeout)
    servers: dict[str, Server] = {DEFAULT_SERVER: Server(DEFAULT_SERVER, [Location(
        "/", "Prefix", DEFAULT_UPSTREAM, default_config, is_default_backend=True)])}
    # createServers: a server per host, its root location on the Ingress's default backend (or 404).
    for ingress in ours:
        spec = ingress.get("spec") or {}
        config = configs[_key(ingress)]
        root_upstream = DEFAULT_UPSTREAM
        default_backend = (spec.get("defaultBackend") or {}).get("service")
        if default_backend:
            root_upstream = backend_upstream(ingress, default_backend)
            catch_all = servers[DEFAULT_SERVER].locations[0]
            if catch_all.is_default_backend and not spec.get("rules"):
                catch_all.upstream, catch_all.is_default_backend = root_upstream, False
                catch_all.ingress, catch_all.service = _key(ingress), default_backend.get("name", "")
                port = default_backend.get("port") or {}
                catch_all.port = str(port.get("number") or port.get("name") or "")
        for rule in spec.get("rules") or []:
            host = rule.get("host") or DEFAULT_SERVER
            if host not in servers:
                servers[host] = Server(host, [Location("/", "Prefix", root_upstream, config, ingress=_key(ingress),
                                                       is_default_backend=True)])
    # TLS: the first Ingress naming a host in spec.tls gives its certificate.
    for ingress in ours:
        spec = ingress.get("spec") or {}
        namespace = ingress["metadata"].get("namespace", "default")
        for rule in spec.get("rules") or []:
            host = rule.get("host") or DEFAULT_SERVER
            server = servers[host]
            if server.tls:
                continue
            tls = next((t for t in spec.get("tls") or [] if host in (t.get("hosts") or [])), None)
            if tls is None:
                continue
            server.tls = True
            secret_name = tls.get("secretName")
            if not secret_name:
                continue   # the default certificate
            certificate, why = certificate_from_secret(index.secrets.get((namespace, secret_name)), host)
            if certificate is None:
                problems.append(_problem(ingress, "Warning", "TLSCertificateUnusable",
                                         f'secret "{namespace}/{secret_name}" for host "{host}": {why}: '
                                         f'serving the default certificate ("{fake_certificate().file}")'))
                continue
            server.certificate = certificate
    # getBackendServers: the paths.
    for ingress in ours:
        spec = ingress.get("spec") or {}
        config = configs[_key(ingress)]
        for rule in spec.get("rules") or []:
            host = rule.get("host") or DEFAULT_SERVER
            server = servers[host]
            for path in (rule.get("http") or {}).get("paths") or []:
                service_ref = (path.get("backend") or {}).get("service")
                if not service_ref:
                    continue    # resource backends are not proxied (ingress-nginx skips them too)
                name = backend_upstream(ingress, service_ref)
                nginx_path = path.get("path") or "/"
                path_type = "Exact" if path.get("pathType") == "Exact" else "Prefix"
                existing = next((loc for loc in server.locations
                                 if loc.path == nginx_path and loc.path_type == path_type), None)
                port = service_ref.get("port") or {}
                port_text = str(port.get("number") or port.get("name") or "")
                if existing is not None and not existing.is_default_backend:
                    if existing.ingress != _key(ingress):
                        problems.append(_problem(ingress, "Warning", "PathOverlap",
                                                 f'host "{rule.get("host") or "*"}" and path "{nginx_path}" are already '
                                                 f"defined in ingress {existing.ingress[0]}/{existing.ingress[1]}: ignored"))
                    continue
                if existing is not None:   # replaces the server's default root location
                    existing.upstream, existing.is_default_backend, existing.config = name, False, config
                    existing.ingress, existing.service, existing.port = _key(ingress), service_ref.get("name", ""), port_text
                    continue
                server.locations.append(Location(nginx_path, path_type, name, config, _key(ingress),
                                                 service_ref.get("name", ""), port_text, nginx_path))
    ordered = []
    for host in sorted(servers):
        server = servers[host]
        locations = _prefix_twins(server.locations)
        if not server.enforce_regex:
            locations = _no_auto_redirect(locations)
        locations.sort(key=lambda loc: loc.path, reverse=True)
        locations.sort(key=lambda loc: len(loc.path), reverse=True)
        server.locations = locations
        ordered.append(server)
    certificates = {c.file: c for c in [fake_certificate()] + [s.certificate for s in ordered if s.certificate]}
    return RoutingModel(ordered, dict(sorted(upstreams.items())), certificates, settings, problems,
                        [_key(i) for i in ours])
