"""The routing model -> nginx.conf text, shaped like ingress-nginx's template
(rootfs/etc/nginx/template/nginx.tmpl, internal/ingress/controller/template/template.go), pure.

ingress-nginx computes some per-request values in Lua (balancer, certificate by SNI, forwarded
headers, the HTTPS redirect). Debian's nginx has no Lua, so the same values come from elsewhere:
- the balancer is nginx's JavaScript module (balancer.js below): it picks an endpoint per request
  from endpoints/<upstream>, which the controller rewrites, so endpoint changes need no reload;
  the pick is weighted-random where ingress-nginx's default is round-robin, and a connection to
  the endpoint is made per request (no upstream keepalive pool, no retry on another endpoint);
- certificates are per-server `ssl_certificate` files; nginx picks the server by SNI;
- $pass_access_scheme, $pass_server_port, $best_http_host come from `map`s (the pre-Lua template's
  shape), trusting X-Forwarded-* only with `use-forwarded-headers`;
- the redirect is an `if ($redirect_to_https)` returning `http-redirect-code` (308) to
  https://$host$request_uri without its trailing slash, as lua_ingress.lua's redirect_to_https;
- CORS headers use `add_header ... always` where the template uses headers-more's more_set_headers.
Nothing else differs in what a client or a backend sees.
"""
from __future__ import annotations

import hashlib
import re

from .annotations import Cors
from .model import DEFAULT_SERVER, DEFAULT_UPSTREAM, Location, RoutingModel, Server, Upstream, needs_rewrite
from .settings import Settings
from .tls import FAKE_FILE

CONF_DIR = "/etc/nginx"
STATE_DIR = "/var/lib/nginx"
STATUS_PORT = 10246          # ingress-nginx's internal status server (127.0.0.1)
HEALTH_PORT = 10254          # the controller's /healthz (the readiness probe)
DEFAULT_BACKEND_PORT = 8181  # upstream-default-backend: nginx itself answers 404
ERROR_500_PORT = 8182        # Gateway API: requests for unusable backends get 500


