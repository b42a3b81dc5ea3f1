"""How an image becomes a process: the emulation does not pull images, it maps them to workloads.

| image                                  | runs                                                          |
|----------------------------------------|---------------------------------------------------------------|
| `command`/`args` given                 | exactly that (args appended to command; args alone run as the command) |
| `*coredns*`                            | the cluster DNS server (Unbound), managed by the DNS component |
| `*iperf*`                              | `iperf3 -s` on each TCP containerPort (5201 when none)         |
| `busybox`, `alpine`, `curl`, `*client*`| nothing but a sleeping process (a client pod)                  |
| anything else (nginx, ikubernetes/myapp, ...) | the echo server on each containerPort (80 when none)   |
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ECHO_SERVER = Path(__file__).resolve().parent.parent / "workloads" / "echo_server.py"
CLIENT_IMAGES = ("busybox", "alpine", "curl", "client", "debian", "ubuntu", "netshoot")


@dataclass(frozen=True)
class Workload:
    kind: str                 # "echo", "iperf", "dns", "sleep", "command"
    argv: tuple[str, ...]     # empty for "dns" (started by the DNS component)
    tcp_ports: tuple[int, ...] = ()
    udp_ports: tuple[int, ...] = ()


def _image_name(image: str) -> str:
    """`registry.k8s.io/coredns/coredns:v1.11.1` -> `coredns`."""
    return image.rsplit("/", 1)[-1].split(":")[0].split("@")[0].lower()


def workload_for(pod: dict, container: dict) -> Workload:
    ports = container.get("ports") or []
    tcp = tuple(sorted({p["containerPort"] for p in ports if p.get("protocol", "TCP") == "TCP"}))
    udp = tuple(sorted({p["containerPort"] for p in ports if p.get("protocol") == "UDP"}))
    command, args = container.get("command") or [], container.get("args") or []
    image = _image_name(container.get("image", ""))
    if command or (args and image in CLIENT_IMAGES):
        return Workload("command", tuple(command + args), tcp, udp)
    if "coredns" in image:
        return Workload("dns", (), tcp, udp)
    if "iperf" in image:
        ports = tcp or (5201,)
        return Workload("iperf", ("iperf3", "-s", "-p", str(ports[0])), ports, ())
    if image in CLIENT_IMAGES or "client" in image:
        return Workload("sleep", ("sleep", "infinity"), (), ())
    argv = [sys.executable if Path(sys.executable).exists() else "python3", "-I", "-S", str(ECHO_SERVER),
            "--pod", pod["metadata"]["name"], "--namespace", pod["metadata"].get("namespace", "default")]
    tcp_ports = tcp or ((80,) if not udp else ())
    argv += [a for p in tcp_ports for a in ("--tcp", str(p))]
    argv += [a for p in udp for a in ("--udp", str(p))]
    return Workload("echo", tuple(argv), tcp_ports, udp)
