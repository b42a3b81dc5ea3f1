"""An in-memory object store with the API server's bookkeeping: resourceVersion, uid, generation,
creationTimestamp, and watch events.

Objects are plain dicts in Kubernetes' shape. The store owns them: callers get copies, so a caller
cannot change stored state by accident. A transaction records an undo log, so that a batch that fails
half-way (apply is all or nothing) is rolled back whole.
"""
from __future__ import annotations

import itertools
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator

Key = tuple[str, str, str]  # (kind, namespace or "", name)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


def copy_object(value):
    """A deep copy of JSON-like data, several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: copy_object(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_object(v) for v in value]
    return value


_last_stamp: tuple[int, str] = (0, "")


def now_rfc3339() -> str:
    """UTC now with second resolution, as Kubernetes timestamps are (formatted once per second)."""
    global _last_stamp
    second = int(time.time())
    if _last_stamp[0] != second:
        _last_stamp = (second, datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _last_stamp[1]


@dataclass(frozen=True)
class WatchEvent:
    type: str        # ADDED, MODIFIED, DELETED
    kind: str
    namespace: str
    name: str
    obj: dict        # the stored object (treat as read-only)


def key_of(obj: dict) -> Key:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


class ObjectStore:
    def __init__(self) -> None:
        self._objects: dict[str, dict[tuple[str, str], dict]] = defaultdict(dict)
        self._versions = itertools.count(1)
        self._last_version = 0
        self._watchers: list[Callable[[WatchEvent], None]] = []
        self._immediate_watchers: list[Callable[[WatchEvent], None]] = []
        self._undo: list | None = None
        self._created: set[tuple[str, str, str]] = set()   # keys created inside the open transaction
        self._pending_events: list[WatchEvent] | None = None

    # -- reads ------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        """The stored object itself (read-only by convention); use `copy_object` to hand it out."""
        return self._objects[kind].get((namespace, name))

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        items = self._objects[kind]
        if namespace is None:
            return list(items.values())
        return [o for (ns, _), o in items.items() if ns == namespace]

    @property
    def version(self) -> int:
        """The newest resourceVersion handed out."""
        return self._last_version

    def count(self, kind: str) -> int:
        return len(self._objects[kind])

    def kinds(self) -> list[str]:
        return [k for k, v in self._objects.items() if v]

    # -- writes -----------------------------------------------------------------------------
    def create(self, obj: dict) -> dict:
        kind, namespace, name = key_of(obj)
        if (namespace, name) in self._objects[kind]:
            raise KeyError(f'{kind} "{name}" already exists')
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        meta["resourceVersion"] = str(self._next_version())
        if isinstance(obj.get("spec"), dict):
            meta.setdefault("generation", 1)
        self._objects[kind][(namespace, name)] = obj
        self._record(("delete", kind, namespace, name))
        if self._undo is not None:
            self._created.add((kind, namespace, name))
        self._emit(WatchEvent(ADDED, kind, namespace, name, obj))
        return obj

    def update(self, obj: dict, bump_generation: bool = False) -> dict:
        kind, namespace, name = key_of(obj)
        old = self._objects[kind].get((namespace, name))
        if old is None:
            raise KeyError(f'{kind} "{name}" not found')
        meta = obj["metadata"]
        meta["uid"] = old["metadata"]["uid"]
        meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        generation = old["metadata"].get("generation")
        if generation is not None:
            meta["generation"] = generation + 1 if bump_generation else generation
        meta["resourceVersion"] = str(self._next_version())
        self._objects[kind][(namespace, name)] = obj
        self._record_restore(kind, namespace, name, old)
        self._emit(WatchEvent(MODIFIED, kind, namespace, name, obj))
        return obj

    def delete(self, kind: str, namespace: str, name: str) -> dict | None:
        old = self._objects[kind].pop((namespace, name), None)
        if old is not None:
            self._record_restore(kind, namespace, name, old)
            self._emit(WatchEvent(DELETED, kind, namespace, name, old))
        return old

    def _next_version(self) -> int:
        self._last_version = next(self._versions)
        return self._last_version

    # -- watch and transactions ------------------------------------------------------------
    def watch(self, callback: Callable[[WatchEvent], None], immediate: bool = False) -> Callable[[], None]:
        """Call `callback` for every committed change; returns a function that stops watching.

        An `immediate` watcher (the control plane's own indexes) sees changes as they are made, also
        inside a transaction, and, when the transaction fails, the changes that undo them."""
        watchers = self._immediate_watchers if immediate else self._watchers
        watchers.append(callback)
        return lambda: watchers.remove(callback)

    @property
    def in_transaction(self) -> bool:
        return self._undo is not None

    def _emit(self, event: WatchEvent) -> None:
        for watcher in list(self._immediate_watchers):
            watcher(event)
        if not self._watchers:
            return   # nobody to tell, now or at commit (a watcher added later lists the store first)
        if self._pending_events is not None:
            self._pending_events.append(event)
        else:
            for watcher in list(self._watchers):
                watcher(event)

    def _record(self, entry) -> None:
        if self._undo is not None:
            self._undo.append(entry)

    def _record_restore(self, kind: str, namespace: str, name: str, old: dict) -> None:
        """An object created in this transaction needs no older version kept: undoing its creation
        removes whatever version it has (so 20,000 new pods do not keep 60,000 versions alive)."""
        if self._undo is not None and (kind, namespace, name) not in self._created:
            self._undo.append(("restore", kind, namespace, name, old))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Changes inside become visible to watchers only when the block succeeds; an exception
        undoes every change made inside it."""
        if self._undo is not None:  # nested: the outer transaction decides
            yield
            return
        self._undo, self._pending_events = [], []
        try:
            yield
        except BaseException:
            undo, self._undo, self._pending_events = self._undo, None, None
            self._created = set()
            for entry in reversed(undo):
                kind, namespace, name = entry[1], entry[2], entry[3]
                current = self._objects[kind].pop((namespace, name), None)
                if entry[0] == "delete":
                    event = WatchEvent(DELETED, kind, namespace, name, current) if current is not None else None
                else:
                    self._objects[kind][(namespace, name)] = entry[4]
                    event = WatchEvent(MODIFIED if current is not None else ADDED, kind, namespace, name, entry[4])
                if event is not None:
                    for watcher in list(self._immediate_watchers):
                        watcher(event)
            raise
        events, self._undo, self._pending_events = self._pending_events, None, None
        self._created = set()
        for event in events:
            for watcher in list(self._watchers):
                watcher(event)
