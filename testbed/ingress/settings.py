"""The controller ConfigMap (ingress-nginx's internal/ingress/controller/config/config.go): the keys
that map onto nginx, with ingress-nginx's defaults. Unknown keys and bad values are reported as
warnings and fall back to the default, as ingress-nginx does."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace

# ingress-nginx's default log-format-upstream (config.go, logFormatUpstream).
DEFAULT_LOG_FORMAT = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
                      '"$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] '
                      '[$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length '
                      '$upstream_response_time $upstream_status $req_id')
BYTE_SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
BUFFERS = re.compile(r"^[0-9]+ [0-9]+[kKmMgG]?$")
SSL_PROTOCOLS = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}
CIDR = re.compile(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?$")


@dataclass(frozen=True)
class Settings:
    """Field names are the ConfigMap keys with '-' as '_'."""
    use_forwarded_headers: bool = False
    compute_full_forwarded_for: bool = False
    forwarded_for_header: str = "X-Forwarded-For"
    proxy_real_ip_cidr: tuple[str, ...] = ("0.0.0.0/0",)
    generate_request_id: bool = True
    client_header_buffer_size: str = "1k"
    large_client_header_buffers: str = "4 8k"
    client_body_buffer_size: str = "8k"
    proxy_buffer_size: str = "4k"
    proxy_buffers_number: int = 4
    proxy_body_size: str = "1m"
    proxy_connect_timeout: int = 5
    proxy_send_timeout: int = 60
    proxy_read_timeout: int = 60
    server_name_hash_bucket_size: int = 64
    server_name_hash_max_size: int = 1024
    map_hash_bucket_size: int = 64
    ssl_protocols: str = "TLSv1.2 TLSv1.3"
    ssl_redirect: bool = True
    force_ssl_redirect: bool = False
    http_redirect_code: int = 308
    hsts: bool = True
    hsts_max_age: int = 31536000
    hsts_include_subdomains: bool = True
    log_format_upstream: str = DEFAULT_LOG_FORMAT
    log_format_escape_json: bool = False
    disable_access_log: bool = False
    keep_alive: int = 75
    keep_alive_requests: int = 1000
    worker_processes: str = "auto"
    worker_connections: int = 16384
    server_tokens: bool = False
    use_http2: bool = True
    enable_cors: bool = False          # not a ConfigMap key upstream; annotations only (kept False)
    warnings: tuple[str, ...] = field(default=(), compare=False)


_BOOL = {"true": True, "false": False}


def _parse(name: str, kind, text: str):
    """One value, or raise ValueError with the reason."""
    if kind is bool:
        if text.lower() not in _BOOL:
            raise ValueError("must be true or false")
        return _BOOL[text.lower()]
    if kind is int:
        if not re.fullmatch(r"-?[0-9]+", text.strip()):
            raise ValueError("must be an integer")
        return int(text)
    if name == "proxy_real_ip_cidr":
        cidrs = tuple(c.strip() for c in text.split(",") if c.strip())
        if not cidrs or not all(CIDR.match(c) for c in cidrs):
            raise ValueError("must be a comma-separated list of IPv4 CIDRs")
        return cidrs
    if name in ("client_header_buffer_size", "client_body_buffer_size", "proxy_buffer_size", "proxy_body_size"):
        if not BYTE_SIZE.match(text.strip()):
            raise ValueError("must be a size such as 8k or 50m")
        return text.strip()
    if name == "large_client_header_buffers" and not BUFFERS.match(text.strip()):
        raise ValueError('must be "NUMBER SIZE", such as "4 8k"')
    if name == "ssl_protocols":
        words = text.split()
        if not words or any(w not in SSL_PROTOCOLS for w in words):
            raise ValueError(f"must be protocols among {', '.join(sorted(SSL_PROTOCOLS))}")
        return " ".join(words)
    if name == "worker_processes" and not (text == "auto" or text.isdigit()):
        raise ValueError('must be "auto" or a number')
    if name == "forwarded_for_header" and not re.fullmatch(r"[A-Za-z0-9-]+", text):
        raise ValueError("must be a header name")
    if any(c in text for c in "\n\r") or (name != "log_format_upstream" and any(c in text for c in ";{}'\"")):
        raise ValueError("must not contain ; { } quotes or line breaks")
    return text


def settings_from_configmap(data: dict | None) -> Settings:
    """Settings for a ConfigMap's data (None: no ConfigMap, all defaults)."""
    known = {f.name: f for f in fields(Settings) if f.name not in ("warnings", "enable_cors")}
    values, warnings = {}, []
    for key, raw in sorted((data or {}).items()):
        name = key.replace("-", "_")
        if name not in known:
            warnings.append(f'ConfigMap key "{key}" is not supported by the testbed\'s controller: ignored')
            continue
        kind = {"bool": bool, "int": int}.get(str(known[name].type), str)
        try:
            values[name] = _parse(name, kind, str(raw))
        except ValueError as err:
            warnings.append(f'ConfigMap key "{key}": invalid value "{raw}": {err}; using the default')
    if "http_redirect_code" in values and values["http_redirect_code"] not in (301, 302, 307, 308):
        warnings.append(f'ConfigMap key "http-redirect-code": invalid value "{values.pop("http_redirect_code")}": '
                        "must be 301, 302, 307 or 308; using the default")
    return replace(Settings(), **values, warnings=tuple(warnings))