def quote(text: str) -> str:
    """A double-quoted nginx string (template.go sanitizeQuotedRegex escapes \\ and ")."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def byte_size_valid(size: str) -> bool:
    return bool(re.fullmatch(r"[0-9]+[kKmMgG]?", size))


def server_name(hostname: str) -> str:
    """template.go buildServerName: `*.foo.com` matches exactly one label."""
    if not hostname.startswith("*."):
        return hostname
    return "~^(?<subdomain>[\\w-]+)\\." + "\\.".join(hostname[2:].split(".")) + "$"


def location_path(location: Location, enforce_regex: bool) -> str:
    """template.go buildLocation."""
    if enforce_regex:
        return f'~* {quote("^" + location.path)}'
    if location.path_type == "Exact":
        return f"= {quote(location.path)}"
    return quote(location.path)


def forwarded_for_variable(header: str) -> str:
    """template.go buildForwardedFor: X-Forwarded-For -> $http_x_forwarded_for."""
    return "$http_" + header.lower().replace("-", "_")


class Writer:
    def __init__(self):
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, line: str = "") -> None:
        self.lines.append(("    " * self.depth + line) if line else "")

    def open(self, head: str) -> None:
        self(head + " {")
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        self("}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _http_block(w: Writer, s: Settings, model: RoutingModel, conf_dir: str, state_dir: str) -> None:
    w(f"client_body_temp_path {state_dir}/body;")
    w(f"proxy_temp_path {state_dir}/proxy;")
    w(f"fastcgi_temp_path {state_dir}/fastcgi;")
    w(f"uwsgi_temp_path {state_dir}/uwsgi;")
    w(f"scgi_temp_path {state_dir}/scgi;")
    w()
    if s.use_forwarded_headers:
        w(f"real_ip_header {s.forwarded_for_header};")
        w("real_ip_recursive on;")
        for cidr in s.proxy_real_ip_cidr:
            w(f"set_real_ip_from {cidr};")
        w()
    w("sendfile on;")
    w("tcp_nopush on;")
    w("tcp_nodelay on;")
    w("log_subrequest on;")
    w("reset_timedout_connection on;")
    w(f"keepalive_timeout {s.keep_alive}s;")
    w(f"keepalive_requests {s.keep_alive_requests};")
    w(f"client_header_buffer_size {s.client_header_buffer_size};")
    w("client_header_timeout 60s;")
    w(f"large_client_header_buffers {s.large_client_header_buffers};")
    w(f"client_body_buffer_size {s.client_body_buffer_size};")
    w("client_body_timeout 60s;")
    w("types_hash_max_size 2048;")
    w(f"server_names_hash_max_size {s.server_name_hash_max_size};")
    w(f"server_names_hash_bucket_size {s.server_name_hash_bucket_size};")
    w(f"map_hash_bucket_size {s.map_hash_bucket_size};")
    w("proxy_headers_hash_max_size 512;")
    w("proxy_headers_hash_bucket_size 64;")
    w("variables_hash_bucket_size 256;")
    w("variables_hash_max_size 2048;")
    w("underscores_in_headers off;")
    w("ignore_invalid_headers on;")
    w("limit_req_status 503;")
    w("limit_conn_status 503;")
    w("default_type text/html;")
    w(f"server_tokens {'on' if s.server_tokens else 'off'};")
    w("uninitialized_variable_warn off;")
    w()
    escape = "escape=json " if s.log_format_escape_json else ""
    w(f"log_format upstreaminfo {escape}'{s.log_format_upstream}';")
    w("map $request_uri $loggable {")
    w("    default 1;")
    w("}")
    w("access_log off;" if s.disable_access_log else "access_log /dev/stdout upstreaminfo if=$loggable;")
    w("error_log stderr notice;")
    w()
    w("# See https://www.nginx.com/blog/websocket-nginx")
    w("map $http_upgrade $connection_upgrade {")
    w("    default upgrade;")
    w("    '' '';")
    w("}")
    w("# Reverse proxies can detect if a client provides a X-Request-ID header, and pass it on to the backend server.")
    w("# If no such header is provided, it can provide a random value.")
    w("map $http_x_request_id $req_id {")
    w("    default $http_x_request_id;")
    if s.generate_request_id:
        w('    "" $request_id;')
    w("}")
    if s.use_forwarded_headers and s.compute_full_forwarded_for:
        w("# We can't use $proxy_add_x_forwarded_for because the realip module")
        w("# replaces the remote_addr too soon")
        w(f"map {forwarded_for_variable(s.forwarded_for_header)} $full_x_forwarded_for {{")
        w('    default "$http_x_forwarded_for, $realip_remote_addr";')
        w('    \'\' "$realip_remote_addr";')
        w("}")
    w("# What lua_ingress.lua's rewrite() computes: the scheme, port and host the client used,")
    w("# taken from X-Forwarded-* only with use-forwarded-headers.")
    w("map $http_host $this_host {")
    w("    default $http_host;")
    w("    '' $host;")
    w("}")
    if s.use_forwarded_headers:
        for variable, header, fallback in (("$pass_access_scheme", "$http_x_forwarded_proto", "$scheme"),
                                           ("$pass_server_port", "$http_x_forwarded_port", "$server_port"),
                                           ("$best_http_host", "$http_x_forwarded_host", "$this_host")):
            w(f"map {header} {variable} {{")
            w(f"    default {header};")
            w(f"    '' {fallback};")
            w("}")
    else:
        w("map '' $pass_access_scheme {")
        w("    default $scheme;")
        w("}")
        w("map '' $pass_server_port {")
        w("    default $server_port;")
        w("}")
        w("map $this_host $best_http_host {")
        w("    default $this_host;")
        w("}")
    w("map $pass_server_port $pass_port {")
    w("    443 443;")
    w("    default $pass_server_port;")
    w("}")
    w("map $pass_access_scheme $redirect_to_https {")
    w("    default 0;")
    w("    http 1;")
    w("}")
    w("map $best_http_host $redirect_host {")
    w('    "~^(?<redirect_hostname>[^:]+)" $redirect_hostname;')
    w("    default $best_http_host;")
    w("}")
    w("# do not append a trailing slash on redirects (lua_ingress.lua)")
    w("map $request_uri $redirect_uri {")
    w('    "~^(?<redirect_path>.*)/$" $redirect_path;')
    w("    default $request_uri;")
    w("}")
    if s.hsts:
        w("map $scheme $hsts_header {")
        w(f'    https "max-age={s.hsts_max_age}{"; includeSubDomains" if s.hsts_include_subdomains else ""}";')
        w("    default '';")
        w("}")
    w("# Create a variable that contains the literal $ character.")
    w("# This works because the geo module will not resolve variables.")
    w("geo $literal_dollar {")
    w('    default "$";')
    w("}")
    w("# the seed articles' log formats use $the_real_ip (older ingress-nginx templates defined it)")
    w("map $remote_addr $the_real_ip {")
    w("    default $remote_addr;")
    w("}")
    w()
    w("server_name_in_redirect off;")
    w("port_in_redirect off;")
    w(f"ssl_protocols {s.ssl_protocols};")
    w("ssl_early_data off;")
    w("# turn on session caching to drastically improve performance")
    w("ssl_session_cache shared:SSL:10m;")
    w("ssl_session_timeout 10m;")
    w("ssl_session_tickets off;")
    w("ssl_buffer_size 4k;")
    w("ssl_ciphers 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
      "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
      "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384';")
    w("ssl_prefer_server_ciphers on;")
    w("ssl_ecdh_curve auto;")
    fake = model.certificates[FAKE_FILE]
    w(f"# PEM sha: {fake.sha}")
    w(f"ssl_certificate {conf_dir}/ssl/{FAKE_FILE};")
    w(f"ssl_certificate_key {conf_dir}/ssl/{FAKE_FILE};")
    w("proxy_ssl_session_reuse on;")
    w()
    w(f'js_path "{conf_dir}/njs/";')
    w("js_import balancer from balancer.js;")
    w("js_set $balancer_peer balancer.peer;")
    w()


JS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"    # Debian's libnginx-mod-http-js
# What ingress-nginx's balancer.lua does with the backends the controller posts to /configuration:
# pick an endpoint per request from data that changes without a reload. Here the data is one file
# per upstream, `address:port weight` lines, replaced atomically by the controller; an upstream
# without endpoints answers 503 (a local server), as ingress-nginx's balancer does.
BALANCER_JS = """// Rendered by the testbed's ingress controller: the endpoint balancer (ingress-nginx: balancer.lua).
var fs = require('fs');

