"""A background loop that re-syncs something whenever objects of some kinds change.

kube-proxy, CoreDNS and MetalLB all work this way: a watch marks "something changed", and one sync
(debounced, never two at once) brings the data plane up to date with the state at that moment. The
counter of changes seen and the counter of changes synced tell callers when everything has caught up.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


class SyncLoop:
    def __init__(self, name: str, store, kinds: set[str], work: Callable[[], None], min_interval: float = 0.0):
        self.name = name
        self.store = store
        self.kinds = kinds
        self.work = work
        self.min_interval = min_interval
        self.errors: list[str] = []
        self.sync_seconds: list[float] = []     # duration of every sync, for measurements
        self._changes = 1                       # the first sync is always due
        self._synced = 0
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._unwatch = None
        self._working_since: float | None = None   # monotonic start of the sync in progress

    def start(self) -> None:
        self._unwatch = self.store.watch(self._on_event)
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        self._wakeup.set()

    def stop(self) -> None:
        if self._unwatch:
            self._unwatch()
            self._unwatch = None
        self._stopping.set()
        self._wakeup.set()
        if self._thread:
            self._thread.join(timeout=30)

    def trigger(self) -> None:
        self._changes += 1
        self._wakeup.set()

    def _on_event(self, event) -> None:
        if event.kind in self.kinds:
            self.trigger()

    def synced(self) -> bool:
        return self._synced >= self._changes

    def activity(self) -> str | None:
        """What the loop is doing, for progress messages: None when idle."""
        since = self._working_since
        if since is not None:
            return f"syncing for {time.monotonic() - since:.0f} s"
        if not self.synced():
            return "sync pending"
        return None

    def progress(self) -> int:
        """Syncs attempted so far: grows while the loop works (for stall detection)."""
        return len(self.sync_seconds)

    def busy(self) -> bool:
        """A sync is running now (a long one is progress, not a stall)."""
        return self._working_since is not None

    def _loop(self) -> None:
        last = 0.0
        while not self._stopping.is_set():
            self._wakeup.wait()
            self._wakeup.clear()
            if self._stopping.is_set():
                return
            wait = last + self.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            target = self._changes
            started = self._working_since = time.monotonic()
            try:
                self.work()
                self._synced = target
            except Exception as err:  # report, and retry after a pause (kube-proxy does the same)
                log.exception("%s: sync failed", self.name)
                self.errors.append(f"{self.name}: {err}")
                self._working_since = None
                self._stopping.wait(1.0)
                self._wakeup.set()
            self._working_since = None
            last = time.monotonic()
            self.sync_seconds.append(last - started)
            if self._synced < self._changes:
                self._wakeup.set()


class LoopComponent:
    """The Component interface (testbed/components.py) of a component driven by one SyncLoop
    (`self.loop`): it has caught up when its loop has, and its progress is the loop's."""
    loop: SyncLoop

    @property
    def errors(self) -> list[str]:
        return self.loop.errors

    def synced(self) -> bool:
        return self.loop.synced()

    def activity(self) -> str | None:
        return self.loop.activity()

    def progress(self) -> int:
        return self.loop.progress()

    def busy(self) -> bool:
        return self.loop.busy()
