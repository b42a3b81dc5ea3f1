"""The Python API: `with Cluster(topo=..., proxy_mode=...) as c:`.

A Cluster is a control plane (always) plus, with `network=True` (the default), an emulated network that
carries real traffic: Mininet namespaces for nodes and pods, Open vSwitch bridges, real workload
processes, the add-ons (cluster DNS, ...) and the chosen Service data plane. With `network=False` it
is the control plane alone (pods are run by the hollow kubelet), which needs no root and starts in
milliseconds.

Proxy modes come from the backend registry (testbed/proxy/backend.py); a backend's options are
given as keywords (`Cluster(proxy_mode="iptables", iptables_backend="legacy")`).
"""
from __future__ import annotations

import ipaddress
import signal
import threading
from pathlib import Path
from typing import Any, Sequence

from .components import resolve_addons
from .controlplane import ClusterConfig, ControlPlane
from .errors import ArgumentError, ManifestError, Problem, TestbedError, in_document_order
from .kinds import KINDS, lookup_kind
from .manifests import from_source_with_problems, parse_objects
from .proxy.backend import get_backend
from .topology import Topology, load_topology

EMULATION_OPTIONS = ("datapath", "switch", "stall_timeout")
CLIENT_POD = "client"


def resolve_kind(kind: str) -> str:
    if not isinstance(kind, str):
        raise ArgumentError(f"a kind is a string such as \"service\", not a {type(kind).__name__}")
    info = KINDS.get(kind) or lookup_kind(kind)
    if info is None:
        raise TestbedError(f'the server doesn\'t have a resource type "{kind}"')
    return info.kind


