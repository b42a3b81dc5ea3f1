"""The userspace mode's proxy program (testbed/workloads/userspace_proxy.py), run for real on
loopback (no root): its control socket, round robin over a shuffled list, ClientIP affinity,
retry on the next endpoint, the byte copy (TCP both ways, half-close, large transfers) and UDP
with one backend socket per client and an idle timeout."""
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from testbed.workloads.userspace_proxy import BalancerState


# -- the balancer (pure) ----------------------------------------------------------------------

def test_round_robin_over_a_shuffled_list():
    state = BalancerState()
    state.update(["a:1", "b:1", "c:1"], None)
    picks = [state.next_endpoint("10.0.0.1", False, 0) for _ in range(9)]
    assert sorted(picks[:3]) == ["a:1", "b:1", "c:1"] and picks[:3] * 3 == picks


def test_the_list_is_shuffled_when_it_changes_only():
    orders = set()
    for _ in range(30):
        state = BalancerState()
        state.update(["a:1", "b:1", "c:1", "d:1"], None)
        orders.add(tuple(state.endpoints))
    assert len(orders) > 1
    state = BalancerState()
    state.update(["a:1", "b:1"], None)
    before = list(state.endpoints)
    state.next_endpoint("x", False, 0)
    state.update(["b:1", "a:1"], None)     # same set: the order and index stay
    assert state.endpoints == before and state.index == 1


def test_affinity_sticks_until_the_timeout_and_resets_on_request():
    state = BalancerState()
    state.update(["a:1", "b:1", "c:1"], 10)
    first = state.next_endpoint("10.0.0.1", False, 0)
    assert {state.next_endpoint("10.0.0.1", False, t) for t in range(1, 30, 5)} == {first}   # refreshed each use
    assert state.next_endpoint("10.0.0.1", False, 100) != first or len(state.endpoints) == 1
    sticky = state.next_endpoint("10.0.0.2", False, 200)
    assert state.next_endpoint("10.0.0.2", True, 201) != sticky        # sessionAffinityReset


def test_affinity_to_a_removed_endpoint_is_dropped():
    state = BalancerState()
    state.update(["a:1", "b:1"], 60)
    chosen = state.next_endpoint("10.0.0.1", False, 0)
    state.update([e for e in ("a:1", "b:1") if e != chosen], 60)
    assert state.next_endpoint("10.0.0.1", False, 1) != chosen


def test_no_endpoints_no_choice():
    assert BalancerState().next_endpoint("10.0.0.1", False, 0) is None


# -- the process --------------------------------------------------------------------------------

