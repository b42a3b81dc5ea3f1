"""Gateway API v1 (GatewayClass, Gateway, HTTPRoute) on the same nginx, pure: the objects -> server
blocks, upstreams and the status the controller writes.

Semantics from the Gateway API specification (apis/v1/httproute_types.go, gateway_types.go) and its
conformance tests (conformance/tests/httproute-*.go):
- A Gateway of a GatewayClass whose controllerName is ours is served at the controller's address
  (status.addresses), on the listener ports the controller Service exposes (80 HTTP, 443 HTTPS);
  other ports or protocols are not Accepted (PortUnavailable, UnsupportedProtocol).
- A route attaches to a listener through parentRefs (name, sectionName, port), the listener's
  allowedRoutes (Same, All, Selector) and intersecting hostnames (a listener `*.example.com` covers
  any subdomain); status.parents gets Accepted and ResolvedRefs for each parent.
- Matching: a request goes to the highest-precedence match among all rules of all routes of the
  hostname: Exact path, then (implementation-specific, as nginx ranks them) RegularExpression, then
  the longest PathPrefix (element-wise), then method, then the most header matches, then the most
  query matches; ties by the oldest route, then namespace/name, then rule and match order.
- In nginx: each distinct path is a location (Exact `= /p`; PathPrefix `/p/` plus `= /p`); inside
  it, the candidates that can match a request landing there are tested lowest precedence first with
  `if`, each satisfied one overwriting the chosen action (conditions combined through `map`s), and
  the request is proxied to an endpoint of the chosen rule's upstream (`proxy_pass
  http://$balancer_peer...`, nginx.py's balancer).
- backendRefs are weighted: one upstream per rule whose endpoints carry weights proportional to
  weight / number of endpoints; a share whose reference is invalid goes to a local server answering
  500, a share without endpoints to one answering 503; no usable weight at all gives 500.
- Filters: RequestHeaderModifier (set, add appending with a comma, remove) and URLRewrite (hostname;
  ReplaceFullPath; ReplacePrefixMatch, which replaces the matched prefix element-wise).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .model import (DEFAULT_SERVER, SERVICE_NAME_LABEL, ClusterObjects, Endpoint, Problem, RoutingModel, Upstream,
                    _Index, service_endpoints)
from .nginx import ERROR_500_PORT, Writer, proxy_headers, proxy_settings, quote
from .tls import Certificate, certificate_from_secret

GATEWAY_CONTROLLER = "k8s.io/ingress-nginx"
GROUP = "gateway.networking.k8s.io"
SERVED_PORTS = {80: "HTTP", 443: "HTTPS"}
ERROR_503_PORT = ERROR_500_PORT + 1
WEIGHT_SCALE = 10000


@dataclass
class Action:
    upstream: str
    set_headers: dict[str, str] = field(default_factory=dict)     # lower-case name -> value
    add_headers: dict[str, str] = field(default_factory=dict)
    remove_headers: set[str] = field(default_factory=set)
    header_names: dict[str, str] = field(default_factory=dict)    # lower-case -> as written
    hostname: str | None = None
    full_path: str | None = None
    prefix_replacement: str | None = None


@dataclass
class Candidate:
    path_type: str            # Exact | PathPrefix | RegularExpression
    path: str
    headers: list[tuple[str, str, str]]   # (name, type, value)
    method: str | None
    query: list[tuple[str, str, str]]
    action: Action
    order: tuple

    def precedence(self) -> tuple:
        rank = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}[self.path_type]
        return (rank, -len(self.path) if self.path_type == "PathPrefix" else 0, 0 if self.method else 1,
                -len(self.headers), -len(self.query), self.order)


@dataclass
class GatewayServer:
    port: int
    hostname: str             # "_" for the catch-all
    candidates: list[Candidate] = field(default_factory=list)
    certificate: Certificate | None = None
    owner: str = ""


def _condition(kind: str, status: bool, reason: str, message: str, generation: int, previous: list | None) -> dict:
    """A metav1.Condition; lastTransitionTime kept while the status does not change."""
    old = next((c for c in previous or [] if c.get("type") == kind), None)
    text = "True" if status else "False"
    since = old["lastTransitionTime"] if old and old.get("status") == text else _now()
    return {"type": kind, "status": text, "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": since}


def _now() -> str:
    from ..store import now_rfc3339
    return now_rfc3339()


def _key(obj: dict) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def hostname_intersection(listener: str | None, route: str) -> str | None:
    """The hostname both accept (the more specific one), or None."""
    if listener is None:
        return route
    if route == listener:
        return route
    if listener.startswith("*.") and not route.startswith("*.") and route.endswith(listener[1:]):
        return route
    if route.startswith("*.") and not listener.startswith("*.") and listener.endswith(route[1:]):
        return listener
    if listener.startswith("*.") and route.startswith("*."):
        if route.endswith(listener[1:]):
            return route
        if listener.endswith(route[1:]):
            return listener
    return None


def _header_variable(name: str) -> str | None:
    if not re.fullmatch(r"[A-Za-z0-9-]+", name):
        return None
    return "$http_" + name.lower().replace("-", "_")


def _pcre_literal(text: str) -> str:
    return "".join(c if c.isalnum() or c in "/-_" else "\\" + c for c in text)


def _selector_matches(selector: dict, labels: dict) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expression in selector.get("matchExpressions") or []:
        value, values = labels.get(expression.get("key")), expression.get("values") or []
        operator = expression.get("operator")
        if (operator == "In" and value not in values) or (operator == "NotIn" and value in values) or \
                (operator == "Exists" and expression.get("key") not in labels) or \
                (operator == "DoesNotExist" and expression.get("key") in labels):
            return False
    return True


class _Builder:
    def __init__(self, gateway_objects: dict, objects: ClusterObjects, model: RoutingModel, lb_ip: str | None,
                 namespaces: list[dict]):
        self.objects = objects
        self.index = _Index(objects)
        self.model = model
        self.lb_ip = lb_ip
        self.namespace_labels = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in namespaces}
        self.classes = {c["metadata"]["name"]: c for c in gateway_objects.get("GatewayClass") or []
                        if (c.get("spec") or {}).get("controllerName") == GATEWAY_CONTROLLER}
        self.gateways = {_key(g): g for g in gateway_objects.get("Gateway") or []
                         if (g.get("spec") or {}).get("gatewayClassName") in self.classes}
        self.routes = sorted(gateway_objects.get("HTTPRoute") or [],
                             key=lambda r: (r["metadata"].get("creationTimestamp") or "", "/".join(_key(r))))
        self.grants = gateway_objects.get("ReferenceGrant") or []
        self.status: dict[tuple[str, str, str], dict] = {}
        self.problems: list[Problem] = []
        self.servers: dict[tuple[int, str], GatewayServer] = {}
        self.upstreams: dict[str, Upstream] = {}
        self.listener_ok: dict[tuple[str, str, str], bool] = {}
        self.attached: dict[tuple[str, str, str], int] = {}

    # -- references ---------------------------------------------------------------------------
    def _granted(self, from_kind: str, from_namespace: str, to_kind: str, to_namespace: str, to_name: str) -> bool:
        for grant in self.grants:
            if grant["metadata"].get("namespace") != to_namespace:
                continue
            spec = grant.get("spec") or {}
            if not any(f.get("kind") == from_kind and f.get("namespace") == from_namespace and f.get("group") == GROUP
                       for f in spec.get("from") or []):
                continue
            if any(t.get("kind") == to_kind and t.get("group", "") in ("", "core") and t.get("name") in (None, to_name)
                   for t in spec.get("to") or []):
                return True
        return False

    # -- gateways and listeners ---------------------------------------------------------------
    def listeners(self) -> None:
        for class_name, gateway_class in self.classes.items():
            generation = gateway_class["metadata"].get("generation", 1)
            previous = (gateway_class.get("status") or {}).get("conditions")
            self.status[("GatewayClass", "", class_name)] = {"conditions": [
                _condition("Accepted", True, "Accepted", "served by the testbed's ingress-nginx", generation, previous),
                _condition("SupportedVersion", True, "SupportedVersion", "gateway.networking.k8s.io/v1", generation,
                           previous)]}
        for (namespace, name), gateway in self.gateways.items():
            for listener in (gateway.get("spec") or {}).get("listeners") or []:
                key = (namespace, name, listener.get("name"))
                port, protocol = listener.get("port"), listener.get("protocol")
                ok = SERVED_PORTS.get(port) == protocol
                self.listener_ok[key] = ok
                self.attached[key] = 0
                if ok and protocol == "HTTPS":
                    refs = ((listener.get("tls") or {}).get("certificateRefs")) or []
                    certificate, why = self._certificate(namespace, refs)
                    if certificate is None:
                        self.listener_ok[key] = False
                        self.problems.append(Problem("Gateway", namespace, name, "Warning", "InvalidCertificateRef",
                                                     f"listener {listener.get('name')}: {why}"))

    def _certificate(self, namespace: str, refs: list) -> tuple[Certificate | None, str]:
        if not refs:
            return None, "no certificateRefs"
        ref = refs[0]
        secret_namespace = ref.get("namespace") or namespace
        if secret_namespace != namespace and not self._granted("Gateway", namespace, "Secret", secret_namespace,
                                                               ref.get("name")):
            return None, f'secret "{secret_namespace}/{ref.get("name")}": no ReferenceGrant allows it'
        secret = self.index.secrets.get((secret_namespace, ref.get("name")))
        certificate, why = certificate_from_secret(secret, "")
        if certificate is None:
            return None, f'secret "{secret_namespace}/{ref.get("name")}": {why}'
        return Certificate(f"gateway-{certificate.file}", certificate.pem, certificate.names,
                           certificate.not_after), ""

    def _listener_status(self) -> None:
        for (namespace, name), gateway in self.gateways.items():
            generation = gateway["metadata"].get("generation", 1)
            previous = gateway.get("status") or {}
            listeners = []
            for listener in (gateway.get("spec") or {}).get("listeners") or []:
                key = (namespace, name, listener.get("name"))
                old = next((entry.get("conditions") for entry in previous.get("listeners") or []
                            if entry.get("name") == listener.get("name")), None)
                port, protocol = listener.get("port"), listener.get("protocol")
                if SERVED_PORTS.get(port) != protocol:
                    reason = "UnsupportedProtocol" if protocol not in SERVED_PORTS.values() else "PortUnavailable"
                    message = f"the controller serves HTTP on 80 and HTTPS on 443, not {protocol} on {port}"
                    accepted, resolved = (False, reason, message), (True, "ResolvedRefs", "")
                elif not self.listener_ok[key]:
                    accepted = (True, "Accepted", "")
                    resolved = (False, "InvalidCertificateRef", "the certificateRefs cannot be used")
                else:
                    accepted, resolved = (True, "Accepted", ""), (True, "ResolvedRefs", "")
                programmed = self.listener_ok[key]
                listeners.append({
                    "name": listener.get("name"), "attachedRoutes": self.attached[key],
                    "supportedKinds": [{"group": GROUP, "kind": "HTTPRoute"}],
                    "conditions": [_condition("Accepted", *accepted, generation, old),
                                   _condition("ResolvedRefs", *resolved, generation, old),
                                   _condition("Programmed", programmed, "Programmed" if programmed else "Invalid", "",
                                              generation, old),
                                   _condition("Conflicted", False, "NoConflicts", "", generation, old)]})
            status = {"listeners": listeners,
                      "conditions": [_condition("Accepted", True, "Accepted", "", generation, previous.get("conditions")),
                                     _condition("Programmed", self.lb_ip is not None,
                                                "Programmed" if self.lb_ip else "AddressNotAssigned",
                                                "" if self.lb_ip else "the controller Service has no LoadBalancer IP",
                                                generation, previous.get("conditions"))]}
            if self.lb_ip:
                status["addresses"] = [{"type": "IPAddress", "value": self.lb_ip}]
            self.status[("Gateway", namespace, name)] = status

    # -- routes ---------------------------------------------------------------------------------
    def _allowed(self, listener: dict, gateway_namespace: str, route_namespace: str) -> bool:
        namespaces = ((listener.get("allowedRoutes") or {}).get("namespaces")) or {}
        chosen = namespaces.get("from", "Same")
        if chosen == "All":
            return True
        if chosen == "Selector":
            return _selector_matches(namespaces.get("selector") or {}, self.namespace_labels.get(route_namespace, {}))
        return gateway_namespace == route_namespace

    def _rule_upstream(self, route: dict, index: int, rule: dict) -> tuple[str, tuple[bool, str, str]]:
        """The rule's upstream and its ResolvedRefs condition (status, reason, message)."""
        namespace, name = _key(route)
        upstream = f"gw-{namespace}-{name}-rule{index}"
        shares: list[tuple[float, tuple[Endpoint, ...]]] = []
        resolved = (True, "ResolvedRefs", "")
        for ref in rule.get("backendRefs") or []:
            weight = ref.get("weight", 1)
            if weight == 0:
                continue
            kind, group = ref.get("kind", "Service"), ref.get("group", "")
            ref_namespace = ref.get("namespace") or namespace
            problem = None
            if kind != "Service" or group not in ("", "core"):
                problem = ("InvalidKind", f"backendRef {group}/{kind} {ref.get('name')} is not a Service")
            elif ref_namespace != namespace and not self._granted("HTTPRoute", namespace, "Service", ref_namespace,
                                                                  ref.get("name")):
                problem = ("RefNotPermitted", f'backendRef to service "{ref_namespace}/{ref.get("name")}" is not '
                           "permitted by any ReferenceGrant")
            elif (ref_namespace, ref.get("name")) not in self.index.services:
                problem = ("BackendNotFound", f'service "{ref_namespace}/{ref.get("name")}" not found')
            if problem:
                resolved = (False, *problem)
                shares.append((weight, (Endpoint("127.0.0.1", ERROR_500_PORT),)))
                continue
            endpoints, _why = service_endpoints(self.index, ref_namespace,
                                                {"name": ref.get("name"), "port": {"number": ref.get("port")}}, False)
            shares.append((weight, endpoints or (Endpoint("127.0.0.1", ERROR_503_PORT),)))
        total = sum(w for w, _ in shares)
        if not total:
            self.upstreams[upstream] = Upstream(upstream, (Endpoint("127.0.0.1", ERROR_500_PORT),))
            return upstream, resolved
        merged: dict[tuple[str, int], int] = {}
        for weight, endpoints in shares:
            for endpoint in endpoints:
                share = max(1, round(WEIGHT_SCALE * weight / (total * len(endpoints))))
                merged[(endpoint.address, endpoint.port)] = merged.get((endpoint.address, endpoint.port), 0) + share
        self.upstreams[upstream] = Upstream(upstream, tuple(Endpoint(a, p, w) for (a, p), w in merged.items()))
        return upstream, resolved

    def _action(self, rule: dict, upstream: str) -> Action:
        action = Action(upstream)
        for filter_ in rule.get("filters") or []:
            if filter_.get("type") == "RequestHeaderModifier":
                modifier = filter_.get("requestHeaderModifier") or {}
                for header in modifier.get("set") or []:
                    action.set_headers[header["name"].lower()] = header["value"]
                    action.header_names[header["name"].lower()] = header["name"]
                for header in modifier.get("add") or []:
                    action.add_headers[header["name"].lower()] = header["value"]
                    action.header_names[header["name"].lower()] = header["name"]
                for name in modifier.get("remove") or []:
                    action.remove_headers.add(name.lower())
                    action.header_names[name.lower()] = name
            elif filter_.get("type") == "URLRewrite":
                rewrite = filter_.get("urlRewrite") or {}
                action.hostname = rewrite.get("hostname")
                path = rewrite.get("path") or {}
                if path.get("type") == "ReplaceFullPath":
                    action.full_path = path.get("replaceFullPath")
                elif path.get("type") == "ReplacePrefixMatch":
                    action.prefix_replacement = path.get("replacePrefixMatch")
        return action

    def routes_(self) -> None:
        supported_filters = {"RequestHeaderModifier", "URLRewrite"}
        for route_number, route in enumerate(self.routes):
            namespace, name = _key(route)
            spec = route.get("spec") or {}
            generation = route["metadata"].get("generation", 1)
            previous = (route.get("status") or {}).get("parents") or []
            parents = []
            unsupported = [f.get("type") for rule in spec.get("rules") or [] for f in rule.get("filters") or []
                           if f.get("type") not in supported_filters]
            rule_upstreams = []
            resolved = (True, "ResolvedRefs", "Resolved all the Object references for the Route")
            for index, rule in enumerate(spec.get("rules") or []):
                upstream, rule_resolved = self._rule_upstream(route, index, rule)
                rule_upstreams.append(upstream)
                if not rule_resolved[0]:
                    resolved = rule_resolved
            for ref in spec.get("parentRefs") or []:
                if ref.get("kind", "Gateway") != "Gateway" or ref.get("group", GROUP) != GROUP:
                    continue
                gateway_key = (ref.get("namespace") or namespace, ref.get("name"))
                gateway = self.gateways.get(gateway_key)
                if gateway is None:
                    continue   # not ours (or missing): another controller's business
                old = next((p.get("conditions") for p in previous if (p.get("parentRef") or {}).get("name") == ref.get("name")
                            and (p.get("parentRef") or {}).get("sectionName") == ref.get("sectionName")), None)
                accepted = self._attach(route, route_number, ref, gateway, rule_upstreams, bool(unsupported))
                if unsupported and accepted[0]:
                    accepted = (False, "UnsupportedValue", f"filters not supported by this controller: "
                                f"{', '.join(sorted(set(map(str, unsupported))))}")
                parents.append({"parentRef": {k: v for k, v in ref.items()}, "controllerName": GATEWAY_CONTROLLER,
                                "conditions": [_condition("Accepted", *accepted, generation, old),
                                               _condition("ResolvedRefs", *resolved, generation, old)]})
            if parents or previous:
                self.status[("HTTPRoute", namespace, name)] = {"parents": parents}

    def _attach(self, route: dict, route_number: int, ref: dict, gateway: dict, upstreams: list[str],
                unsupported: bool) -> tuple[bool, str, str]:
        namespace, name = _key(route)
        gateway_namespace, gateway_name = _key(gateway)
        spec = route.get("spec") or {}
        listeners = [lst for lst in (gateway.get("spec") or {}).get("listeners") or []
                     if ref.get("sectionName") in (None, lst.get("name")) and ref.get("port") in (None, lst.get("port"))]
        if not listeners:
            return False, "NoMatchingParent", "no listener of the Gateway matches the parentRef's sectionName/port"
        listeners = [lst for lst in listeners if self._allowed(lst, gateway_namespace, namespace)]
        if not listeners:
            return False, "NotAllowedByListeners", "the listeners' allowedRoutes do not allow this route's namespace"
        hostnames = spec.get("hostnames") or [None]
        attached_any = False
        for listener in listeners:
            matched = []
            for hostname in hostnames:
                if hostname is None:
                    matched.append(listener.get("hostname") or DEFAULT_SERVER)
                else:
                    common = hostname_intersection(listener.get("hostname"), hostname)
                    if common:
                        matched.append(common)
            if not matched:
                continue
            attached_any = True
            key = (gateway_namespace, gateway_name, listener.get("name"))
            self.attached[key] += 1
            if not self.listener_ok.get(key) or unsupported:
                continue
            certificate = None
            if listener.get("protocol") == "HTTPS":
                certificate, _ = self._certificate(gateway_namespace, (listener.get("tls") or {}).get("certificateRefs")
                                                   or [])
            for hostname in dict.fromkeys(matched):
                server = self.servers.setdefault((listener["port"], hostname), GatewayServer(
                    listener["port"], hostname, certificate=certificate, owner=f"{gateway_namespace}/{gateway_name}"))
                self._add_candidates(server, route, route_number, upstreams)
        if not attached_any:
            return False, "NoMatchingListenerHostname", "no hostname of the route matches a listener's hostname"
        return True, "Accepted", "Accepted by the testbed's ingress-nginx"

    def _add_candidates(self, server: GatewayServer, route: dict, route_number: int, upstreams: list[str]) -> None:
        for index, rule in enumerate((route.get("spec") or {}).get("rules") or []):
            action = self._action(rule, upstreams[index])
            for m, match in enumerate(rule.get("matches") or [{}]):
                path = match.get("path") or {}
                kind, value = path.get("type", "PathPrefix"), path.get("value", "/")
                if kind == "PathPrefix":
                    value = value.rstrip("/") or "/"
                headers = [(h["name"], h.get("type", "Exact"), h["value"]) for h in match.get("headers") or []]
                query = [(q["name"], q.get("type", "Exact"), q["value"]) for q in match.get("queryParams") or []]
                server.candidates.append(Candidate(kind, value, headers, match.get("method"), query, action,
                                                   (route_number, index, m)))

    def build(self) -> None:
        self.listeners()
        self.routes_()
        self._listener_status()


