"""The `nginx.ingress.kubernetes.io/*` annotations the controller honours, parsed as ingress-nginx's
internal/ingress/annotations packages parse them (validators, defaults from the ConfigMap). An
annotation of that prefix the testbed does not implement, or a value that does not validate, is
ignored with a warning (ingress-nginx logs the same and uses the default)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .settings import BYTE_SIZE, Settings

PREFIX = "nginx.ingress.kubernetes.io/"

# annotations/cors/main.go
DEFAULT_CORS_METHODS = "GET, PUT, POST, DELETE, PATCH, OPTIONS"
DEFAULT_CORS_HEADERS = ("DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,"
                        "Range,Authorization")
DEFAULT_CORS_MAX_AGE = 1728000
CORS_ORIGIN = re.compile(r"^([a-z]+://(\*\.)?[A-Za-z0-9\-.]*(:\d+)?|\*|null)?$")
CORS_METHODS = re.compile(r"^([A-Za-z]+,?\s?)+$")
CORS_HEADERS = re.compile(r"^([A-Za-z0-9\-_]+,?\s?)+$")          # parser.HeadersVariable
CORS_EXPOSE_HEADERS = re.compile(r"^(([A-Za-z0-9\-_]+|\*),?\s?)+$")
# A rewrite target or prefix may hold $1.. captures and a path; nothing that ends an nginx directive.
REWRITE_TARGET = re.compile(r"^[^\s;{}\"'\\]*$")
VHOST = re.compile(r"^[A-Za-z0-9.\-:]+$")


@dataclass(frozen=True)
class Cors:
    allow_origin: tuple[str, ...] = ("*",)
    allow_methods: str = DEFAULT_CORS_METHODS
    allow_headers: str = DEFAULT_CORS_HEADERS
    allow_credentials: bool = True
    expose_headers: str = ""
    max_age: int = DEFAULT_CORS_MAX_AGE


@dataclass(frozen=True)
class LocationConfig:
    """What an Ingress's annotations give each of its locations."""
    rewrite_target: str = ""
    use_regex: bool = False
    x_forwarded_prefix: str = ""
    ssl_redirect: bool = True
    force_ssl_redirect: bool = False
    body_size: str = "1m"
    cors: Cors | None = None
    service_upstream: bool = False
    upstream_vhost: str = ""
    connect_timeout: int = 5
    send_timeout: int = 60
    read_timeout: int = 60


def _bool(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError("must be true or false")
    return value.lower() == "true"


def _int(value: str) -> int:
    if not re.fullmatch(r"[0-9]+", value.strip()):
        raise ValueError("must be a non-negative integer")
    return int(value)


def _matching(pattern: re.Pattern, what: str):
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"must be {what}")
        return value
    return check


def _origins(value: str) -> tuple[str, ...]:
    origins = []
    for origin in (o.strip() for o in value.split(",")):
        if not origin:
            continue
        if origin == "*":
            return ("*",)
        if not CORS_ORIGIN.match(origin):
            raise ValueError(f'origin "{origin}" must be scheme://host[:port], "*" or "null"')
        origins.append(origin)
    return tuple(origins) or ("*",)


# annotation (without the prefix) -> parser of its value
PARSERS = {
    "rewrite-target": _matching(REWRITE_TARGET, "a path (with $1.. captures), without spaces or ; { } quotes"),
    "use-regex": _bool,
    "x-forwarded-prefix": _matching(REWRITE_TARGET, "a path"),
    "ssl-redirect": _bool,
    "force-ssl-redirect": _bool,
    "proxy-body-size": _matching(BYTE_SIZE, "a size such as 8m (0: no limit)"),
    "enable-cors": _bool,
    "cors-allow-origin": _origins,
    "cors-allow-methods": _matching(CORS_METHODS, "a list of methods"),
    "cors-allow-headers": _matching(CORS_HEADERS, "a list of header names"),
    "cors-allow-credentials": _bool,
    "cors-expose-headers": _matching(CORS_EXPOSE_HEADERS, "a list of header names or *"),
    "cors-max-age": _int,
    "service-upstream": _bool,
    "upstream-vhost": _matching(VHOST, "a host name"),
    "proxy-connect-timeout": _int,
    "proxy-send-timeout": _int,
    "proxy-read-timeout": _int,
}


def parse_annotations(annotations: dict | None, settings: Settings) -> tuple[LocationConfig, list[str]]:
    """The location configuration of one Ingress and the warnings about its annotations."""
    values, warnings = {}, []
    for key, raw in sorted((annotations or {}).items()):
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):]
        parser = PARSERS.get(name)
        if parser is None:
            warnings.append(f'annotation "{key}" is not supported by the testbed\'s controller: ignored')
            continue
        try:
            values[name] = parser(str(raw))
        except ValueError as err:
            warnings.append(f'annotation "{key}": invalid value "{raw}": {err}; ignored')
    cors = None
    if values.get("enable-cors"):
        cors = Cors(allow_origin=values.get("cors-allow-origin", ("*",)),
                    allow_methods=values.get("cors-allow-methods", DEFAULT_CORS_METHODS),
                    allow_headers=values.get("cors-allow-headers", DEFAULT_CORS_HEADERS),
                    allow_credentials=values.get("cors-allow-credentials", True),
                    expose_headers=values.get("cors-expose-headers", ""),
                    max_age=values.get("cors-max-age", DEFAULT_CORS_MAX_AGE))
    config = LocationConfig(
        rewrite_target=values.get("rewrite-target", ""),
        use_regex=values.get("use-regex", False),
        x_forwarded_prefix=values.get("x-forwarded-prefix", ""),
        ssl_redirect=values.get("ssl-redirect", settings.ssl_redirect),
        force_ssl_redirect=values.get("force-ssl-redirect", settings.force_ssl_redirect),
        body_size=values.get("proxy-body-size", settings.proxy_body_size),
        cors=cors,
        service_upstream=values.get("service-upstream", False),
        upstream_vhost=values.get("upstream-vhost", ""),
        connect_timeout=values.get("proxy-connect-timeout", settings.proxy_connect_timeout),
        send_timeout=values.get("proxy-send-timeout", settings.proxy_send_timeout),
        read_timeout=values.get("proxy-read-timeout", settings.proxy_read_timeout))
    return config, warnings
