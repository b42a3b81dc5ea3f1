"""Readiness and liveness probes, run the way the kubelet runs them: from the node's network
namespace against the pod's IP (httpGet, tcpSocket), or inside the pod (exec)."""
from __future__ import annotations

import http.client
import socket
import subprocess
from dataclasses import dataclass

from ..net.netns import socket_in_netns


@dataclass(frozen=True)
class ProbeResult:
    success: bool
    message: str


def resolve_port(port, container: dict) -> int | None:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return declared.get("containerPort")
    return None


def tcp_check(netns: str, ip: str, port: int, timeout: float) -> ProbeResult:
    try:
        with socket_in_netns(netns, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect((ip, port))
        return ProbeResult(True, "")
    except OSError as err:
        return ProbeResult(False, f"dial tcp {ip}:{port}: {err.strerror or err}")


def http_check(netns: str, ip: str, port: int, path: str, timeout: float, headers: list[dict] | None = None) -> ProbeResult:
    try:
        sock = socket_in_netns(netns, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect((ip, port))
        connection = http.client.HTTPConnection(ip, port, timeout=timeout)
        connection.sock = sock
        extra = {h["name"]: h["value"] for h in headers or []}
        connection.request("GET", path or "/", headers={"User-Agent": "kube-probe/1.31", **extra})
        status = connection.getresponse().status
        connection.close()
    except (OSError, http.client.HTTPException) as err:
        return ProbeResult(False, f'Get "http://{ip}:{port}{path}": {err}')
    if 200 <= status < 400:
        return ProbeResult(True, "")
    return ProbeResult(False, f"HTTP probe failed with statuscode: {status}")


def run_probe(probe: dict, container: dict, node_netns: str, pod_ip: str, pod_pid: int | None) -> ProbeResult:
    timeout = float(probe.get("timeoutSeconds", 1))
    if probe.get("tcpSocket") is not None:
        port = resolve_port(probe["tcpSocket"].get("port"), container)
        if port is None:
            return ProbeResult(False, f"unknown port {probe['tcpSocket'].get('port')!r}")
        return tcp_check(node_netns, probe["tcpSocket"].get("host") or pod_ip, port, timeout)
    if probe.get("httpGet") is not None:
        action = probe["httpGet"]
        port = resolve_port(action.get("port"), container)
        if port is None:
            return ProbeResult(False, f"unknown port {action.get('port')!r}")
        return http_check(node_netns, action.get("host") or pod_ip, port, action.get("path", "/"), timeout,
                          action.get("httpHeaders"))
    if probe.get("exec") is not None:
        command = probe["exec"].get("command") or []
        if pod_pid is None:
            return ProbeResult(False, "pod not running")
        try:
            proc = subprocess.run(["nsenter", "-t", str(pod_pid), "-n", "-m", "-u", "--", *command],
                                  capture_output=True, timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            return ProbeResult(False, "command timed out")
        except OSError as err:
            return ProbeResult(False, str(err))
        return ProbeResult(proc.returncode == 0, proc.stdout.decode(errors="replace")[-200:])
    return ProbeResult(False, "probe has no handler")


def udp_ports_bound(pid: int) -> set[int]:
    """Local ports of the UDP sockets in the network namespace of process `pid`
    (/proc/PID/net/udp lists that namespace's sockets)."""
    try:
        lines = open(f"/proc/{pid}/net/udp").read().splitlines()[1:]
    except OSError:
        return set()
    ports = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 1 and ":" in fields[1]:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