# ---------------------------------------------------------------------------------------------
# nginx text
# ---------------------------------------------------------------------------------------------

def _locations(candidates: list[Candidate]) -> list[tuple[str, str, list[Candidate]]]:
    """(nginx location, path, candidates that can match a request landing there) per location."""
    exact = {c.path for c in candidates if c.path_type == "Exact"}
    prefixes = {c.path for c in candidates if c.path_type == "PathPrefix"}
    regexes = [c for c in candidates if c.path_type == "RegularExpression"]

    def covering(path: str) -> list[Candidate]:
        return [c for c in candidates if c.path_type == "PathPrefix"
                and (c.path == "/" or path == c.path or path.startswith(c.path + "/"))]

    result = []
    for path in sorted(exact | {p for p in prefixes if p != "/"}):
        chosen = [c for c in candidates if c.path_type == "Exact" and c.path == path] + covering(path) + regexes
        result.append((f"= {quote(path)}", path, chosen))
    for path in sorted(p for p in prefixes if p != "/"):
        result.append((quote(path + "/"), path + "/", covering(path + "/") + regexes))
    result.append((quote("/"), "/", covering("/") + regexes))
    return result


class _Conditions:
    """Turns a candidate's conditions into one nginx `if` test (maps at http level for ANDs)."""

    def __init__(self):
        self.maps: list[str] = []
        self.count = 0

    def tests(self, c: Candidate) -> list[tuple[str, str]]:
        tests = []
        if c.path_type == "RegularExpression":
            tests.append(("$uri", f"^(?:{c.path})$"))
        if c.method:
            tests.append(("$request_method", f"^{c.method}$"))
        for name, kind, value in c.headers:
            variable = _header_variable(name)
            if variable is None:
                tests.append(("$gw_never", "^never$"))
                continue
            tests.append((variable, value if kind == "RegularExpression" else f"^{_pcre_literal(value)}$"))
        for name, kind, value in c.query:
            variable = "$arg_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
            tests.append((variable, value if kind == "RegularExpression" else f"^{_pcre_literal(value)}$"))
        return tests

    def condition(self, c: Candidate) -> str | None:
        tests = self.tests(c)
        if not tests:
            return None
        if len(tests) == 1:
            variable, pattern = tests[0]
            return f"{variable} ~ {quote(pattern)}"
        names = []
        for variable, pattern in tests:
            self.count += 1
            names.append(f"$gw_m{self.count}")
            self.maps.append(f"map {variable} $gw_m{self.count} {{\n    {quote('~' + pattern)} 1;\n    default 0;\n}}")
        self.count += 1
        return None if not names else "__and__" + " ".join(names)


