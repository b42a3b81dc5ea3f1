"""DNS queries sent from inside an emulated host's network namespace, with dnspython.

Starting `dig` or a Python child per query through nsenter costs milliseconds to hundreds of
milliseconds, which would swamp what we measure (a DNS answer takes well under a millisecond).
Network namespaces are per thread on Linux, so a short-lived thread enters the namespace
(setns(2)), creates the socket and ends; the socket stays in that namespace, and the query runs
in the calling thread like any other dnspython query.
"""
from __future__ import annotations

import ctypes
import os
import socket
import threading
import time

import dns.message
import dns.name
import dns.query

from testbed.net.runner import NamespaceRunner

CLONE_NEWNET = 0x40000000


def netns_file(runner: NamespaceRunner) -> str:
    """The network namespace file a runner's commands run in."""
    if runner.pid is not None:
        return f"/proc/{runner.pid}/ns/net"
    if runner.netns_path is not None:
        return runner.netns_path
    raise ValueError("the runner has neither a pid nor a netns path")


def socket_in_netns(netns_path: str, kind: int = socket.SOCK_DGRAM) -> socket.socket:
    """An IPv4 socket living in the network namespace at `netns_path`."""
    made: dict = {}

    def create() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            with open(netns_path) as netns:
                if libc.setns(netns.fileno(), CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns {netns_path}: {os.strerror(errno)}")
            made["socket"] = socket.socket(socket.AF_INET, kind)
        except OSError as error:
            made["error"] = error

    thread = threading.Thread(target=create, name="netns-socket")
    thread.start()
    thread.join()
    if "error" in made:
        raise made["error"]
    return made["socket"]


def dns_query(runner: NamespaceRunner, qname: str | dns.name.Name, rdtype: str, server: str,
              port: int = 53, tcp: bool = False, timeout: float = 2.0) -> tuple[dns.message.Message, float]:
    """Ask `server` from inside the runner's namespace; returns the response and the seconds it took."""
    message = dns.message.make_query(qname, rdtype)
    with socket_in_netns(netns_file(runner), socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM) as sock:
        started = time.perf_counter()
        if tcp:
            sock.settimeout(timeout)
            sock.connect((server, port))
            response = dns.query.tcp(message, server, timeout=timeout, port=port, sock=sock)
        else:
            response = dns.query.udp(message, server, timeout=timeout, port=port, sock=sock)
        return response, time.perf_counter() - started
