"""Sockets inside an emulated host's network namespace, without starting a process.

Network namespaces are per thread on Linux: a short-lived thread enters the namespace with setns(2),
creates the socket and ends; the socket stays in that namespace and can be used from any thread. This
is how the kubelet probes pods and how probes and experiments send traffic cheaply (starting `curl` or
`dig` through nsenter costs milliseconds, which would swamp what we measure).
"""
from __future__ import annotations

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000


def netns_file(pid: int | None = None, netns_path: str | None = None) -> str:
    if pid is not None:
        return f"/proc/{pid}/ns/net"
    if netns_path is not None:
        return netns_path
    raise ValueError("need the pid of a process in the namespace or a namespace file")


def in_netns(netns_path: str, function, *args):
    """Run `function(*args)` in a short-lived thread that first enters the network namespace at
    `netns_path`; its result (or its exception, raised here in the caller's thread)."""
    outcome: dict = {}

    def body() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            with open(netns_path) as netns:
                if libc.setns(netns.fileno(), CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns {netns_path}: {os.strerror(errno)}")
            outcome["value"] = function(*args)
        except BaseException as error:   # handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=body, name="netns")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def socket_in_netns(netns_path: str, kind: int = socket.SOCK_DGRAM) -> socket.socket:
    """An IPv4 socket living in the network namespace at `netns_path`."""
    return in_netns(netns_path, socket.socket, socket.AF_INET, kind)