def render_servers(servers: list[GatewayServer], model: RoutingModel):
    """A function adding the Gateway servers to the nginx.conf writer (nginx.render's extra_servers)."""
    def write(w: Writer, conf_dir: str) -> None:
        conditions = _Conditions()
        body = Writer()
        body.depth = w.depth
        add_maps: list[str] = []
        for server in sorted(servers, key=lambda s: (s.port, s.hostname)):
            _server(body, server, model, conditions, add_maps, conf_dir)
        for text in conditions.maps + add_maps:
            for line in text.split("\n"):
                w(line)
        w.lines.extend(body.lines)
    return write


def _server(w: Writer, server: GatewayServer, model: RoutingModel, conditions: _Conditions, add_maps: list[str],
            conf_dir: str) -> None:
    from .nginx import server_name
    w(f"## start server {server.hostname} port {server.port} (Gateway {server.owner})")
    w.open("server")
    # A Gateway API wildcard covers any number of labels: nginx's own `*.example.com` does that.
    w(f"server_name {server.hostname if server.hostname.startswith('*.') else server_name(server.hostname)} ;")
    default = " default_server reuseport backlog=4096" if server.hostname == DEFAULT_SERVER else ""
    if server.port == 443:
        w(f"listen 443{default} ssl;")
        if server.certificate is not None:
            w(f"ssl_certificate {conf_dir}/ssl/{server.certificate.file};")
            w(f"ssl_certificate_key {conf_dir}/ssl/{server.certificate.file};")
    else:
        w(f"listen {server.port}{default};")
    w('set $proxy_upstream_name "-";')
    for location, _path, candidates in _locations(server.candidates):
        _location(w, location, sorted(candidates, key=Candidate.precedence), model, conditions, add_maps)
    w.close()
    w(f"## end server {server.hostname} port {server.port}")
    w()


