"""What runs beside the control plane in an emulation, behind one small interface.

An emulation keeps one list of **components**: the Service data plane, the cluster DNS, the
LoadBalancer speaker and the ingress controller. Each one is started after the network is built,
told to stop in reverse order, and asked by `settle()` whether it has caught up (`synced()`), what
it is busy with (`activity()`) and what went wrong (`errors`).

Some components run **managed workloads**: the processes of particular pods (Unbound in the
coredns pods, nginx in the ingress-nginx controller pods). The kubelet creates those pods like any
other (sandbox, IP, /etc files) and, for a container whose image a component claims, hands the
container to the component instead of starting the image's usual workload. This is how the
cluster add-ons are pods a user can `get`, `describe` and `exec` into, as in a real cluster.

**Add-ons** are what a cluster gets at bootstrap besides the built-in objects: their API objects
(Deployments, Services, ConfigMaps in kube-system or ingress-nginx) and, with a network, their
component. `Cluster(addons=...)` chooses them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from .net.runner import NamespaceRunner


@dataclass(frozen=True)
class ManagedContainer:
    """One container of a pod whose process a component runs."""
    namespace: str
    pod: str
    container: str
    spec: Mapping[str, Any]     # the container's spec (image, ports, args, ...)
    node: str
    ip: str                     # the pod's IP
    directory: Path             # the pod's own directory on the host (files bind-mounted inside)
    runner: "NamespaceRunner"   # runs programs in the pod's network and mount namespaces
    cluster_id: str


@runtime_checkable
class ManagedWorkload(Protocol):
    """The processes of the containers a component runs (the component itself implements this
    beside `Component`). `start_container` returns the pid the kubelet supervises: an exit counts
    as a container exit and is restarted by the pod's restartPolicy."""

    def start_container(self, container: ManagedContainer) -> int: ...
    def stop_container(self, pid: int) -> None: ...
    def container_logs(self, pid: int) -> str: ...


@runtime_checkable
class Component(Protocol):
    name: str                   # for messages: "cluster-dns", "lb-speaker", "ingress-nginx"
    errors: list[str]

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def synced(self) -> bool:
        """Caught up with the API objects as they are now."""
        ...
    def activity(self) -> str | None:
        """What it is busy with, for progress messages (None when idle)."""
        ...
    def progress(self) -> int:
        """A counter that grows as it works: settle() tells progress from a stall by it."""
        ...
    def busy(self) -> bool:
        """Working right now (one long step, such as a big sync, is not a stall)."""
        ...


@dataclass(frozen=True)
class ComponentContext:
    """What a component gets: node access and the API (never the whole emulation or control
    plane), and the data plane's announcer for components that move LoadBalancer IPs."""
    nodes: Any                  # net.nodes.NodeAccess
    api: Any                    # controlplane.view.ApiView
    announce: Callable[[Mapping[str, str], Mapping[str, str]], None] | None = None


@dataclass(frozen=True)
class Addon:
    """A cluster add-on: API objects at bootstrap and, with a network, a component that may claim
    the images of its pods (`images`: predicates on the container's full image reference; the
    component then implements ManagedWorkload)."""
    name: str
    summary: str
    objects: Callable[[Any], Sequence[dict]]                          # (ClusterConfig) -> objects
    make_component: Callable[[ComponentContext], Component] | None = None
    images: tuple[Callable[[str], bool], ...] = ()
    default: bool = True                                              # on unless turned off


_ADDONS: dict[str, Addon] = {}


def register_addon(addon: Addon) -> Addon:
    _ADDONS[addon.name] = addon
    return addon


def addons() -> dict[str, Addon]:
    from . import addons as _builtin  # noqa: F401  (registers the built-in add-ons)
    return dict(_ADDONS)


def resolve_addons(requested: Sequence[str] | None) -> tuple[Addon, ...]:
    """None: the default add-ons; otherwise exactly the named ones (an unknown name is an error)."""
    from .errors import TestbedError
    known = addons()
    if requested is None:
        return tuple(a for a in known.values() if a.default)
    unknown = [n for n in requested if n not in known]
    if unknown:
        raise TestbedError(f"unknown add-on {unknown[0]!r}: choose from {', '.join(known)}")
    return tuple(known[n] for n in requested)


@dataclass
class ManagedImages:
    """The kubelet's registry: which component runs which image."""
    entries: list[tuple[Callable[[str], bool], ManagedWorkload]] = field(default_factory=list)

    def add(self, matches: Callable[[str], bool], workload: ManagedWorkload) -> None:
        self.entries.append((matches, workload))

    def workload_for(self, image: str) -> ManagedWorkload | None:
        return next((w for matches, w in self.entries if matches(image)), None)
