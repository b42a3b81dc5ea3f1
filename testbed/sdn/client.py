"""The testbed's side of the SDN controller: start/stop its process and talk to its control socket.

    with SdnControllerProcess(ofp_port=6653, socket_path="/run/testbed/sdn.sock") as controller:
        client = controller.client()
        client.set_state(topology, ports)          # answered once connected bridges are programmed
        client.wait_programmed(timeout=30)         # ... and every bridge has connected and synced
        client.upsert_service("default", "web", ports_of_web)

Every change answers with an Ack after the OpenFlow barrier on every connected bridge, so a caller
that got the Ack can send traffic and expect the new behaviour.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from testbed.proxy.model import ServicePort
from testbed.sdn import messages
from testbed.sdn.wiring import Pod, Wiring


class SdnError(RuntimeError):
    pass


@dataclass(frozen=True)
class Ack:
    """The controller's answer to a change: per node what went to its bridge."""
    programmed: Mapping[str, dict] = field(default_factory=dict)
    pending: tuple[str, ...] = ()        # nodes whose bridge is not connected yet
    seconds: float = 0.0                 # controller-side time from request to last barrier reply
    compute_seconds: float = 0.0

    @property
    def flows_added(self) -> int:
        return sum(s.get("flows_added", 0) for s in self.programmed.values())


class SdnClient:
    """JSON-lines client of the controller's unix socket; one request at a time per client."""

    def __init__(self, socket_path: str | os.PathLike, timeout: float = 300.0):
        self.socket_path = str(socket_path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._reader = None
        self._ids = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._sock is not None:
            self._reader.close()
            self._sock.close()
            self._sock = self._reader = None

    def __enter__(self) -> "SdnClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, op: str, timeout: float | None = None, **fields) -> dict:
        """Send one request and return the answer; raise SdnError when it says ok: false."""
        with self._lock:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(self.socket_path)
                except OSError:
                    sock.close()
                    raise
                self._sock, self._reader = sock, sock.makefile("rb")
            self._sock.settimeout(timeout or self.timeout)
            self._ids += 1
            self._sock.sendall(messages.encode(messages.request(op, self._ids, **fields)))
            line = self._reader.readline()
            if not line:
                self.close()
                raise SdnError("controller closed the connection")
            answer = messages.decode(line)
        if answer.get("id") != self._ids:
            raise SdnError(f"answer to request {answer.get('id')} while waiting for {self._ids}")
        if not answer.get("ok"):
            raise SdnError(answer.get("error", "request failed"))
        return answer

    # --- changes ---------------------------------------------------------------------------------
    @staticmethod
    def _ack(answer: dict) -> Ack:
        return Ack(programmed=answer.get("programmed", {}), pending=tuple(answer.get("pending", ())),
                   seconds=answer.get("seconds", 0.0), compute_seconds=answer.get("compute_seconds", 0.0))

    def set_state(self, topology: Wiring, ports: Iterable[ServicePort]) -> Ack:
        return self._ack(self.call("set_state", topology=topology.to_json(),
                                   services=[messages.port_to_json(p) for p in ports]))

    def upsert_service(self, namespace: str, name: str, ports: Sequence[ServicePort],
                       announcements: Mapping[str, str] | None = None) -> Ack:
        """Replace all ports of one Service (an empty list deletes it); `announcements` names the
        node that answers ARP for each of its LoadBalancer IPs."""
        fields = {"namespace": namespace, "name": name, "ports": [messages.port_to_json(p) for p in ports]}
        if announcements is not None:
            fields["announcements"] = dict(announcements)
        return self._ack(self.call("upsert_service", **fields))

    def delete_service(self, namespace: str, name: str) -> Ack:
        return self._ack(self.call("delete_service", namespace=namespace, name=name))

    def add_pod(self, pod: Pod) -> Ack:
        return self._ack(self.call("add_pod", pod=messages.pod_to_json(pod)))

    def remove_pod(self, namespace: str, name: str) -> Ack:
        return self._ack(self.call("remove_pod", namespace=namespace, name=name))

    # --- queries ---------------------------------------------------------------------------------
    def ping(self) -> dict:
        return self.call("ping", timeout=5)

    def status(self) -> dict:
        """{node: {bridge, dpid, connected, synced, flows, groups, last_resync, connected_at, synced_at,
        connections}}; flows/groups are None for a bridge that never connected."""
        return self.call("status")["bridges"]

    def wait_programmed(self, nodes: Sequence[str] | None = None, timeout: float = 30.0,
                        after: float | None = None) -> dict:
        """Wait until every bridge (or the named ones) is connected and holds the desired state;
        with `after` (epoch seconds, e.g. when ovs-vswitchd was restarted), by a resync that
        finished after that moment. Returns status(); raises SdnError on timeout."""
        answer = self.call("wait_programmed", timeout=timeout + 5, nodes=list(nodes) if nodes else None,
                           seconds=timeout, after=after)
        return answer["bridges"]

    def connections(self, node: str) -> dict[int, dict[str, int]]:
        """Active reactive connections per Service instance id and endpoint on one node."""
        return {int(k): v for k, v in self.call("connections", node=node)["connections"].items()}


class SdnControllerProcess:
    """The controller as a child process: start, wait until ready, stop with SIGTERM."""

    def __init__(self, ofp_port: int = 6653, socket_path: str | os.PathLike = "/run/testbed/sdn.sock",
                 log_path: str | os.PathLike | None = None, python: str = sys.executable, verbose: bool = False,
                 env: Mapping[str, str] | None = None):
        self.ofp_port = ofp_port
        self.socket_path = Path(socket_path)
        self.log_path = Path(log_path) if log_path else self.socket_path.with_suffix(".log")
        self.python = python
        self.verbose = verbose
        self.env = dict(env or {})   # e.g. the emulation's TESTBED_CLUSTER marker, for `testbed clean`
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "SdnControllerProcess":
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        args = [self.python, "-m", "testbed.sdn.controller", "--ofp-port", str(self.ofp_port),
                "--socket", str(self.socket_path)] + (["--verbose"] if self.verbose else [])
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            cwd=Path(__file__).resolve().parents[2], start_new_session=True,
                                            env={**os.environ, **self.env})
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise SdnError(f"controller exited with {self.process.returncode}; see {self.log_path}")
            try:
                with SdnClient(self.socket_path, timeout=2) as client:
                    if client.ping().get("ofp_listening"):
                        return self
            except (OSError, SdnError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SdnError(f"controller not ready within {timeout}s; see {self.log_path}")
            time.sleep(0.05)

    def client(self, timeout: float = 300.0) -> SdnClient:
        return SdnClient(self.socket_path, timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait; SIGKILL if it does not go. Returns the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        code, self.process = self.process.returncode, None
        return code

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> "SdnControllerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