def _location(w: Writer, location: str, candidates: list[Candidate], model: RoutingModel, conditions: _Conditions,
              add_maps: list[str]) -> None:
    w.open(f"location {location}")
    headers: dict[str, str] = {}
    for c in candidates:
        headers.update(c.action.header_names)
    header_vars = {name: f"$gw_h_{re.sub(r'[^a-z0-9]', '_', name)}" for name in headers}
    w('set $gw_upstream "";')
    w("set $gw_uri $request_uri;")
    w("set $gw_host $best_http_host;")
    for name, variable in header_vars.items():
        w(f"set {variable} {_header_variable(name) or chr(34) * 2};")
    # prefix captures for ReplacePrefixMatch (before the choice: `if` blocks cannot nest)
    for n, c in enumerate(candidates):
        if c.action.prefix_replacement is not None and c.path_type == "PathPrefix":
            prefix = "" if c.path == "/" else _pcre_literal(c.path)
            w(f"if ($uri ~ {quote(f'^{prefix}(?<gw_rest{n}>/.*)?$')}) {{ set $gw_rewrite{n} 1; }}")
    for n, c in reversed(list(enumerate(candidates))):
        test = conditions.condition(c)
        lines = _action_lines(c, n, header_vars, add_maps)
        if test is None:
            for line in lines:
                w(line)
            continue
        if test.startswith("__and__"):
            names = test[len("__and__"):].split()
            w(f'set $gw_and "{"".join(names)}";')
            test = f'$gw_and = "{"1" * len(names)}"'
        w.open(f"if ({test})")
        for line in lines:
            w(line)
        w.close()
    w('if ($gw_upstream = "") {')
    w("    return 404;")
    w("}")
    w("if ($gw_uri !~ \"^/\") {")
    w('    set $gw_uri "/$gw_uri";')
    w("}")
    proxy_headers(w, model.settings, host="$gw_host", skip=frozenset(headers))
    for name, variable in header_vars.items():
        w(f"proxy_set_header {headers[name]} {variable};")
    proxy_settings(w, model.settings, model.settings.proxy_connect_timeout, model.settings.proxy_send_timeout,
                   model.settings.proxy_read_timeout)
    w(f"client_max_body_size {model.settings.proxy_body_size};")
    w("proxy_pass http://$balancer_peer$gw_uri;")
    w("proxy_redirect off;")
    w.close()