class Backend:
    """A TCP server on loopback answering its name (and echoing what follows it), and a UDP echo."""

    def __init__(self, name: str):
        self.name = name
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(64)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.sources: set = set()
        threading.Thread(target=self._serve_tcp, daemon=True).start()
        threading.Thread(target=self._serve_udp, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve_tcp(self):
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn):
        with conn:
            conn.sendall(self.name.encode() + b"\n")
            while True:
                data = conn.recv(1 << 20)
                if not data:
                    conn.shutdown(socket.SHUT_WR)
                    return
                conn.sendall(data)

    def _serve_udp(self):
        while True:
            try:
                data, addr = self.udp.recvfrom(65535)
            except OSError:
                return
            self.sources.add(addr)
            self.udp.sendto(self.name.encode() + b":" + data, addr)

    def close(self):
        self.tcp.close()
        self.udp.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def proxy(tmp_path: Path):
    control = tmp_path / "control.sock"
    proc = subprocess.Popen([sys.executable, "-m", "testbed.workloads.userspace_proxy", "--control", str(control),
                             "--udp-timeout", "0.3"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:   # the socket file appears at bind(), a moment before listen()
            sock = socket.socket(socket.AF_UNIX)
            try:
                sock.connect(str(control))
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        f = sock.makefile("rwb")

        def request(message):
            f.write((json.dumps(message) + "\n").encode())
            f.flush()
            return json.loads(f.readline())
        yield request
        request({"op": "exit"})
        proc.wait(timeout=5)
        assert not control.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def backends():
    made = [Backend(n) for n in ("b0", "b1", "b2")]
    yield made
    for b in made:
        b.close()


def listener(lid, port, endpoints, protocol="TCP", affinity=None, **extra):
    return {"id": lid, "protocol": protocol, "port": port, "bind": "127.0.0.1", "claim": [], "endpoints": endpoints,
            "affinity": affinity, "transparent": False, **extra}


def ask(port: int, payload: bytes = b"") -> tuple[str, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        f = s.makefile("rb")
        name = f.readline().decode().strip()
        if payload:
            s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        rest = f.read()
        return name, rest


def test_tcp_round_robin_and_a_listener_per_service(proxy, backends):
    port, other = free_port(), free_port()
    reply = proxy({"op": "sync", "full": True, "listeners": [
        listener("default/a/TCP", port, [b.address for b in backends]),
        listener("default/b/TCP", other, [backends[0].address])]})
    assert reply == {"ok": True, "errors": {}, "listeners": 2}
    names = [ask(port)[0] for _ in range(9)]
    assert sorted(names[:3]) == ["b0", "b1", "b2"] and names == names[:3] * 3
    assert {ask(other)[0] for _ in range(3)} == {"b0"}


def test_bytes_are_copied_both_ways_with_half_close(proxy, backends):
    port = free_port()
    proxy({"op": "sync", "full": True, "listeners": [listener("x", port, [backends[0].address])]})
    payload = bytes(range(256)) * 40000   # 10 MB
    name, echoed = ask(port, payload)
    assert name == "b0" and echoed == payload


def test_affinity_keeps_a_client_and_retry_skips_a_dead_endpoint(proxy, backends):
    port = free_port()
    proxy({"op": "sync", "full": True, "listeners": [listener("s", port, [b.address for b in backends], affinity=60)]})
    assert len({ask(port)[0] for _ in range(6)}) == 1
    dead = f"127.0.0.1:{free_port()}"     # nothing listens: connect is refused
    retry = free_port()
    proxy({"op": "sync", "full": False, "listeners": [listener("r", retry, [dead, backends[1].address])]})
    assert {ask(retry)[0] for _ in range(6)} == {"b1"}
    assert proxy({"op": "stats"})["dial_failures"] >= 3


def test_endpoint_updates_keep_the_socket_and_full_sync_closes_the_rest(proxy, backends):
    port, gone = free_port(), free_port()
    proxy({"op": "sync", "full": True, "listeners": [listener("a", port, [backends[0].address]),
                                                     listener("g", gone, [backends[0].address])]})
    assert ask(port)[0] == "b0"
    reply = proxy({"op": "sync", "full": True, "listeners": [listener("a", port, [backends[2].address])]})
    assert reply["listeners"] == 1
    assert ask(port)[0] == "b2"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", gone), timeout=2)


def test_no_endpoints_closes_the_connection(proxy):
    port = free_port()
    proxy({"op": "sync", "full": True, "listeners": [listener("e", port, [])]})
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(5)
        assert s.recv(10) == b""


def test_a_port_in_use_is_reported(proxy, backends):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        reply = proxy({"op": "sync", "full": False, "listeners": [listener("busy", port, [backends[0].address])]})
    assert not reply["ok"] and "busy" in reply["errors"]


def test_udp_one_backend_socket_per_client_with_idle_timeout(proxy, backends):
    port = free_port()
    proxy({"op": "sync", "full": True, "listeners": [
        listener("dns", port, [b.address for b in backends[:2]], protocol="UDP")]})
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    answers = []
    for c in clients:
        c.settimeout(3)
        for i in range(3):
            c.sendto(f"q{i}".encode(), ("127.0.0.1", port))
            answers.append((c.getsockname(), c.recvfrom(100)[0].decode()))
    by_client: dict = {}
    for client, answer in answers:
        by_client.setdefault(client, set()).add(answer.split(":")[0])
    assert all(len(v) == 1 for v in by_client.values())      # one backend per client address
    assert {n for v in by_client.values() for n in v} == {"b0", "b1"}   # round robin over the clients
    assert proxy({"op": "stats"})["udp_clients"] == 2
    time.sleep(1.5)
    assert proxy({"op": "stats"})["udp_clients"] == 0        # idle backend sockets closed
    for c in clients:
        c.close()


def test_data_and_eof_sent_before_the_backend_connects_are_delivered(proxy, backends):
    """A client that writes and half-closes at once (HTTP/1.0 style) must not lose its request."""
    port = free_port()
    proxy({"op": "sync", "full": True, "listeners": [listener("early", port, [backends[1].address])]})
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"hello")
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        assert data == b"b1\nhello"
