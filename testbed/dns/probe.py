"""DNS queries sent from inside an emulated host's network namespace, with dnspython.

Starting `dig` or a Python child per query through nsenter costs milliseconds to hundreds of
milliseconds, which would swamp what we measure (a DNS answer takes well under a millisecond).
Network namespaces are per thread on Linux, so a short-lived thread enters the namespace
(setns(2)), creates the socket and ends; the socket stays in that namespace, and the query runs
in the calling thread like any other dnspython query.
"""
from __future__ import annotations

import socket
import time

import dns.message
import dns.name
import dns.query

from testbed.net.netns import netns_file as _netns_file, socket_in_netns
from testbed.net.runner import NamespaceRunner


def netns_file(runner: NamespaceRunner) -> str:
    """The network namespace file a runner's commands run in."""
    return _netns_file(runner.pid, runner.netns_path)


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