def _action_lines(c: Candidate, n: int, header_vars: dict[str, str], add_maps: list[str]) -> list[str]:
    a = c.action
    lines = [f"set $gw_upstream {a.upstream};", f"set $proxy_upstream_name {a.upstream};"]
    if a.full_path is not None:
        lines.append(f"set $gw_uri {quote(a.full_path + '$is_args$args')};")
    elif a.prefix_replacement is not None and c.path_type == "PathPrefix":
        lines.append(f"set $gw_uri {quote(a.prefix_replacement.rstrip('/') + f'$gw_rest{n}$is_args$args')};")
    else:
        lines.append("set $gw_uri $request_uri;")
    lines.append(f"set $gw_host {quote(a.hostname) if a.hostname else '$best_http_host'};")
    for name, variable in header_vars.items():
        original = _header_variable(name) or '""'
        if name in a.remove_headers:
            value = '""'
        elif name in a.set_headers:
            value = quote(a.set_headers[name])
        elif name in a.add_headers:
            map_name = f"$gw_add{len(add_maps)}"
            add_maps.append(f"map {original} {map_name} {{\n    '' {quote(a.add_headers[name])};\n"
                            f"    default {quote(original + ',' + a.add_headers[name])};\n}}")
            value = map_name
        else:
            value = original
        lines.append(f"set {variable} {value};")
    return lines


