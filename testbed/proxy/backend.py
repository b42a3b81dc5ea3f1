"""The data-plane seam: what every Service data-plane backend declares, and the one registry.

kube-proxy has one interface for all its modes (pkg/proxy/types.go `Provider`: `Sync()`,
`SyncLoop()`, plus the change handlers) and one place that picks the mode (cmd/kube-proxy's
`newProxyServer`). The testbed does the same:

- a per-node **proxier** (`Proxier`): `sync(ports, changed) -> SyncResult` brings one node's
  kernel (or process) state to the desired one, `cleanup()` removes everything of its mode from the
  node (kube-proxy's `--cleanup`; used when a cluster switches modes), `stop()` ends what it runs;
- a **Backend** record: the mode's name, a pure `render(ports, node, layout) -> str` (what
  `testbed render FORMAT` prints, no root), the proxier factory, the tools it needs, the node
  set-up it requires, the load-balancing algorithms it offers, the options it takes and
  `unavailable() -> reason | None` (IPVS on a kernel without it);
- **one registry**: each module in `testbed/backends/` registers its record when imported, and
  `all_backends()` imports them all. The CLI's choices, `Cluster(proxy_mode=...)`, experiment grids,
  the integration tests' mode list and the README's mode table come from here; nothing else names
  a mode.

A backend whose proxiers are per-node kube-proxies gets the generic `KernelDataPlane`
(proxy/kernel.py): one change tracker, every node synced concurrently. A backend that works
differently (the SDN controller programs every bridge itself) supplies `make_dataplane`.

Adding a backend, in short: write `testbed/backends/<mode>.py` with a render function and a
proxier class, end it with `register(Backend(mode=..., render=..., make_proxier=...))`, and add its
unit tests; it then appears in `testbed up --proxy-mode`, `testbed render`, the experiment grids and
the live suite.
"""
from __future__ import annotations

import importlib
import pkgutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from ..errors import TestbedError
from .model import NodeInfo, ServicePort

if TYPE_CHECKING:
    from ..net.runner import NamespaceRunner

ServiceKey = tuple[str, str]   # (namespace, Service name): what a change tracker reports


# ---------------------------------------------------------------------------------------------
# Per-node proxiers


@dataclass(frozen=True)
class SyncResult:
    """What one sync of one node did (kube-proxy reports the same as metrics)."""
    seconds_render: float               # computing the desired state and its text (pure)
    seconds_apply: float                # the kernel / process side (restore, nft -f, netlink, ...)
    rules: int                          # rules, flows or virtual servers on the node after the sync
    changed_services: tuple[str, ...]   # "ns/name" of the Services whose state was (re)written
    full: bool                          # a full sync (everything rewritten) or a partial one
    rules_written: int = 0              # what this sync's transaction wrote (partial syncs: fewer)
    details: Mapping[str, Any] = field(default_factory=dict)   # backend-specific numbers


@runtime_checkable
class Proxier(Protocol):
    """kube-proxy for one node."""

    def sync(self, ports: Sequence[ServicePort], changed: frozenset[ServiceKey] | None) -> SyncResult:
        """Make the node's state match `ports` (every proxied Service port, sorted). `changed` holds
        the Services that changed since the previous call (kube-proxy's UpdateServiceMapResult);
        None means "unknown: assume everything". A proxier does a full sync the first time and after
        a failure whatever `changed` says, as kube-proxy does."""
        ...

    def cleanup(self) -> None:
        """Remove every rule, set, address and process of this mode from the node (also ones an
        earlier proxier left), as `kube-proxy --cleanup` does."""
        ...

    def stop(self) -> None:
        """End what the proxier runs (a userspace proxy's process); kernel state may stay."""
        ...


