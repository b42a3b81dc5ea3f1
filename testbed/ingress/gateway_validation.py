"""Validation of the Gateway API kinds (gateway.networking.k8s.io/v1), with the rules of the CRDs'
OpenAPI schemas and CEL validations (config/crd/standard/*.yaml of kubernetes-sigs/gateway-api),
worded as the API server words them and naming the field. Merged into validation.VALIDATORS."""
from __future__ import annotations

import re
from typing import Any

from ..validation import FieldErrors, as_dict, as_list, is_dns1123_label, is_dns1123_subdomain

CONTROLLER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
                             r"\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$")
HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SECTION_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
PROTOCOLS = ("HTTP", "HTTPS", "TLS", "TCP", "UDP")
PATH_MATCH_TYPES = ("Exact", "PathPrefix", "RegularExpression")
HEADER_MATCH_TYPES = ("Exact", "RegularExpression")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
FILTER_TYPES = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect",
                "URLRewrite", "ExtensionRef", "CORS")
FILTER_FIELDS = {"RequestHeaderModifier": "requestHeaderModifier", "ResponseHeaderModifier": "responseHeaderModifier",
                 "RequestMirror": "requestMirror", "RequestRedirect": "requestRedirect", "URLRewrite": "urlRewrite",
                 "ExtensionRef": "extensionRef", "CORS": "cors"}
MSG_HOSTNAME = ("should match '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$' "
                "(a DNS name, optionally with a leading '*.' wildcard label)")


def _hostname(errors: FieldErrors, path: str, value: Any) -> None:
    if not isinstance(value, str) or not HOSTNAME.match(value) or len(value) > 253:
        errors.invalid(path, value, MSG_HOSTNAME)


def _object_name(errors: FieldErrors, path: str, value: Any, required: bool = True) -> None:
    if value is None or value == "":
        if required:
            errors.required(path)
        return
    if not isinstance(value, str) or not is_dns1123_subdomain(value) or len(value) > 253:
        errors.invalid(path, value, "must be a lowercase RFC 1123 subdomain (e.g. 'example.com')")


def _port(errors: FieldErrors, path: str, value: Any, required: bool = True) -> None:
    if value is None:
        if required:
            errors.required(path)
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        errors.invalid(path, value, "must be between 1 and 65535, inclusive")


def validate_gateway_class(obj: dict, errors: FieldErrors) -> None:
    spec = as_dict(errors, "spec", obj.get("spec"))
    controller = spec.get("controllerName")
    if not controller:
        errors.required("spec.controllerName")
    elif not isinstance(controller, str) or not CONTROLLER_NAME.match(controller):
        errors.invalid("spec.controllerName", controller, 'must be a domain-prefixed path (such as "acme.io/foo")')


def _certificate_refs(errors: FieldErrors, path: str, refs: Any) -> None:
    for i, ref in enumerate(as_list(errors, path, refs)):
        ref = as_dict(errors, f"{path}[{i}]", ref)
        _object_name(errors, f"{path}[{i}].name", ref.get("name"))
        kind = ref.get("kind", "Secret")
        if kind != "Secret" or ref.get("group", "") not in ("", "core"):
            errors.unsupported(f"{path}[{i}].kind", kind, ("Secret",))


