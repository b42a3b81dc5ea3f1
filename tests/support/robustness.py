"""What the robustness tests share: a hard time and memory bound per case, and a snapshot of
everything an apply may change (to prove that a refused or failed apply changed nothing)."""
from __future__ import annotations

import resource
import signal
from contextlib import contextmanager


class CaseTooSlow(Exception):
    pass


def _virtual_memory() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


@contextmanager
def bounded(seconds: float = 5.0, memory: int = 512 * 2**20):
    """Fail (not hang, not swap) a case that takes longer than `seconds` or allocates more than
    `memory` bytes beyond what the process holds now: SIGALRM and RLIMIT_AS, restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _virtual_memory() + memory
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)

    def too_slow(signum, frame):
        raise CaseTooSlow(f"case took more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, too_slow)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def snapshot(cluster) -> tuple:
    """The store (every object's key and resourceVersion), every allocator and the events."""
    cp = cluster.control_plane
    objects = sorted((kind, ns, name, obj["metadata"].get("resourceVersion"))
                     for kind in cp.store.kinds() for (ns, name), obj in cp.store._objects[kind].items())
    allocations = (frozenset(cp.cluster_ips.used), frozenset(cp.node_ports.used), frozenset(cp.lb_pool.used),
                   tuple(sorted((node, frozenset(r.used)) for node, r in cp.pod_ipam.ranges.items())))
    events = tuple(sorted((key, len(events)) for key, events in cp.events.items() if events))
    return objects, allocations, events
