"""A fake nginx for unit tests: parses the nginx.conf the controller renders and answers "which
server and location would nginx pick for this Host and URI, and what does that location do"
(proxy_pass to an upstream, a `return`, a rewrite), with nginx's rules:

- server: the listen port's server whose server_name equals the host, else the first regex
  server_name (`~...`) that matches, else the port's default_server;
- location: an exact `= /p` match wins; else the longest prefix; regex locations (`~*`, `~`) are
  tried in order after the longest prefix is found (unless it is `^~`), first match wins.
Only what the renderer emits is understood (one directive per line)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class FakeLocation:
    modifier: str          # "=", "~*", "~", "" (prefix)
    path: str
    directives: list[str] = field(default_factory=list)

    def action(self) -> str:
        """"upstream NAME", "return CODE ..." (the first return not inside an if)."""
        upstream = None
        for line in self.directives:
            if line.startswith("set $proxy_upstream_name "):
                upstream = line[len("set $proxy_upstream_name "):].rstrip(";").strip('"')
            if line.startswith("return "):
                return line.rstrip(";")
            if line.startswith("proxy_pass http://$balancer_peer"):   # balancer.js: $proxy_upstream_name
                return f"upstream {upstream}"
            if line.startswith("proxy_pass http://"):
                return "upstream " + line[len("proxy_pass http://"):].rstrip(";")
        return "none"


@dataclass
class FakeServer:
    names: list[str]
    ports: set[int]
    default_ports: set[int]
    locations: list[FakeLocation]
    directives: list[str]


def _unquote(text: str) -> str:
    text = text.strip()
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text


def parse(text: str) -> list[FakeServer]:
    servers: list[FakeServer] = []
    stack: list[str] = []
    current: FakeServer | None = None
    location: FakeLocation | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("{"):
            head = line[:-1].strip()
            stack.append(head)
            if head == "server" and stack[:-1] == ["http"]:
                current = FakeServer([], set(), set(), [], [])
                servers.append(current)
            elif head.startswith("location ") and current is not None and len(stack) == 3:
                rest = head[len("location "):].strip()
                modifier = ""
                for candidate in ("=", "~*", "~", "^~"):
                    if rest.startswith(candidate + " "):
                        modifier, rest = candidate, rest[len(candidate) + 1:]
                        break
                location = FakeLocation(modifier, _unquote(rest))
                current.locations.append(location)
            continue
        if line == "}":
            head = stack.pop()
            if head.startswith("location ") and len(stack) == 2:
                location = None
            if head == "server" and stack == ["http"]:
                current = None
            continue
        if current is None:
            continue
        if location is not None:
            if len(stack) == 3:     # not inside an `if`
                location.directives.append(line)
            continue
        current.directives.append(line)
        if line.startswith("server_name "):
            current.names = [n for n in line[len("server_name "):].rstrip(";").split() if n]
        elif line.startswith("listen "):
            words = line.rstrip(";").split()
            port = int(words[1].split(":")[-1])
            current.ports.add(port)
            if "default_server" in words:
                current.default_ports.add(port)
    return servers


def choose_server(servers: list[FakeServer], host: str | None, port: int = 80) -> FakeServer:
    candidates = [s for s in servers if port in s.ports]
    host = (host or "").lower().split(":")[0]
    for server in candidates:
        if host in [n for n in server.names if not n.startswith("~")]:
            return server
    for server in candidates:
        for name in server.names:
            if name.startswith("~") and re.search(name[1:].replace("(?<", "(?P<"), host):
                return server
    return next(s for s in candidates if port in s.default_ports)


def choose_location(server: FakeServer, uri: str) -> FakeLocation | None:
    for loc in server.locations:
        if loc.modifier == "=" and loc.path == uri:
            return loc
    prefixes = [loc for loc in server.locations if loc.modifier in ("", "^~") and uri.startswith(loc.path)]
    longest = max(prefixes, key=lambda loc: len(loc.path), default=None)
    if longest is not None and longest.modifier == "^~":
        return longest
    for loc in server.locations:
        if loc.modifier in ("~", "~*"):
            flags = re.IGNORECASE if loc.modifier == "~*" else 0
            if re.search(loc.path, uri, flags):
                return loc
    return longest


def route(text_or_servers, host: str | None, uri: str, port: int = 80) -> str:
    """What nginx does with the request: "upstream NAME" or "return CODE ..."."""
    servers = parse(text_or_servers) if isinstance(text_or_servers, str) else text_or_servers
    location = choose_location(choose_server(servers, host, port), uri)
    return location.action() if location else "return 404"