def validate_gateway(obj: dict, errors: FieldErrors) -> None:
    spec = as_dict(errors, "spec", obj.get("spec"))
    _object_name(errors, "spec.gatewayClassName", spec.get("gatewayClassName"))
    listeners = as_list(errors, "spec.listeners", spec.get("listeners"))
    if not listeners:
        errors.required("spec.listeners", "a Gateway needs at least one listener")
    if len(listeners) > 64:
        errors.add("spec.listeners", f"Too many: {len(listeners)}: must have at most 64 items")
    names, combinations = set(), set()
    for i, listener in enumerate(listeners):
        path = f"spec.listeners[{i}]"
        listener = as_dict(errors, path, listener)
        name = listener.get("name")
        if not name:
            errors.required(f"{path}.name")
        elif not isinstance(name, str) or not SECTION_NAME.match(name):
            errors.invalid(f"{path}.name", name, "must be a lowercase RFC 1123 subdomain")
        elif name in names:
            errors.duplicate(f"{path}.name", name)
        names.add(name)
        _port(errors, f"{path}.port", listener.get("port"))
        protocol = listener.get("protocol")
        if not protocol:
            errors.required(f"{path}.protocol")
        elif protocol not in PROTOCOLS and not (isinstance(protocol, str) and "/" in protocol):
            errors.unsupported(f"{path}.protocol", protocol, PROTOCOLS)
        if listener.get("hostname") is not None:
            _hostname(errors, f"{path}.hostname", listener["hostname"])
            if protocol in ("TCP", "UDP"):
                errors.forbidden(f"{path}.hostname", "hostname must not be specified for protocols ['TCP', 'UDP']")
        tls = listener.get("tls")
        if tls is not None and protocol in ("HTTP", "TCP", "UDP"):
            errors.forbidden(f"{path}.tls", "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']")
        if protocol == "HTTPS" and tls is None:
            errors.required(f"{path}.tls", "tls must be specified for protocols ['HTTPS', 'TLS']")
        if tls is not None:
            tls = as_dict(errors, f"{path}.tls", tls)
            mode = tls.get("mode", "Terminate")
            if mode not in ("Terminate", "Passthrough"):
                errors.unsupported(f"{path}.tls.mode", mode, ("Terminate", "Passthrough"))
            if mode == "Terminate" and not tls.get("certificateRefs") and not tls.get("options"):
                errors.required(f"{path}.tls.certificateRefs", "certificateRefs or options must be specified when "
                                "mode is Terminate")
            _certificate_refs(errors, f"{path}.tls.certificateRefs", tls.get("certificateRefs"))
        combination = (listener.get("port"), protocol, listener.get("hostname"))
        if combination in combinations:
            errors.duplicate(f"{path}", "Combination of port, protocol and hostname must be unique for each listener")
        combinations.add(combination)
        allowed = as_dict(errors, f"{path}.allowedRoutes", listener.get("allowedRoutes"))
        namespaces = as_dict(errors, f"{path}.allowedRoutes.namespaces", allowed.get("namespaces"))
        if namespaces.get("from", "Same") not in ("All", "Same", "Selector"):
            errors.unsupported(f"{path}.allowedRoutes.namespaces.from", namespaces.get("from"), ("All", "Same", "Selector"))


def _parent_refs(errors: FieldErrors, refs: Any) -> None:
    refs = as_list(errors, "spec.parentRefs", refs)
    if len(refs) > 32:
        errors.add("spec.parentRefs", f"Too many: {len(refs)}: must have at most 32 items")
    for i, ref in enumerate(refs):
        ref = as_dict(errors, f"spec.parentRefs[{i}]", ref)
        _object_name(errors, f"spec.parentRefs[{i}].name", ref.get("name"))
        if ref.get("namespace") is not None and not is_dns1123_label(ref["namespace"]):
            errors.invalid(f"spec.parentRefs[{i}].namespace", ref["namespace"], "must be a lowercase RFC 1123 label")
        if ref.get("sectionName") is not None and not (isinstance(ref["sectionName"], str)
                                                        and SECTION_NAME.match(ref["sectionName"])):
            errors.invalid(f"spec.parentRefs[{i}].sectionName", ref["sectionName"], "must be a lowercase RFC 1123 subdomain")
        _port(errors, f"spec.parentRefs[{i}].port", ref.get("port"), required=False)


def _path_value_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith("/"):
        return "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"
    for bad in ("//", "/./", "/../", "%2f", "%2F", "#"):
        if bad in value:
            return f"must not contain '{bad}' when type one of ['Exact', 'PathPrefix']"
    if value.endswith(("/..", "/.")):
        return "must not end with '/..' or '/.' when type one of ['Exact', 'PathPrefix']"
    return None


