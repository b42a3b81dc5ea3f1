"""Packet sockets inside an emulated host's network namespace: send frames, capture both directions.

Network namespaces are per thread on Linux: a short-lived thread enters the namespace with setns(2),
creates the socket and ends; the socket stays in that namespace (as testbed/net/netns.py does for
the kubelet's probes). Here the sockets are AF_PACKET ones bound to one interface, so a capture sees
what leaves and what arrives on it, and scapy only builds and parses bytes: its own interface and
route tables describe the host's root namespace, never the emulated ones, so they are not used.
Nothing is sent anywhere but the emulation's own interfaces.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from ..net.netns import in_netns

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def netns_of(host) -> str:
    """The network namespace file of a Mininet host (node, pod or the external host)."""
    return f"/proc/{host.pid}/ns/net"


def packet_socket(netns_path: str, interface: str = "eth0") -> socket.socket:
    def make() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind((interface, ETH_P_ALL))
        return sock
    return in_netns(netns_path, make)


@dataclass
class Frame:
    at: float           # time.monotonic() when read
    outgoing: bool      # left the interface (else arrived)
    data: bytes


@dataclass
class Tap:
    """A capture on one interface of one namespace, read by a background thread until stop()."""
    name: str                     # where: "client eth0", "pod web-1 eth0", ...
    netns_path: str
    interface: str = "eth0"
    frames: list[Frame] = field(default_factory=list)

    def __post_init__(self):
        self._socket = packet_socket(self.netns_path, self.interface)
        self._socket.settimeout(0.05)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"tap {self.name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stopping.is_set():
            try:
                data, address = self._socket.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.frames.append(Frame(time.monotonic(), address[2] == PACKET_OUTGOING, data))

    def send(self, frame: bytes) -> float:
        """Send a whole Ethernet frame out of the interface; the monotonic time it was sent."""
        sent = time.monotonic()
        self._socket.send(frame)
        return sent

    def stop(self) -> list[Frame]:
        self._stopping.set()
        self._thread.join(timeout=2)
        self._socket.close()
        return self.frames

    def __enter__(self) -> "Tap":
        return self

    def __exit__(self, *exc) -> None:
        if not self._stopping.is_set():
            self.stop()
