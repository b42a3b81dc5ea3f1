"""kube-proxy's change tracker: Service and EndpointSlice events become "which Services changed",
so that the proxy view of 10,000 Services is not rebuilt from scratch for every change.

The tracker keeps one tuple of ServicePort per Service; a watch event on a Service or on one of its
EndpointSlices marks that Service dirty, and the next read rebuilds only the dirty ones. Unchanged
Services keep the very same tuple object, so consumers can find changes by identity.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

from .model import ServicePort, service_ports

Key = tuple[str, str]  # (namespace, Service name)
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class ServicePortTracker:
    def __init__(self, get_service: Callable[[str, str], dict | None],
                 slices_of: Callable[[str, str], Iterable[dict]], all_services: Callable[[], Iterable[dict]]):
        self._get_service = get_service
        self._slices_of = slices_of
        self._by_service: dict[Key, tuple[ServicePort, ...]] = {}
        self._dirty: set[Key] = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in all_services()}
        self._flat: tuple[ServicePort, ...] | None = None

    def on_event(self, event) -> None:
        if event.kind == "Service":
            self._dirty.add((event.namespace, event.name))
        elif event.kind == "EndpointSlice":
            owner = ((event.obj.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
            if owner:
                self._dirty.add((event.namespace, owner))

    def _refresh(self) -> None:
        if not self._dirty:
            return
        for key in self._dirty:
            service = self._get_service(*key)
            ports = service_ports([service], self._slices_of(*key)) if service is not None else ()
            if ports:
                if self._by_service.get(key) != ports:
                    self._by_service[key] = ports
            else:
                self._by_service.pop(key, None)
        self._dirty.clear()
        self._flat = None

    def by_service(self) -> Mapping[Key, tuple[ServicePort, ...]]:
        self._refresh()
        return self._by_service

    def ports(self) -> tuple[ServicePort, ...]:
        """All proxied Service ports, in service_ports()'s order."""
        self._refresh()
        if self._flat is None:
            self._flat = tuple(p for key in sorted(self._by_service) for p in self._by_service[key])
        return self._flat