def _match(errors: FieldErrors, path: str, match: Any) -> None:
    match = as_dict(errors, path, match)
    path_match = as_dict(errors, f"{path}.path", match.get("path"))
    kind = path_match.get("type", "PathPrefix")
    if kind not in PATH_MATCH_TYPES:
        errors.unsupported(f"{path}.path.type", kind, PATH_MATCH_TYPES)
    value = path_match.get("value", "/")
    if kind in ("Exact", "PathPrefix"):
        problem = _path_value_problem(value)
        if problem:
            errors.invalid(f"{path}.path.value", value, problem)
    elif kind == "RegularExpression":
        if not isinstance(value, str) or not value:
            errors.invalid(f"{path}.path.value", value, "must be a non-empty regular expression")
        else:
            try:
                re.compile(value)
            except re.error as err:
                errors.invalid(f"{path}.path.value", value, f"must be a valid regular expression: {err}")
    seen: set[str] = set()
    for j, header in enumerate(as_list(errors, f"{path}.headers", match.get("headers"))):
        hpath = f"{path}.headers[{j}]"
        header = as_dict(errors, hpath, header)
        name = header.get("name")
        if not name:
            errors.required(f"{hpath}.name")
        elif not isinstance(name, str) or not HEADER_NAME.match(name):
            errors.invalid(f"{hpath}.name", name, "must be an HTTP header name (RFC 7230 token)")
        elif name.lower() in seen:
            errors.invalid(f"{path}.headers", name, "header names must be unique within a match (case-insensitive)")
        else:
            seen.add(name.lower())
        if header.get("type", "Exact") not in HEADER_MATCH_TYPES:
            errors.unsupported(f"{hpath}.type", header.get("type"), HEADER_MATCH_TYPES)
        if not isinstance(header.get("value"), str) or not header.get("value"):
            errors.required(f"{hpath}.value")
        elif header.get("type") == "RegularExpression":
            try:
                re.compile(header["value"])
            except re.error as err:
                errors.invalid(f"{hpath}.value", header["value"], f"must be a valid regular expression: {err}")
    if match.get("method") is not None and match["method"] not in METHODS:
        errors.unsupported(f"{path}.method", match["method"], METHODS)
    for j, query in enumerate(as_list(errors, f"{path}.queryParams", match.get("queryParams"))):
        query = as_dict(errors, f"{path}.queryParams[{j}]", query)
        if not query.get("name"):
            errors.required(f"{path}.queryParams[{j}].name")
        if not isinstance(query.get("value"), str):
            errors.required(f"{path}.queryParams[{j}].value")


def _header_modifier(errors: FieldErrors, path: str, modifier: Any) -> None:
    modifier = as_dict(errors, path, modifier)
    for action in ("set", "add"):
        names = set()
        for k, header in enumerate(as_list(errors, f"{path}.{action}", modifier.get(action))):
            header = as_dict(errors, f"{path}.{action}[{k}]", header)
            name = header.get("name")
            if not name or not isinstance(name, str) or not HEADER_NAME.match(name):
                errors.invalid(f"{path}.{action}[{k}].name", name, "must be an HTTP header name (RFC 7230 token)")
            elif name.lower() in names:
                errors.duplicate(f"{path}.{action}[{k}].name", name)
            else:
                names.add(name.lower())
            if not isinstance(header.get("value"), str):
                errors.required(f"{path}.{action}[{k}].value")
            elif any(c in header["value"] for c in "\r\n"):
                errors.invalid(f"{path}.{action}[{k}].value", header["value"], "must not contain line breaks")
    for k, name in enumerate(as_list(errors, f"{path}.remove", modifier.get("remove"))):
        if not isinstance(name, str) or not HEADER_NAME.match(name):
            errors.invalid(f"{path}.remove[{k}]", name, "must be an HTTP header name (RFC 7230 token)")


def _filters(errors: FieldErrors, path: str, filters: Any, matches: list) -> None:
    seen = set()
    for k, filter_ in enumerate(as_list(errors, path, filters)):
        fpath = f"{path}[{k}]"
        filter_ = as_dict(errors, fpath, filter_)
        kind = filter_.get("type")
        if kind not in FILTER_TYPES:
            errors.unsupported(f"{fpath}.type", kind, FILTER_TYPES)
            continue
        for other, field in FILTER_FIELDS.items():
            if other != kind and filter_.get(field) is not None:
                errors.forbidden(f"{fpath}.{field}", f"filter.{field} must be nil if the filter.type is not {other}")
        if filter_.get(FILTER_FIELDS[kind]) is None:
            errors.required(f"{fpath}.{FILTER_FIELDS[kind]}", f"filter.{FILTER_FIELDS[kind]} must be specified for "
                            f"{kind} filter.type")
            continue
        if kind in seen and kind in ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite"):
            errors.forbidden(path, f"{kind} filter cannot be repeated")
        seen.add(kind)
        if kind == "RequestHeaderModifier":
            _header_modifier(errors, f"{fpath}.requestHeaderModifier", filter_["requestHeaderModifier"])
        elif kind == "ResponseHeaderModifier":
            _header_modifier(errors, f"{fpath}.responseHeaderModifier", filter_["responseHeaderModifier"])
        elif kind == "URLRewrite":
            rewrite = as_dict(errors, f"{fpath}.urlRewrite", filter_["urlRewrite"])
            if rewrite.get("hostname") is not None:
                hostname = rewrite["hostname"]
                if not isinstance(hostname, str) or hostname.startswith("*") or not HOSTNAME.match(hostname):
                    errors.invalid(f"{fpath}.urlRewrite.hostname", hostname, "must be a DNS name without a wildcard")
            if rewrite.get("path") is not None:
                rpath = as_dict(errors, f"{fpath}.urlRewrite.path", rewrite["path"])
                kind_ = rpath.get("type")
                if kind_ not in ("ReplaceFullPath", "ReplacePrefixMatch"):
                    errors.unsupported(f"{fpath}.urlRewrite.path.type", kind_, ("ReplaceFullPath", "ReplacePrefixMatch"))
                field = {"ReplaceFullPath": "replaceFullPath", "ReplacePrefixMatch": "replacePrefixMatch"}.get(kind_)
                if field and not isinstance(rpath.get(field), str):
                    errors.required(f"{fpath}.urlRewrite.path.{field}", f"{field} must be specified when type is set "
                                    f"to '{kind_}'")
                elif field and not rpath[field].startswith("/"):
                    errors.invalid(f"{fpath}.urlRewrite.path.{field}", rpath[field], "must start with '/'")
                if kind_ == "ReplacePrefixMatch" and (len(matches) != 1 or ((matches[0] or {}).get("path") or {}).get(
                        "type", "PathPrefix") != "PathPrefix"):
                    errors.forbidden(f"{fpath}.urlRewrite.path", "When using URLRewrite filter with "
                                     "path.replacePrefixMatch, exactly one PathPrefix match must be specified")
    if "RequestRedirect" in seen and "URLRewrite" in seen:
        errors.forbidden(path, "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, "
                         "but not both")


