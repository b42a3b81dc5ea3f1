"""The proxy process of the userspace mode: kube-proxy's pkg/proxy/userspace (before 1.26), one
per node, run inside the node's network namespace.

Every Service port gets a listening socket (proxysocket.go's tcpProxySocket / udpProxySocket)
on the port the proxier asks for; iptables REDIRECT/DNAT rules (written by the proxier,
testbed/backends/userspace.py) send the Service's traffic there. Each accepted connection gets a
backend connection to an endpoint chosen by the round-robin balancer (roundrobin.go), and the
bytes are copied through this process in both directions: that copy is what the mode shows.

    python -m testbed.workloads.userspace_proxy --control /run/testbed/<id>/proxy/node1/control.sock

How the copy works: asyncio Protocols on uvloop's event loop (libuv; pinned in requirements.txt)
- no per-chunk Python loop beyond one callback: the loop reads up to 256 KiB per recv into a bytes
object and the other side's transport writes it - with flow control (a side whose peer's send
buffer is full stops reading until it drains). That is a plain user-space copy (recv + send),
not splice(2) or any kernel shortcut. `--loop asyncio` runs the standard library's loop instead
(about half the connection rate).

Balancing (LoadBalancerRR): the endpoint list is shuffled whenever it changes, then used round
robin; ClientIP affinity keeps a client on its endpoint while it comes back within the timeout
(stickyMaxAgeSeconds, measured from its last connection); TryConnectEndpoints dials with the
timeouts 250 ms, 500 ms, 1 s, 2 s, each failure moving on to the next endpoint with the client's
affinity reset. UDP (udpProxySocket): one backend socket per client address, closed after the
idle timeout (kube-proxy's --udp-timeout, 250 ms by default), replies sent back from the
listening socket so that the REDIRECT's conntrack entry un-NATs them.

Testbed extension, for externalTrafficPolicy Local (which the userspace proxier predates): a
listener marked `transparent` connects to the endpoint from the client's own address
(IP_TRANSPARENT; the node's mangle rule and policy routing deliver the replies back here), so
that the endpoint sees the client's IP as it does in kube-proxy's later modes.

The control socket takes one JSON object per line and answers one per line:
    {"op": "sync", "full": true|false, "listeners": [LISTENER...], "remove": ["id", ...]}
    {"op": "stats"}   {"op": "exit"}
where LISTENER = {"id", "protocol" ("TCP"|"UDP"), "port", "bind" (address), "claim" (ports to
hold open and serve, NodePorts), "endpoints" (["ip:port", ...]), "affinity" (seconds or null),
"transparent" (bool)}. A full sync closes every listener it does not list.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import socket
import sys
import time
from dataclasses import dataclass, field

DIAL_TIMEOUTS = (0.25, 0.5, 1.0, 2.0)       # proxysocket.go EndpointDialTimeouts
IP_TRANSPARENT = getattr(socket, "IP_TRANSPARENT", 19)
HIGH_WATER = 4 * 1024 * 1024                # per-direction buffering before the reader pauses


# ---------------------------------------------------------------------------------------------
# Balancing (roundrobin.go)


@dataclass
class BalancerState:
    """balancerState: endpoints (shuffled), the round-robin index, and affinity records."""
    endpoints: list[str] = field(default_factory=list)
    index: int = 0
    affinity_seconds: float | None = None
    affinity: dict[str, tuple[str, float]] = field(default_factory=dict)   # client IP -> (endpoint, last used)

    def update(self, endpoints: list[str], affinity_seconds: float | None) -> None:
        """OnEndpointsUpdate: a changed list is shuffled and the index reset; affinity records of
        endpoints that are gone are removed (removeSessionAffinityByEndpoint)."""
        if sorted(endpoints) != sorted(self.endpoints):
            shuffled = list(endpoints)
            random.shuffle(shuffled)
            self.endpoints, self.index = shuffled, 0
            present = set(endpoints)
            self.affinity = {c: a for c, a in self.affinity.items() if a[0] in present}
        if affinity_seconds != self.affinity_seconds:
            self.affinity_seconds, self.affinity = affinity_seconds, {}

    def next_endpoint(self, client_ip: str, reset_affinity: bool, now: float) -> str | None:
        """NextEndpoint: the client's sticky endpoint if it is fresh and not reset, else the next
        one round robin (recorded as the client's new affinity)."""
        if not self.endpoints:
            return None
        if self.affinity_seconds is not None and not reset_affinity:
            sticky = self.affinity.get(client_ip)
            if sticky is not None and now - sticky[1] < self.affinity_seconds:
                self.affinity[client_ip] = (sticky[0], now)
                return sticky[0]
        endpoint = self.endpoints[self.index % len(self.endpoints)]
        self.index = (self.index + 1) % len(self.endpoints)
        if self.affinity_seconds is not None:
            self.affinity[client_ip] = (endpoint, now)
        return endpoint

    def cleanup_stale(self, now: float) -> None:
        """CleanupStaleStickySessions."""
        if self.affinity_seconds is not None:
            self.affinity = {c: a for c, a in self.affinity.items() if now - a[1] < self.affinity_seconds}


def split_hostport(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


# ---------------------------------------------------------------------------------------------
# TCP


class _Side(asyncio.Protocol):
    """One socket of a proxied connection; what it reads goes to its peer's transport."""

    def __init__(self, conn: "_TcpConnection"):
        self.conn = conn
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)

    def data_received(self, data):
        peer = self.conn.peer_of(self)
        if peer.transport is None:          # the client spoke before the backend connection stood
            self.conn.pending.append(data)
            self.transport.pause_reading()
            return
        peer.transport.write(data)

    def eof_received(self):
        peer = self.conn.peer_of(self)
        if peer.transport is None:
            self.conn.pending_eof = True
            return True
        if peer.transport.can_write_eof():
            peer.transport.write_eof()     # half-close, as io.Copy + CloseWrite do
        self.conn.half_closed()
        return True

    def connection_lost(self, exc):
        self.conn.close()

    def pause_writing(self):              # our send buffer is full: stop reading from the peer
        peer = self.conn.peer_of(self)
        if peer.transport is not None:
            peer.transport.pause_reading()

    def resume_writing(self):
        peer = self.conn.peer_of(self)
        if peer.transport is not None:
            peer.transport.resume_reading()


class _ClientSide(_Side):
    """The accepted socket: it is not read until the backend connection stands."""

    def __init__(self, conn: "_TcpConnection", listener: "TcpListener"):
        super().__init__(conn)
        self.listener = listener

    def connection_made(self, transport):
        super().connection_made(transport)
        # Python < 3.12 starts reading even when paused here; data_received buffers what comes early.
        transport.pause_reading()
        asyncio.get_running_loop().create_task(self.listener.connect(self.conn, transport))


class _TcpConnection:
    def __init__(self, proxy: "Proxy", listener: "TcpListener"):
        self.proxy = proxy
        self.client = _ClientSide(self, listener)
        self.backend = _Side(self)
        self.pending: list[bytes] = []
        self.pending_eof = False
        self.eofs = 0
        self.done = False

    def peer_of(self, side: _Side) -> _Side:
        return self.backend if side is self.client else self.client

    def half_closed(self) -> None:
        self.eofs += 1
        if self.eofs >= 2:
            self.close()

    def close(self) -> None:
        if self.done:
            return
        self.done = True
        self.proxy.active_tcp -= 1
        for side in (self.client, self.backend):
            if side.transport is not None:
                side.transport.close()


class TcpListener:
    """tcpProxySocket.ProxyLoop: accept, pick an endpoint, connect (retrying), copy. Called as
    the protocol factory of every accepted connection."""

    def __init__(self, proxy: "Proxy", listener: "Listener"):
        self.proxy = proxy
        self.listener = listener

    def __call__(self) -> _Side:
        self.proxy.active_tcp += 1
        self.proxy.accepted += 1
        return _TcpConnection(self.proxy, self).client

    async def connect(self, conn: _TcpConnection, client_transport: asyncio.Transport) -> None:
        """TryConnectEndpoints."""
        loop = asyncio.get_running_loop()
        peer = client_transport.get_extra_info("peername") or ("0.0.0.0", 0)
        reset = False
        for timeout in DIAL_TIMEOUTS:
            endpoint = self.listener.balancer.next_endpoint(peer[0], reset, time.monotonic())
            if endpoint is None or conn.done:
                break
            sock = None
            try:
                sock = self._backend_socket(peer[0])
                async with asyncio.timeout(timeout):   # no extra task per connection, unlike wait_for
                    await loop.sock_connect(sock, split_hostport(endpoint))
                    await loop.create_connection(lambda: conn.backend, sock=sock)
            except (OSError, asyncio.TimeoutError) as error:
                self.proxy.dial_failures += 1
                self.proxy.log(f"{self.listener.id}: dial {endpoint} failed: {error!r}")
                if sock is not None:
                    sock.close()
                reset = True       # sessionAffinityReset: the next try ignores the client's affinity
                continue
            if conn.done:
                conn.backend.transport.close()
                return
            for data in conn.pending:
                conn.backend.transport.write(data)
            conn.pending.clear()
            if conn.pending_eof:
                conn.backend.transport.write_eof()
                conn.half_closed()
            else:
                client_transport.resume_reading()
            return
        conn.close()   # no endpoint, or every try failed: the client's connection is closed

    def _backend_socket(self, client_ip: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.listener.transparent:
            sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
            sock.bind((client_ip, 0))
        return sock


# ---------------------------------------------------------------------------------------------
# UDP


class _UdpBackend(asyncio.DatagramProtocol):
    """The backend socket of one client address (ClientCache entry); replies go back to the
    client from the listening socket."""

    def __init__(self, listener: "UdpListener", client: tuple[str, int]):
        self.listener = listener
        self.client = client
        self.transport = None
        self.last = time.monotonic()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.last = time.monotonic()
        self.listener.transport.sendto(data, self.client)

    def error_received(self, exc):
        pass

    def connection_lost(self, exc):
        self.listener.clients.pop(self.client, None)


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, proxy: "Proxy", listener: "Listener"):
        self.proxy = proxy
        self.listener = listener
        self.transport = None
        self.clients: dict[tuple[str, int], _UdpBackend] = {}
        self.connecting: dict[tuple[str, int], list[bytes]] = {}

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        backend = self.clients.get(addr)
        if backend is not None and backend.transport is not None:
            backend.last = time.monotonic()
            backend.transport.sendto(data)
            return
        if addr in self.connecting:
            self.connecting[addr].append(data)
            return
        self.connecting[addr] = [data]
        asyncio.get_running_loop().create_task(self._open(addr))

    async def _open(self, addr) -> None:
        loop = asyncio.get_running_loop()
        reset = False
        try:
            for _ in DIAL_TIMEOUTS:
                endpoint = self.listener.balancer.next_endpoint(addr[0], reset, time.monotonic())
                if endpoint is None:
                    return
                try:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    sock.setblocking(False)
                    if self.listener.transparent:
                        sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
                        sock.bind((addr[0], 0))
                    sock.connect(split_hostport(endpoint))
                    _, backend = await loop.create_datagram_endpoint(
                        lambda: _UdpBackend(self, addr), sock=sock)
                except OSError as error:
                    self.proxy.dial_failures += 1
                    self.proxy.log(f"{self.listener.id}: dial {endpoint} failed: {error!r}")
                    reset = True
                    continue
                self.clients[addr] = backend
                for data in self.connecting.get(addr, ()):
                    backend.transport.sendto(data)
                return
        finally:
            self.connecting.pop(addr, None)

    def expire_idle(self, now: float, idle: float) -> None:
        for backend in list(self.clients.values()):
            if now - backend.last > idle and backend.transport is not None:
                backend.transport.close()

    def close(self) -> None:
        for backend in list(self.clients.values()):
            if backend.transport is not None:
                backend.transport.close()
        if self.transport is not None:
            self.transport.close()


# ---------------------------------------------------------------------------------------------
# Listeners and the control socket


@dataclass
class Listener:
    id: str
    protocol: str
    port: int
    bind: str
    claim: tuple[int, ...]
    transparent: bool
    balancer: BalancerState
    servers: list = field(default_factory=list)     # asyncio Servers (TCP) or UdpListeners

    def same_sockets(self, spec: dict) -> bool:
        return (spec["protocol"], int(spec["port"]), spec.get("bind", "0.0.0.0"), tuple(spec.get("claim") or ()),
                bool(spec.get("transparent"))) == (self.protocol, self.port, self.bind, self.claim, self.transparent)


class Proxy:
    def __init__(self, control: str, udp_idle: float, verbose: bool = False):
        self.control = control
        self.udp_idle = udp_idle
        self.verbose = verbose
        self.listeners: dict[str, Listener] = {}
        self.active_tcp = 0
        self.accepted = 0
        self.dial_failures = 0
        self.stopping: asyncio.Event | None = None

    def log(self, text: str) -> None:
        if self.verbose:
            print(text, file=sys.stderr, flush=True)

    async def open(self, spec: dict) -> Listener:
        loop = asyncio.get_running_loop()
        balancer = BalancerState()
        balancer.update(list(spec.get("endpoints") or ()), spec.get("affinity"))
        listener = Listener(spec["id"], spec["protocol"], int(spec["port"]), spec.get("bind", "0.0.0.0"),
                            tuple(int(p) for p in spec.get("claim") or ()), bool(spec.get("transparent")), balancer)
        try:
            for port in (listener.port, *listener.claim):
                address = listener.bind if port == listener.port else spec.get("claim_bind", listener.bind)
                if listener.protocol == "TCP":
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((address, port))
                    sock.listen(4096)
                    sock.setblocking(False)
                    server = await loop.create_server(TcpListener(self, listener), sock=sock)
                    listener.servers.append(server)
                else:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    sock.bind((address, port))
                    sock.setblocking(False)
                    udp = UdpListener(self, listener)
                    await loop.create_datagram_endpoint(lambda udp=udp: udp, sock=sock)
                    listener.servers.append(udp)
        except OSError:
            self.close_listener(listener)
            raise
        return listener

    @staticmethod
    def close_listener(listener: Listener) -> None:
        """stopProxy: no new connections; established ones are left alone (tcpProxySocket.Close)."""
        for server in listener.servers:
            server.close()
        listener.servers.clear()

    async def sync(self, request: dict) -> dict:
        errors: dict[str, str] = {}
        wanted = {spec["id"]: spec for spec in request.get("listeners") or ()}
        removed = set(request.get("remove") or ())
        if request.get("full"):
            removed |= set(self.listeners) - set(wanted)
        for lid in removed:
            listener = self.listeners.pop(lid, None)
            if listener is not None:
                self.close_listener(listener)
        for lid, spec in wanted.items():
            current = self.listeners.get(lid)
            if current is not None and current.same_sockets(spec):
                current.balancer.update(list(spec.get("endpoints") or ()), spec.get("affinity"))
                continue
            if current is not None:
                self.close_listener(self.listeners.pop(lid))
            try:
                self.listeners[lid] = await self.open(spec)
            except OSError as error:
                errors[lid] = f"{error.strerror or error} (port {spec['port']})"
        return {"ok": not errors, "errors": errors, "listeners": len(self.listeners)}

    def stats(self) -> dict:
        return {"ok": True, "listeners": len(self.listeners), "active_tcp": self.active_tcp,
                "accepted": self.accepted, "dial_failures": self.dial_failures,
                "udp_clients": sum(len(s.clients) for lst in self.listeners.values()
                                   for s in lst.servers if isinstance(s, UdpListener))}

    async def handle_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                request = json.loads(line)
                op = request.get("op")
                if op == "sync":
                    reply = await self.sync(request)
                elif op == "stats":
                    reply = self.stats()
                elif op == "exit":
                    reply = {"ok": True}
                    self.stopping.set()
                else:
                    reply = {"ok": False, "errors": {"": f"unknown op {op!r}"}}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        finally:
            writer.close()

    async def housekeeping(self) -> None:
        """UDP idle timeouts and stale sticky sessions (the proxier's periodic cleanup)."""
        while True:
            await asyncio.sleep(min(self.udp_idle, 1.0))
            now = time.monotonic()
            for listener in self.listeners.values():
                listener.balancer.cleanup_stale(now)
                for server in listener.servers:
                    if isinstance(server, UdpListener):
                        server.expire_idle(now, self.udp_idle)

    async def main(self) -> None:
        self.stopping = asyncio.Event()
        if os.path.exists(self.control):
            os.unlink(self.control)
        server = await asyncio.start_unix_server(self.handle_control, path=self.control, limit=1 << 30)
        housekeeping = asyncio.get_running_loop().create_task(self.housekeeping())
        print(f"userspace proxy: control socket {self.control}", file=sys.stderr, flush=True)
        await self.stopping.wait()
        housekeeping.cancel()
        server.close()
        for listener in self.listeners.values():
            self.close_listener(listener)
        try:
            os.unlink(self.control)
        except OSError:
            pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="kube-proxy's userspace proxy (testbed)")
    parser.add_argument("--control", required=True, help="path of the control socket")
    parser.add_argument("--udp-timeout", type=float, default=0.25, help="idle timeout of UDP client sockets (s)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="the event loop")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)   # setRLimit(64 * 1000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 64000)), hard))
    proxy = Proxy(args.control, args.udp_timeout, args.verbose)
    if args.loop == "uvloop":
        import uvloop
        uvloop.run(proxy.main())
    else:
        asyncio.run(proxy.main())


if __name__ == "__main__":
    main()
