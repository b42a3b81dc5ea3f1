"""What several experiments share: a cluster per mode label, what ran, and the pod-side workloads.

Mode labels are the backend registry's variants (`iptables` = iptables-nft, `iptables-legacy`,
`nftables`, `sdn`, ...: testbed/proxy/backend.py); nothing here names a mode. Workloads run inside
pods as `python3 -I -S <script>` (standard library only), started through the pod's shell, and print
one JSON line.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from ..cluster import Cluster
from ..errors import TestbedError
from ..proxy.backend import variant, variants

WORKLOADS = Path(__file__).resolve().parent / "workloads"
TESTBED_WORKLOADS = Path(__file__).resolve().parent.parent / "workloads"
CONN_RATE = TESTBED_WORKLOADS / "conn_rate.py"
KEEPALIVE = TESTBED_WORKLOADS / "keepalive.py"


# ------------------------------------------------------------------------------------------------
# Modes and switches


def mode_labels() -> list[str]:
    """Every experiment mode label the registry knows (for grids)."""
    return list(variants())


def switch_for(mode: str, requested: str | None = None, preferred: str = "ovs") -> str:
    """The switch a mode runs on: the one asked for; else Open vSwitch for modes that program it
    over OpenFlow; else the experiment's preference, where it matters: Linux bridges when the
    experiment wants a kernel datapath and this kernel has no openvswitch module (OVS would run its
    userspace datapath, which adds ~0.7 ms to every connect and hides what kernel modes differ in)."""
    if requested:
        return requested
    backend, _ = variant(mode)
    if backend.needs_openflow or preferred != "linuxbridge":
        return "ovs"
    from ..net.ovs import kernel_datapath_available
    return "ovs" if kernel_datapath_available() else "linuxbridge"


def not_runnable_reason(mode: str, requested_switch: str | None = None, preferred: str = "ovs") -> str | None:
    """Why a mode label cannot run on this machine (None: it can): never run something else instead."""
    backend, _ = variant(mode)
    reason = backend.unavailable()
    if reason:
        return reason
    if backend.needs_openflow and switch_for(mode, requested_switch, preferred) != "ovs":
        return f"{mode} mode programs Open vSwitch over OpenFlow: it needs --switch ovs, not {requested_switch}"
    return None


def cluster_for(mode: str, **options) -> Cluster:
    """An experiment's mode label -> a Cluster (not started)."""
    backend, backend_options = variant(mode)
    return Cluster(topo=options.pop("topo", "default"), proxy_mode=backend.mode, seed=options.pop("seed", 1),
                   **backend_options, **options)


def algorithm_annotations(mode: str, algorithm: str) -> dict:
    """The Service annotation for an algorithm. A mode that does not offer it (iptables balances
    only at random, as kube-proxy) is an error, not a silently wrong label."""
    backend, _ = variant(mode)
    if algorithm not in backend.algorithms:
        raise TestbedError(f"{mode} mode offers {', '.join(backend.algorithms)}; not the {algorithm!r} algorithm")
    if algorithm == backend.algorithms[0]:
        return {}
    return {"testbed.io/lb-algorithm": algorithm}


def algorithms_of(mode: str) -> tuple[str, ...]:
    return variant(mode)[0].algorithms


def data_plane_label(cluster: Cluster, mode: str | None = None) -> dict:
    """The columns saying exactly what ran: mode label, backend (mode and backend as the data plane
    reports itself, e.g. "iptables (nft)") and datapath (netdev, system or linuxbridge)."""
    emulation = cluster.emulation
    backend = emulation.dataplane.label if emulation and emulation.dataplane else cluster.backend.label(cluster.proxy_options)
    datapath = emulation.datapath.type if emulation and emulation.datapath else ""
    return {"mode": mode or cluster.proxy_mode, "backend": backend, "datapath": datapath}


# ------------------------------------------------------------------------------------------------
# Objects


def deployment(name: str, replicas: int, image: str = "nginx", port: int = 80, node: str | None = None,
               annotations: dict | None = None, service_spec: dict | None = None) -> list[dict]:
    spec = {"containers": [{"name": name, "image": image, "ports": [{"containerPort": port}]}]}
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
             "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                      "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}},
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": name, "annotations": annotations or {}},
             "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": port}],
                      **(service_spec or {})}}]


