"""kube-proxy's change tracker: Service and EndpointSlice events become "which Services changed".

kube-proxy (pkg/proxy/servicechangetracker.go, endpointschangetracker.go) records every Service and
EndpointSlice event, and each sync calls `Update()`, which applies the pending changes to its
service map and returns an `UpdateServiceMapResult` with the set of Services that changed. A
proxier then rewrites only those. `ServiceChangeTracker.update()` does the same and returns
`(ports, changed)`:

- `ports`: every proxied Service port, as `service_ports()` computes them from scratch (sorted);
- `changed`: the (namespace, name) of every Service whose ports or endpoints differ from what the
  previous `update()` returned: added, removed, or changed in any field.

Each consumer (every data plane, the LoadBalancer speaker) has its own tracker, as every
kube-proxy has its own. The tracker indexes EndpointSlices by the `kubernetes.io/service-name`
label itself (from the events), so it needs nothing from the control plane but the store.
Unchanged Services keep their tuple of ServicePort, so the flat list is rebuilt cheaply.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from .model import ServicePort, service_ports

Key = tuple[str, str]  # (namespace, Service name)
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _slice_owner(obj: Mapping) -> str | None:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)


def ports_of(store) -> tuple[ServicePort, ...]:
    """The proxy view of a store as it is now, computed from scratch (render, tests)."""
    return service_ports(store.list("Service"), store.list("EndpointSlice"))


def diff_services(old: Mapping[Key, tuple[ServicePort, ...]],
                  new: Mapping[Key, tuple[ServicePort, ...]]) -> frozenset[Key]:
    """Services added, removed or different between two per-Service maps."""
    return frozenset(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))


class ServiceChangeTracker:
    def __init__(self, store, lock):
        self._store = store
        self._lock = lock          # the control plane's: writers hold it while events fire
        self._by_service: dict[Key, tuple[ServicePort, ...]] = {}
        self._slices: dict[Key, set[str]] = {}
        self._slice_owner: dict[Key, str] = {}
        self._dirty: set[Key] = set()
        self._flat: tuple[ServicePort, ...] = ()
        with lock:
            for service in store.list("Service"):
                meta = service["metadata"]
                self._dirty.add((meta["namespace"], meta["name"]))
            for endpoint_slice in store.list("EndpointSlice"):
                self._index_slice(endpoint_slice["metadata"]["namespace"], endpoint_slice["metadata"]["name"],
                                  endpoint_slice)
            self._unwatch = store.watch(self._on_event)

    @classmethod
    def for_api(cls, api) -> "ServiceChangeTracker":
        return cls(api.store, api.lock)

    def close(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    def _index_slice(self, namespace: str, name: str, obj: Mapping | None) -> None:
        previous = self._slice_owner.pop((namespace, name), None)
        if previous is not None:
            self._slices.get((namespace, previous), set()).discard(name)
            self._dirty.add((namespace, previous))
        owner = _slice_owner(obj) if obj is not None else None
        if owner:
            self._slices.setdefault((namespace, owner), set()).add(name)
            self._slice_owner[(namespace, name)] = owner
            self._dirty.add((namespace, owner))

    def _on_event(self, event) -> None:
        if event.kind == "Service":
            self._dirty.add((event.namespace, event.name))
        elif event.kind == "EndpointSlice":
            self._index_slice(event.namespace, event.name, None if event.type == "DELETED" else event.obj)

    def _slices_of(self, key: Key) -> Iterable[dict]:
        names = self._slices.get(key, ())
        return [s for s in (self._store.get("EndpointSlice", key[0], n) for n in names) if s is not None]

    def update(self) -> tuple[tuple[ServicePort, ...], frozenset[Key]]:
        """Apply the pending changes: (all proxied ports, Services changed since the last call)."""
        changed: set[Key] = set()
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            for key in dirty:
                service = self._store.get("Service", *key)
                ports = service_ports([service], self._slices_of(key)) if service is not None else ()
                if ports != self._by_service.get(key, ()):
                    changed.add(key)
                    if ports:
                        self._by_service[key] = ports
                    else:
                        self._by_service.pop(key, None)
        if changed:
            self._flat = tuple(p for key in sorted(self._by_service) for p in self._by_service[key])
        return self._flat, frozenset(changed)

    def by_service(self) -> Mapping[Key, tuple[ServicePort, ...]]:
        """The state as of the last update() (read-only)."""
        return self._by_service