function peer(r) {
    var text;
    try {
        text = fs.readFileSync('@DIR@/endpoints/' + r.variables.proxy_upstream_name, 'utf8');
    } catch (e) {
        return '127.0.0.1:@UNAVAILABLE@';
    }
    var peers = [], total = 0;
    text.split('\\n').forEach(function (line) {
        var parts = line.split(' ');
        if (parts[0]) {
            var weight = parseInt(parts[1] || '1', 10);
            peers.push([parts[0], weight]);
            total += weight;
        }
    });
    if (!total) {
        return '127.0.0.1:@UNAVAILABLE@';
    }
    var pick = Math.random() * total;
    for (var i = 0; i < peers.length; i++) {
        pick -= peers[i][1];
        if (pick < 0) {
            return peers[i][0];
        }
    }
    return peers[peers.length - 1][0];
}

export default {peer};
"""


def balancer_js(conf_dir: str = CONF_DIR) -> str:
    return BALANCER_JS.replace("@DIR@", conf_dir).replace("@UNAVAILABLE@", str(ERROR_500_PORT + 1))


def endpoint_files(model: RoutingModel) -> dict[str, str]:
    """endpoints/<upstream> -> its `address:port weight` lines (no file: no endpoints)."""
    return {f"endpoints/{u.name}": "".join(f"{e.address}:{e.port} {e.weight}\n" for e in u.endpoints)
            for u in model.upstreams.values() if u.name != DEFAULT_UPSTREAM and u.endpoints}


def support_files(model: RoutingModel, conf_dir: str = CONF_DIR) -> dict[str, str]:
    """Everything beside nginx.conf under the configuration directory (certificates are separate)."""
    return {"njs/balancer.js": balancer_js(conf_dir), **endpoint_files(model)}


def _upstream(w: Writer, upstream: Upstream) -> None:
    w.open(f"upstream {upstream.name}")
    for endpoint in upstream.endpoints:
        weight = f" weight={endpoint.weight}" if endpoint.weight != 1 else ""
        w(f"server {endpoint.address}:{endpoint.port}{weight} max_fails=0;")
    if upstream.name != "upstream-default-backend":
        w("keepalive 320;")
        w("keepalive_timeout 60s;")
        w("keepalive_requests 10000;")
    w.close()


def _listen(w: Writer, server: Server, s: Settings, default_ports: set[int]) -> None:
    if server.hostname == DEFAULT_SERVER:
        if 80 in default_ports:
            w("listen 80 default_server reuseport backlog=4096;")
        if 443 in default_ports:
            w(f"listen 443 default_server reuseport backlog=4096 ssl{' http2' if s.use_http2 else ''};")
    else:
        w("listen 80;")
        w("listen 443 ssl;")


def _always_headers(w: Writer, server: Server, s: Settings) -> None:
    """Headers every response of the location carries (repeated inside `if` blocks that add headers,
    since add_header does not inherit into a level that has its own)."""
    if s.hsts and server.tls:
        w("add_header Strict-Transport-Security $hsts_header always;")


def _cors(w: Writer, cors: Cors, server: Server, s: Settings) -> None:
    """The template's CORS block (from michielkalkman.com's nginx CORS snippet)."""
    w("# Cors Preflight methods needs additional options and different Return Code")
    if cors.allow_origin == ("*",):
        w('set $cors_allow_origin "*";')
        w("set $cors 'true';")
    else:
        def origin_regex(origin: str) -> str:   # template.go buildOriginRegex
            return "(" + re.escape(origin).replace("\\*", "[A-Za-z0-9\\-]+", 1) + ")"
        w("set $cors_allow_origin $http_origin;")
        w(f"if ($http_origin ~* ({'|'.join(origin_regex(o) for o in cors.allow_origin)})$ ) {{ set $cors 'true'; }}")
    w("if ($request_method = 'OPTIONS') {")
    w("    set $cors ${cors}options;")
    w("}")
    for condition, preflight in (('"true"', False), ('"trueoptions"', True)):
        w.open(f"if ($cors = {condition})")
        w("add_header 'Access-Control-Allow-Origin' $cors_allow_origin always;")
        if cors.allow_credentials:
            w("add_header 'Access-Control-Allow-Credentials' 'true' always;")
        w(f"add_header 'Access-Control-Allow-Methods' '{cors.allow_methods}' always;")
        w(f"add_header 'Access-Control-Allow-Headers' '{cors.allow_headers}' always;")
        if cors.expose_headers:
            w(f"add_header 'Access-Control-Expose-Headers' '{cors.expose_headers}' always;")
        w(f"add_header 'Access-Control-Max-Age' '{cors.max_age}' always;")
        _always_headers(w, server, s)
        if preflight:
            w("add_header 'Content-Type' 'text/plain charset=UTF-8';")
            w("add_header 'Content-Length' 0;")
            w("return 204;")
        w.close()


def proxy_headers(w: Writer, s: Settings, host: str = "$best_http_host", skip: frozenset[str] = frozenset()) -> None:
    """The proxy_set_header lines of every proxied location (template.go / nginx.tmpl)."""
    lines = [("Host", host), ("Upgrade", "$http_upgrade"), ("Connection", "$connection_upgrade"),
             ("X-Request-ID", "$req_id"), ("X-Real-IP", "$remote_addr"),
             ("X-Forwarded-For", "$full_x_forwarded_for" if s.use_forwarded_headers and s.compute_full_forwarded_for
              else "$remote_addr"),
             ("X-Forwarded-Host", "$best_http_host"), ("X-Forwarded-Port", "$pass_port"),
             ("X-Forwarded-Proto", "$pass_access_scheme"), ("X-Forwarded-Scheme", "$pass_access_scheme"),
             ("X-Scheme", "$pass_access_scheme"),
             ("X-Original-Forwarded-For", forwarded_for_variable(s.forwarded_for_header)),
             ("X-Original-Forwarded-Host", "$http_x_forwarded_host"), ("Proxy", '""')]
    for name, value in lines:
        if name.lower() not in skip:
            w(f"proxy_set_header {name} {value};")


def proxy_settings(w: Writer, s: Settings, connect: int, send: int, read: int) -> None:
    w(f"proxy_connect_timeout {connect}s;")
    w(f"proxy_send_timeout {send}s;")
    w(f"proxy_read_timeout {read}s;")
    w("proxy_buffering off;")
    w(f"proxy_buffer_size {s.proxy_buffer_size};")
    w(f"proxy_buffers {s.proxy_buffers_number} {s.proxy_buffer_size};")
    w("proxy_max_temp_file_size 1024m;")
    w("proxy_request_buffering on;")
    w("proxy_http_version 1.1;")
    w("proxy_cookie_domain off;")
    w("proxy_cookie_path off;")
    w("# In case of errors try the next upstream server before returning an error")
    w("proxy_next_upstream error timeout;")
    w("proxy_next_upstream_timeout 0;")
    w("proxy_next_upstream_tries 3;")


def server_proxy_defaults(w: Writer, s: Settings) -> None:
    """The proxy settings every location of a server shares (a location overrides what differs)."""
    if byte_size_valid(s.proxy_body_size):
        w(f"client_max_body_size {s.proxy_body_size};")
    proxy_headers(w, s)
    proxy_settings(w, s, s.proxy_connect_timeout, s.proxy_send_timeout, s.proxy_read_timeout)


def _location(w: Writer, server: Server, loc: Location, model: RoutingModel, enforce_regex: bool) -> None:
    s, config = model.settings, loc.config
    w.open(f"location {location_path(loc, enforce_regex)}")
    namespace, ingress = loc.ingress or ("", "")
    w(f"set $namespace {quote(namespace)};")
    w(f"set $ingress_name {quote(ingress)};")
    w(f"set $service_name {quote(loc.service)};")
    w(f"set $service_port {quote(loc.port)};")
    w(f"set $location_path {quote((loc.ingress_path or loc.path).replace('$', '${literal_dollar}'))};")
    w()
    w("port_in_redirect off;")
    w(f"set $proxy_upstream_name {quote(loc.upstream)};")
    w("set $proxy_host $proxy_upstream_name;")
    w('set $proxy_alternative_upstream_name "";')
    if config.force_ssl_redirect or (server.tls and config.ssl_redirect):
        w("if ($redirect_to_https) {")
        w(f"    return {s.http_redirect_code} https://$redirect_host$redirect_uri;")
        w("}")
    if config.cors is not None:
        _cors(w, config.cors, server, s)
    _always_headers(w, server, s)
    # What every location of the server has is set once at server level (nginx.tmpl repeats it in
    # each location; inheritance gives the same, and nginx parses 1,000 paths several times faster).
    if byte_size_valid(config.body_size) and config.body_size != s.proxy_body_size:
        w(f"client_max_body_size {config.body_size};")
    if config.upstream_vhost or (needs_rewrite(loc) and config.x_forwarded_prefix):
        # proxy_set_header inherits only when a level sets none: this location sets them all
        proxy_headers(w, s, host=quote(config.upstream_vhost) if config.upstream_vhost else "$best_http_host")
    timeouts = (config.connect_timeout, config.send_timeout, config.read_timeout)
    if timeouts != (s.proxy_connect_timeout, s.proxy_send_timeout, s.proxy_read_timeout):
        w(f"proxy_connect_timeout {config.connect_timeout}s;")
        w(f"proxy_send_timeout {config.send_timeout}s;")
        w(f"proxy_read_timeout {config.read_timeout}s;")
    if needs_rewrite(loc):   # template.go buildProxyPass
        w(f'rewrite "(?i){loc.path.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}" '
          f"{config.rewrite_target} break;")
        if config.x_forwarded_prefix:
            w(f"proxy_set_header X-Forwarded-Prefix {quote(config.x_forwarded_prefix)};")
    if loc.upstream == DEFAULT_UPSTREAM:
        w(f"proxy_pass http://{DEFAULT_UPSTREAM};")
    else:   # the balancer picks an endpoint of $proxy_upstream_name (balancer.js)
        w("proxy_pass http://$balancer_peer;")
    w("proxy_redirect off;")
    w.close()


def _server(w: Writer, server: Server, model: RoutingModel, conf_dir: str) -> None:
    s = model.settings
    if server.hostname == DEFAULT_SERVER and not model.default_ports:
        return   # the Gateway API's catch-all servers answer on both ports
    w(f"## start server {server.hostname}")
    w.open("server")
    w(f"server_name {server_name(server.hostname)} ;")
    _listen(w, server, s, model.default_ports)
    w('set $proxy_upstream_name "-";')
    if server.certificate is not None:
        w(f"# PEM sha: {server.certificate.sha}")
        w(f"ssl_certificate {conf_dir}/ssl/{server.certificate.file};")
        w(f"ssl_certificate_key {conf_dir}/ssl/{server.certificate.file};")
    server_proxy_defaults(w, s)
    enforce_regex = server.enforce_regex
    for loc in server.locations:
        _location(w, server, loc, model, enforce_regex)
    w.close()
    w(f"## end server {server.hostname}")
    w()


def _internal_servers(w: Writer, checksum_placeholder: str) -> None:
    w("# backend for when default-backend-service is not configured or it does not have endpoints")
    w.open("server")
    w(f"listen 127.0.0.1:{DEFAULT_BACKEND_PORT} default_server reuseport backlog=4096;")
    w('set $proxy_upstream_name "internal";')
    w("access_log off;")
    w.open("location /")
    w("return 404;")
    w.close()
    w.close()
    w()
    for port, status, why in ((ERROR_500_PORT, 500, "backends that cannot be used"),
                              (ERROR_500_PORT + 1, 503, "backends without endpoints")):
        w(f"# Gateway API: the answer for requests to {why} ({status})")
        w.open("server")
        w(f"listen 127.0.0.1:{port};")
        w("access_log off;")
        w.open("location /")
        w(f"return {status};")
        w.close()
        w.close()
        w()
    w("# the controller's /healthz (the pods' readiness probe)")
    w.open("server")
    w(f"listen {HEALTH_PORT};")
    w("access_log off;")
    w.open("location = /healthz")
    w('return 200 "ok";')
    w.close()
    w.close()
    w()
    w("# default server, used for NGINX healthcheck and access to nginx stats")
    w.open("server")
    w(f"listen 127.0.0.1:{STATUS_PORT};")
    w("access_log off;")
    w.open("location /healthz")
    w("return 200;")
    w.close()
    w.open("location /nginx_status")
    w("stub_status on;")
    w.close()
    w("# which configuration this nginx serves (the controller waits for it after a reload)")
    w.open("location = /configuration/checksum")
    w(f'return 200 "{checksum_placeholder}";')
    w.close()
    w.open("location /")
    w("return 404;")
    w.close()
    w.close()


CHECKSUM_PLACEHOLDER = "@CHECKSUM@"


def render(model: RoutingModel, *, conf_dir: str = CONF_DIR, state_dir: str = STATE_DIR,
           extra_servers=None) -> str:
    """nginx.conf for the model. `extra_servers(writer, conf_dir)` adds servers (the Gateway API's)."""
    s = model.settings
    w = Writer()
    w("# Configuration checksum: " + CHECKSUM_PLACEHOLDER)
    w("# Rendered by the testbed's ingress controller from Ingress (and Gateway API) objects, in the")
    w("# shape of ingress-nginx's nginx.tmpl; see testbed/ingress/nginx.py for where it differs.")
    w()
    w(f"load_module {JS_MODULE};")
    w(f"pid {state_dir}/nginx.pid;")
    w("daemon off;")
    w("# keep the emulation's marker in the workers' environment (testbed clean finds them by it)")
    w("env TESTBED_CLUSTER;")
    w(f"worker_processes {s.worker_processes};")
    w("worker_shutdown_timeout 240s;")
    w("error_log stderr notice;")
    w()
    w.open("events")
    w("multi_accept on;")
    w(f"worker_connections {s.worker_connections};")
    w("use epoll;")
    w.close()
    w()
    w.open("http")
    _http_block(w, s, model, conf_dir, state_dir)
    # Only the default backend is an `upstream` block: every other upstream's endpoints are in
    # endpoints/<name>, which balancer.js reads (endpoint changes need no reload).
    _upstream(w, model.upstreams[DEFAULT_UPSTREAM])
    w()
    for server in model.servers:
        _server(w, server, model, conf_dir)
    if extra_servers is not None:
        extra_servers(w, conf_dir)
    _internal_servers(w, CHECKSUM_PLACEHOLDER)
    w.close()
    text = w.text()
    checksum = hashlib.sha1(text.encode()).hexdigest()
    return text.replace(CHECKSUM_PLACEHOLDER, checksum)


def config_checksum(text: str) -> str | None:
    first = text.split("\n", 1)[0]
    return first.removeprefix("# Configuration checksum: ") if first.startswith("# Configuration checksum: ") else None