def gateway_servers(gateway_objects: dict, objects: ClusterObjects, model: RoutingModel, lb_ip: str | None,
                    namespaces: list[dict] | None = None):
    """(extra_servers for nginx.render or None, status by (kind, namespace, name), problems).
    Adds the Gateway upstreams and certificates to `model`; a Gateway catch-all takes the default
    server when no Ingress rule without a host uses it."""
    if not any(gateway_objects.get(k) for k in ("GatewayClass", "Gateway", "HTTPRoute")):
        return None, {}, []
    builder = _Builder(gateway_objects, objects, model, lb_ip, namespaces or [])
    builder.build()
    ingress_hosts = {s.hostname for s in model.servers}
    default = next((s for s in model.servers if s.hostname == DEFAULT_SERVER), None)
    default_free = default is not None and all(loc.is_default_backend for loc in default.locations)
    kept = []
    for (_port, hostname), server in builder.servers.items():
        if hostname == DEFAULT_SERVER and default_free:
            kept.append(server)
            continue
        if hostname in ingress_hosts:
            namespace, name = server.owner.split("/")
            builder.problems.append(Problem("Gateway", namespace, name, "Warning", "HostnameConflict",
                                            f'hostname "{hostname}" is served by an Ingress, which takes precedence'))
            continue
        kept.append(server)
    if any(s.hostname == DEFAULT_SERVER for s in kept):
        model.servers = [s for s in model.servers if s.hostname != DEFAULT_SERVER] + [default]
        default.locations = list(default.locations)
        # The Ingress catch-all keeps 443 (and 80 when the Gateway has no HTTP catch-all).
        model.default_ports = {80, 443} - {s.port for s in kept if s.hostname == DEFAULT_SERVER}
    for upstream in builder.upstreams.values():
        model.upstreams[upstream.name] = upstream
    for server in kept:
        if server.certificate is not None:
            model.certificates[server.certificate.file] = server.certificate
    if not kept:
        return None, builder.status, builder.problems
    return render_servers(kept, model), builder.status, builder.problems


__all__ = ["gateway_servers", "hostname_intersection", "SERVICE_NAME_LABEL", "GATEWAY_CONTROLLER"]