def probe_pod(name: str = "probe", node: str | None = None) -> dict:
    """A client pod without Service links: at thousands of Services a pod with them has an
    environment too large to exec (Kubernetes fails it at start)."""
    spec = {"enableServiceLinks": False,
            "containers": [{"name": name, "image": "busybox", "command": ["sleep", "infinity"]}]}
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def selectorless_services(count: int, offset: int = 0, namespace: str = "default") -> list[dict]:
    """Selector-less Services with two endpoints each (addresses in node2's and node3's pod CIDRs;
    no processes behind them: this measures the rules, not the pods). Outside `default`, the
    Namespace object comes first, and pods in `default` do not get their environment variables."""
    objects = [] if namespace == "default" else [{"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": namespace}}]
    for i in range(offset, offset + count):
        name = f"scale-{i}"
        meta = {"name": name, "namespace": namespace}
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": meta,
                        "spec": {"ports": [{"port": 80, "targetPort": 8080}]}})
        objects.append({"apiVersion": "v1", "kind": "Endpoints", "metadata": dict(meta),
                        "subsets": [{"addresses": [{"ip": f"10.244.1.{2 + i % 250}"}, {"ip": f"10.244.2.{2 + i % 250}"}],
                                     "ports": [{"port": 8080}]}]})
    return objects


# ------------------------------------------------------------------------------------------------
# Pod-side workloads


def run_workload(pod, script: Path, *args, background_to: Path | None = None) -> dict | None:
    """Run a workload script in a pod; its last output line as JSON (None when backgrounded)."""
    command = " ".join(shlex.quote(str(a)) for a in (sys.executable, "-I", "-S", str(script), *args))
    if background_to is not None:
        pod.cmd(f"{command} > {shlex.quote(str(background_to))} 2>&1 &")
        return None
    output = pod.cmd(command).strip()
    try:
        return json.loads(output.splitlines()[-1])
    except (IndexError, ValueError):
        raise TestbedError(f"workload {script.name} in {pod.name}: unexpected output {output[-300:]!r}") from None


def connection_rate(pod, host: str, port: int, seconds: float, concurrency: int = 4) -> dict:
    return run_workload(pod, CONN_RATE, host, port, seconds, concurrency)


def wrk(pod, url: str, seconds: float, connections: int = 8, threads: int = 1, close: bool = True,
        header: str | None = None) -> dict:
    """wrk from a pod: requests per second, latency percentiles (µs) and errors. With `close`,
    every request opens a new TCP connection (`Connection: close`), which is where the Service
    data plane's per-connection cost shows."""
    headers = (["Connection: close"] if close else []) + ([header] if header else [])
    flags = "".join(f"-H {shlex.quote(h)} " for h in headers)
    output = pod.cmd(f"wrk -t{threads} -c{connections} -d{seconds}s --latency {flags}{shlex.quote(url)} 2>&1")
    return parse_wrk(output)


_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def _duration_us(text: str) -> float:
    for suffix in ("us", "ms", "s", "m"):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * _UNITS_US[suffix]
    return float(text)


def parse_wrk(output: str) -> dict:
    """wrk's text report -> numbers (pure)."""
    result = {"requests": 0, "seconds": 0.0, "requests_per_second": 0.0, "errors": 0, "latency_us": {}}
    lines = output.splitlines()
    for i, line in enumerate(lines):
        words = line.split()
        if not words:
            continue
        if "requests in" in line and words[0].isdigit():
            result["requests"] = int(words[0])
            result["seconds"] = _duration_us(words[3].rstrip(",")) / 1e6
        elif words[0] == "Requests/sec:":
            result["requests_per_second"] = float(words[1])
        elif words[0] == "Socket" and words[1] == "errors:":
            numbers = [int(w.rstrip(",")) for w in words if w.rstrip(",").isdigit()]
            result["errors"] += sum(numbers)
        elif words[0] == "Non-2xx":
            result["errors"] += int(words[-1])
        elif line.strip() == "Latency Distribution":
            for follow in lines[i + 1:i + 5]:
                parts = follow.split()
                if len(parts) == 2 and parts[0].endswith("%"):
                    result["latency_us"][parts[0]] = _duration_us(parts[1])
    if "requests in" not in output:
        raise TestbedError(f"wrk failed: {output.strip()[-300:]!r}")
    return result


def iperf3(pod, address: str, seconds: float, port: int = 5201) -> dict:
    output = pod.cmd(f"iperf3 -c {address} -p {port} -t {seconds} -J")
    try:
        result = json.loads(output[output.index("{"):])
    except ValueError:
        raise TestbedError(f"iperf3 to {address}: {output.strip()[-300:]!r}") from None
    if "error" in result:
        raise TestbedError(f"iperf3 to {address}: {result['error']}")
    end = result["end"]
    return {"gbps": end["sum_received"]["bits_per_second"] / 1e9, "retransmits": end["sum_sent"].get("retransmits", 0)}


def cpu_jiffies() -> dict[str, int]:
    """The machine's CPU time by kind (/proc/stat's first line, in USER_HZ ticks). Softirq time is
    where netfilter and the bridges spend theirs; it cannot be told apart per network namespace (the
    namespaces share the CPUs), so this is machine-wide, other processes included."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {name: int(value) for name, value in zip(names, fields)}