@dataclass(frozen=True)
class NodeContext:
    """What a per-node proxier may use: its node, a way to run programs in the node's
    namespaces, a directory of its own, the cluster's id (to mark processes for `testbed clean`)
    and the backend's options (declared by the Backend, defaults filled in)."""
    node: NodeInfo
    runner: "NamespaceRunner"
    run_dir: Path
    cluster_id: str
    options: Mapping[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Rendering without root


@dataclass(frozen=True)
class PodPlacement:
    namespace: str
    name: str
    node: str
    ip: str


@dataclass(frozen=True)
class ClusterLayout:
    """What a render needs beyond the Service ports: every node, and where pods run (the SDN
    pipeline delivers to pods by switch port; kernel modes ignore it)."""
    nodes: tuple[NodeInfo, ...]
    pods: tuple[PodPlacement, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def single(cls, node: NodeInfo, options: Mapping[str, str] | None = None) -> "ClusterLayout":
        return cls(nodes=(node,), options=dict(options or {}))


# ---------------------------------------------------------------------------------------------
# What the emulation drives (one per cluster)


@runtime_checkable
class DataPlane(Protocol):
    """The Service data plane of a running emulation (a component, like DNS and the speaker)."""
    name: str                  # for messages: "kube-proxy (iptables)", "sdn-controller"
    label: str                 # for results: which mode and backend really ran
    errors: list[str]

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def synced(self) -> bool: ...
    def activity(self) -> str | None:
        """What it is doing right now ("syncing 3 nodes for 12 s"), None when idle."""
        ...
    def progress(self) -> int: ...
    def busy(self) -> bool: ...
    def rule_count(self) -> int: ...
    def cleanup(self) -> None:
        """Remove this mode's state from every node and bridge (after stop(), for a mode switch)."""
        ...
    def openflow_controller(self): ...       # a Mininet controller for the node bridges, or None
    def pod_added(self, pod: dict, sandbox: dict) -> None: ...
    def pod_removed(self, sandbox: dict) -> None: ...
    def announce(self, old: Mapping[str, str], new: Mapping[str, str]) -> None:
        """LoadBalancer IP -> announcing node changed (MetalLB layer 2)."""
        ...


@dataclass(frozen=True)
class DataPlaneContext:
    """What a data plane gets from the emulation: node access, the API objects (through a change
    tracker it builds), the cluster's address ranges and the backend's resolved options."""
    nodes: Any                 # net.nodes.NodeAccess
    api: Any                   # controlplane.view.ApiView (store + lock)
    service_cidr: str
    cluster_cidr: str
    options: Mapping[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The record


@dataclass(frozen=True)
class BackendOption:
    """An option a backend takes (`Cluster(proxy_mode=..., <name>=...)`)."""
    name: str
    choices: tuple[str, ...]
    default: str
    help: str = ""


def _no_setup(node: NodeInfo, options: Mapping[str, str]) -> list[str]:
    return []


def _always_available() -> str | None:
    return None


@dataclass(frozen=True)
class Backend:
    mode: str                                   # `--proxy-mode` value
    summary: str                                # what it emulates (the README's mode table)
    render: Callable[..., str]                  # render(ports, node, layout) -> str, pure
    render_format: str = ""                     # `testbed render FORMAT` (default: the mode)
    make_proxier: Callable[[NodeContext], Proxier] | None = None
    make_dataplane: Callable[[DataPlaneContext, "Backend"], DataPlane] | None = None
    required_tools: tuple[str, ...] | Callable[[Mapping[str, str]], tuple[str, ...]] = ()
    node_setup: Callable[[NodeInfo, Mapping[str, str]], list[str]] = _no_setup
    node_teardown: Callable[[NodeInfo, Mapping[str, str]], list[str]] = _no_setup   # undoes node_setup
    algorithms: tuple[str, ...] = ("random",)   # testbed.io/lb-algorithm values; the first is the default
    options: tuple[BackendOption, ...] = ()
    variants: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # experiment label -> options
    unavailable: Callable[[], str | None] = _always_available
    describe: Callable[[Mapping[str, str]], str] | None = None   # label for results, given options
    needs_openflow: bool = False                # node bridges are OpenFlow-controlled (sdn)
    # The nodes answer ARP only for addresses on the receiving interface (arp_ignore=1: kube-proxy's
    # strictARP, which MetalLB requires with IPVS because every node binds every LoadBalancer IP).
    # The announcing node then holds a LoadBalancer IP as an address of its node interface instead
    # of a local route (which a node answers ARP for only with arp_ignore=0).
    strict_arp: bool = False
    # A shell command, run in a node's namespace, that shows the node's Service data plane as an
    # operator would look at it ({node} and {bridge} are filled in): for demos and `testbed probe`.
    state_command: str = ""

    def __post_init__(self):
        if self.make_proxier is None and self.make_dataplane is None:
            raise ValueError(f"backend {self.mode!r}: needs make_proxier or make_dataplane")
        if not self.render_format:
            object.__setattr__(self, "render_format", self.mode)

    def tools(self, options: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(self.required_tools(options) if callable(self.required_tools) else self.required_tools)

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, str]:
        """The backend's options with defaults filled in; an unknown name or value is an error."""
        known = {o.name: o for o in self.options}
        for name in given:
            if name not in known:
                raise TestbedError(f"{self.mode} mode has no option {name!r}"
                                   + (f" (it has: {', '.join(known)})" if known else ""))
        resolved = {}
        for name, option in known.items():
            value = str(given.get(name, option.default))
            if option.choices and value not in option.choices:
                raise TestbedError(f"{name}: {value!r}: choose one of {', '.join(option.choices)}")
            resolved[name] = value
        return resolved

    def label(self, options: Mapping[str, str] | None = None) -> str:
        """Which mode and backend ran, for results: "iptables (nft)", "nftables", ..."""
        options = self.resolve_options(options or {})
        return self.describe(options) if self.describe else self.mode

    def all_variants(self) -> dict[str, dict[str, str]]:
        """Experiment labels of this backend -> options (at least the mode itself, defaults)."""
        variants = {label: self.resolve_options(opts) for label, opts in self.variants.items()}
        return variants or {self.mode: self.resolve_options({})}


# ---------------------------------------------------------------------------------------------
# The registry

_REGISTRY: dict[str, Backend] = {}
_discovered = False
_discovery_lock = threading.Lock()
BACKEND_PACKAGE = "testbed.backends"


def register(backend: Backend) -> Backend:
    """Called by each backend module (and by tests with toy backends). Re-registering the same
    mode replaces it (a module imported twice)."""
    if not backend.mode or not backend.mode.replace("-", "").isalnum():
        raise ValueError(f"backend mode {backend.mode!r}: letters, digits and '-' only")
    _REGISTRY[backend.mode] = backend
    return backend


def unregister(mode: str) -> None:
    _REGISTRY.pop(mode, None)


def _discover() -> None:
    global _discovered
    with _discovery_lock:
        if _discovered:
            return
        package = importlib.import_module(BACKEND_PACKAGE)
        for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not module.name.startswith("_"):
                importlib.import_module(f"{BACKEND_PACKAGE}.{module.name}")
        _discovered = True


def all_backends() -> dict[str, Backend]:
    """Every registered backend, by mode, in the order the README's table lists them."""
    _discover()
    return dict(sorted(_REGISTRY.items(), key=lambda item: (MODE_ORDER.get(item[0], len(MODE_ORDER)), item[0])))


# kube-proxy's modes in their historical order, then the SDN mode: only the listing order.
MODE_ORDER = {"userspace": 0, "iptables": 1, "ipvs": 2, "nftables": 3, "sdn": 4}


def modes() -> tuple[str, ...]:
    return tuple(all_backends())


def get_backend(mode: str) -> Backend:
    backends = all_backends()
    if mode not in backends:
        raise TestbedError(f"unknown proxy mode {mode!r}: choose one of {', '.join(backends)}")
    return backends[mode]


def render_formats() -> dict[str, Backend]:
    """`testbed render FORMAT` -> the backend that renders it."""
    return {b.render_format: b for b in all_backends().values()}


def variants() -> dict[str, tuple[Backend, dict[str, str]]]:
    """Experiment mode labels ("iptables", "iptables-legacy", "nftables", ...) -> (backend, options)."""
    return {label: (backend, options) for backend in all_backends().values()
            for label, options in backend.all_variants().items()}


def variant(label: str) -> tuple[Backend, dict[str, str]]:
    table = variants()
    if label not in table:
        raise TestbedError(f"unknown mode {label!r}: choose one of {', '.join(table)}")
    return table[label]