def _cidr(value: str, flag: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise TestbedError(f"{flag}: invalid CIDR {value!r}: {err}") from None
    if network.version != 4:
        raise TestbedError(f"{flag}: {value}: the emulation is IPv4-only")
    return str(network)


class Cluster:
    def __init__(self, topo: str | Topology = "default", proxy_mode: str = "iptables", *,
                 network: bool = True, seed: int | None = None, cluster_dns: bool = True,
                 addons: Sequence[str] | None = None, service_cidr: str | None = None,
                 **options: Any):
        """`addons`: the add-ons to install (default: all default ones; `cluster_dns=False` leaves
        out the DNS add-on). `service_cidr`: kube-apiserver's --service-cluster-ip-range.
        Other keywords: the backend's options (e.g. iptables_backend) and the emulation's
        (datapath="netdev"|"system", switch="ovs"|"linuxbridge", stall_timeout seconds)."""
        self.backend = get_backend(proxy_mode)
        self.proxy_mode = proxy_mode
        self.topology = topo if isinstance(topo, Topology) else load_topology(topo)
        backend_option_names = {o.name for o in self.backend.options}
        unknown = [k for k in options if k not in backend_option_names and k not in EMULATION_OPTIONS]
        if unknown:
            raise TestbedError(f"Cluster(): unknown option {unknown[0]!r} (the {proxy_mode} mode takes: "
                               f"{', '.join(sorted(backend_option_names)) or 'none'}; the emulation: "
                               f"{', '.join(EMULATION_OPTIONS)})")
        self.proxy_options = self.backend.resolve_options({k: v for k, v in options.items()
                                                           if k in backend_option_names})
        self._emulation_options = {k: v for k, v in options.items() if k in EMULATION_OPTIONS}
        chosen = resolve_addons(addons)
        if not cluster_dns:
            chosen = tuple(a for a in chosen if a.name != "dns")
        self.addons = chosen
        self.network = network
        extra = {"service_cidr": _cidr(service_cidr, "--service-cidr")} if service_cidr else {}
        config = ClusterConfig.for_nodes(list(self.topology.nodes), seed=seed,
                                         cluster_dns=any(a.name == "dns" for a in chosen), **extra)
        self.control_plane = ControlPlane(config, hollow_kubelet=not network, addons=chosen)
        self.emulation = None
        self._previous_sigterm = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "Cluster":
        if self.network and self.emulation is None:
            self._handle_termination()
            from .net.emulation import Emulation
            self.emulation = Emulation(self.control_plane, self.topology, self.proxy_mode,
                                       proxy_options=self.proxy_options, addons=self.addons,
                                       **self._emulation_options)
            try:
                self.emulation.start()
            except BaseException:
                self.emulation.stop()
                self.emulation = None
                raise
        return self

    def stop(self) -> None:
        if self.emulation is not None:
            self.emulation.stop()
            self.emulation = None
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def _handle_termination(self) -> None:
        """A script killed with SIGTERM (the default of `kill`) would die without leaving its `with`
        block, stranding namespaces and processes. Unless the program handles SIGTERM itself, turn it
        into SystemExit so the teardown runs."""
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            def terminate(signum, frame):
                raise SystemExit(128 + signum)
            self._previous_sigterm = signal.signal(signal.SIGTERM, terminate)

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- objects ---------------------------------------------------------------------------
    def apply(self, source: str | Path | dict | list, field_validation: str = "Warn") -> list[str]:
        """Create or update objects from a path, YAML/JSON text, or dicts; all or nothing.

        `field_validation` is the API server's (kubectl's --validate): unknown fields are a
        ManifestWarning ("Warn"), an error ("Strict") or ignored ("Ignore")."""
        documents, problems = from_source_with_problems(source)
        if problems:   # what cannot be read, and every problem of what can
            raise ManifestError(in_document_order(problems + self.control_plane.validate(documents, field_validation)))
        if not documents:
            if isinstance(source, (list, tuple)) and not source:
                return []   # nothing, programmatically (an experiment's 0 Services)
            raise TestbedError("no objects passed to apply")   # kubectl's words for an empty file or text
        lines = self.control_plane.apply(documents, field_validation)
        self._settle()
        return lines

    def validate(self, source, field_validation: str = "Warn") -> list[Problem]:
        """Every problem an apply of `source` would be refused for (unreadable documents included)."""
        documents, problems = from_source_with_problems(source)
        return in_document_order(problems + self.control_plane.validate(documents, field_validation))

    def delete(self, kind: str, name: str, namespace: str = "default") -> str:
        line = self.control_plane.delete(resolve_kind(kind), name, namespace)
        self._settle()
        return line

    def get(self, kind: str, name: str | None = None, namespace: str | None = "default"):
        """Objects as `kubectl get -o json` shows them; a list when no name is given
        (namespace=None: all namespaces)."""
        return self.control_plane.get(resolve_kind(kind), name, namespace)

    def scale(self, kind: str, name: str, replicas: int, namespace: str = "default") -> str:
        line = self.control_plane.scale(resolve_kind(kind), name, replicas, namespace)
        self._settle()
        return line

    def set_image(self, kind: str, name: str, images: dict[str, str], namespace: str = "default",
                  change_cause: str | None = None) -> str:
        line = self.control_plane.set_image(resolve_kind(kind), name, images, namespace, change_cause)
        self._settle()
        return line

    def rollout_history(self, kind: str, name: str, namespace: str = "default") -> list[tuple[int, str]]:
        return self.control_plane.rollout_history(resolve_kind(kind), name, namespace)

    def rollout_undo(self, kind: str, name: str, namespace: str = "default", to_revision: int | None = None) -> str:
        line = self.control_plane.rollout_undo(resolve_kind(kind), name, namespace, to_revision)
        self._settle()
        return line

    def service_ports(self):
        """What kube-proxy sees now: every proxied Service port with its endpoints
        (testbed.proxy.model.ServicePort)."""
        from .proxy.tracker import ports_of
        with self.control_plane.lock:
            return ports_of(self.control_plane.store)

    def _settle(self) -> None:
        """With a network, wait until pods run and every component reflects the change."""
        if self.emulation is not None:
            self.emulation.settle()

    # -- the network -----------------------------------------------------------------------
    def _emulation(self):
        if self.emulation is None:
            raise TestbedError("this cluster has no network (network=False, or not started: use `with Cluster(...)`)")
        return self.emulation

    def nodes(self) -> list:
        return self._emulation().node_hosts()

    def node(self, name: str):
        return self._emulation().node_host(name)

    def pod(self, name: str, namespace: str = "default"):
        return self._emulation().pod_host(namespace, name)

    def client(self):
        """A client pod (`client`, in the default namespace: busybox sleeping, like `kubectl run
        client --image=busybox`), created on first use, with cluster DNS and the Service
        environment variables.

        At thousands of Services those variables no longer fit in a process's environment
        (Kubernetes would fail such a container with "argument list too long"): then the client
        pod is made with `enableServiceLinks: false`, which keeps it usable at every scale; only
        the `kubernetes` Service's variables are then set."""
        emulation = self._emulation()
        if emulation.kubelet.pods.get(("default", CLIENT_POD)) is None:
            if self.control_plane.store.get("Pod", "default", CLIENT_POD) is None:
                from .kubelet.podfiles import fits_exec, service_env
                with self.control_plane.lock:
                    services = self.control_plane.store.list("Service")
                links = fits_exec(service_env(services, "default", True))
                self.control_plane.apply(parse_objects([{
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": CLIENT_POD, "namespace": "default", "labels": {"run": CLIENT_POD}},
                    "spec": {"enableServiceLinks": links,
                             "containers": [{"name": CLIENT_POD, "image": "busybox",
                                             "command": ["sleep", "infinity"]}]}}], "<client>"))
            self._settle()
        return self.pod(CLIENT_POD)

    def external(self):
        """A host outside the cluster, in front of the nodes, without cluster DNS."""
        return self._emulation().external_host()

    def exec(self, pod: str, command: str, namespace: str = "default", container: str | None = None) -> str:
        """`kubectl exec POD -- sh -c COMMAND`: runs in the pod with the container's environment
        (the image's PATH, HOSTNAME, HOME, its env/envFrom, the Service variables) and nothing of
        the host's; returns the output."""
        emulation = self._emulation()
        emulation.pod_runtime(namespace, pod)
        try:
            return emulation.kubelet.exec_command(namespace, pod, command, container)
        except LookupError as err:
            raise TestbedError(f"error: unable to upgrade connection: {err}") from None

    def logs(self, pod: str, namespace: str = "default", container: str | None = None) -> str:
        return self._emulation().pod_logs(namespace, pod, container)

    def set_proxy_mode(self, proxy_mode: str, **options: Any) -> None:
        """Switch the running cluster's Service data plane (pods keep running). The old mode's state
        is removed completely; established connections may break."""
        backend = get_backend(proxy_mode)
        resolved = backend.resolve_options(options)
        if self.emulation is not None:
            self.emulation.switch_proxy_mode(proxy_mode, resolved)
        self.backend, self.proxy_mode, self.proxy_options = backend, proxy_mode, resolved

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until every pod is Ready and every data plane has synced."""
        if self.emulation is not None:
            self.emulation.wait_ready(timeout)