def _backend_refs(errors: FieldErrors, path: str, refs: Any) -> None:
    for k, ref in enumerate(as_list(errors, path, refs)):
        bpath = f"{path}[{k}]"
        ref = as_dict(errors, bpath, ref)
        _object_name(errors, f"{bpath}.name", ref.get("name"))
        kind, group = ref.get("kind", "Service"), ref.get("group", "")
        if kind == "Service" and group in ("", "core"):
            if ref.get("port") is None:
                errors.required(f"{bpath}.port", "Must have port for Service reference")
        _port(errors, f"{bpath}.port", ref.get("port"), required=False)
        weight = ref.get("weight", 1)
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 1000000:
            errors.invalid(f"{bpath}.weight", weight, "must be between 0 and 1000000, inclusive")
        if ref.get("filters") is not None:
            _filters(errors, f"{bpath}.filters", ref["filters"], [])


def validate_http_route(obj: dict, errors: FieldErrors) -> None:
    spec = as_dict(errors, "spec", obj.get("spec"))
    _parent_refs(errors, spec.get("parentRefs"))
    hostnames = as_list(errors, "spec.hostnames", spec.get("hostnames"))
    if len(hostnames) > 16:
        errors.add("spec.hostnames", f"Too many: {len(hostnames)}: must have at most 16 items")
    for i, hostname in enumerate(hostnames):
        _hostname(errors, f"spec.hostnames[{i}]", hostname)
    rules = as_list(errors, "spec.rules", spec.get("rules"))
    if len(rules) > 16:
        errors.add("spec.rules", f"Too many: {len(rules)}: must have at most 16 items")
    for i, rule in enumerate(rules):
        rpath = f"spec.rules[{i}]"
        rule = as_dict(errors, rpath, rule)
        matches = as_list(errors, f"{rpath}.matches", rule.get("matches"))
        if len(matches) > 64:
            errors.add(f"{rpath}.matches", f"Too many: {len(matches)}: must have at most 64 items")
        for j, match in enumerate(matches):
            _match(errors, f"{rpath}.matches[{j}]", match)
        _filters(errors, f"{rpath}.filters", rule.get("filters"), matches)
        _backend_refs(errors, f"{rpath}.backendRefs", rule.get("backendRefs"))


def validate_reference_grant(obj: dict, errors: FieldErrors) -> None:
    spec = as_dict(errors, "spec", obj.get("spec"))
    for field in ("from", "to"):
        entries = as_list(errors, f"spec.{field}", spec.get(field))
        if not entries:
            errors.required(f"spec.{field}")
        for i, entry in enumerate(entries):
            entry = as_dict(errors, f"spec.{field}[{i}]", entry)
            if not entry.get("kind"):
                errors.required(f"spec.{field}[{i}].kind")
            if "group" not in entry:
                errors.required(f"spec.{field}[{i}].group")
            if field == "from" and not entry.get("namespace"):
                errors.required(f"spec.from[{i}].namespace")


GATEWAY_VALIDATORS = {
    "GatewayClass": (validate_gateway_class, "dns1123-subdomain"),
    "Gateway": (validate_gateway, "dns1123-subdomain"),
    "HTTPRoute": (validate_http_route, "dns1123-subdomain"),
    "ReferenceGrant": (validate_reference_grant, "dns1123-subdomain"),
}
