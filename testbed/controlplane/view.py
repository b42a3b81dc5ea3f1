"""The API as components see it: read and watch the objects, write a status, record an event.

Components (data planes, DNS, the LoadBalancer speaker, the ingress controller) get this view
instead of the whole ControlPlane, as real ones talk to the API server through a client: they can
list, get and watch any kind, and write only what controllers write (an object's status, events).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..store import copy_object


@dataclass(frozen=True)
class ApiView:
    store: Any                  # testbed.store.ObjectStore: get / list / watch (read-only use)
    lock: Any                   # the control plane's lock: hold it while reading several objects
    config: Any                 # controlplane.config.ClusterConfig
    record_event: Callable[[dict, str, str, str], None]      # (object, type, reason, message)
    update_status: Callable[[str, str, str, dict], bool]     # (kind, namespace, name, status) -> changed

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        """A copy of one object (None when absent)."""
        with self.lock:
            obj = self.store.get(kind, namespace, name)
            return copy_object(obj) if obj is not None else None

    def snapshot(self, *kinds: str) -> tuple[list[dict], ...]:
        """Consistent lists of several kinds. Stored objects are replaced on every change, never
        edited in place, so the lists may be read outside the lock (treat them as read-only)."""
        with self.lock:
            return tuple(self.store.list(kind) for kind in kinds)

    def watch(self, callback: Callable) -> Callable[[], None]:
        return self.store.watch(callback)
