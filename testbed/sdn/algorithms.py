"""Load-balancing algorithms of SDN mode, chosen per Service with `testbed.io/lb-algorithm`.

Which path an algorithm takes depends on whether it needs state the switch cannot keep:

| algorithm | path | how |
|---|---|---|
| random (default) | proactive | OpenFlow select group, one bucket per endpoint; OVS hashes each new connection's 5-tuple, so connections spread uniformly, like iptables' `statistic --mode random` |
| sh (source hash) | proactive | `multipath(nw_src)` hashes the client IP to a slot, a controller-computed slot table maps slots to endpoints: a client stays on one endpoint |
| dh (destination hash) | proactive | as sh on the destination IP; for one VIP that is one endpoint, as in IPVS |
| maglev | proactive | `multipath(5-tuple)` into M slots, M prime >= 100 x endpoints; the slot table is Maglev's lookup table (consistent hashing: adding a backend moves few slots) |
| rr, wrr, lc, wlc, sed, nq | reactive | the first packet of a new connection goes to the controller, which chooses with the state below, installs a per-connection flow (idle timeout; counts from installs and flow-removed messages) and sends the packet on |

Reactive algorithms need the order of arrivals (rr, wrr) or live connection counts (lc, wlc,
sed, nq); a hash in the switch has neither. Their choices follow IPVS (net/netfilter/ipvs/ip_vs_*.c):
rr rotates strictly, wrr is IPVS' interleaved weighted round robin, lc picks the fewest active
connections, wlc the fewest per weight, sed the smallest (active + 1) / weight, nq an idle
endpoint first and otherwise sed. Ties go to the first endpoint in address order. Weight 0 means
"no new connections", as in IPVS. Weights come from `testbed.io/lb-weights` ("ip=3,ip2=1" or pod
names); unspecified endpoints weigh 1.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from testbed.proxy.model import Endpoint

GROUP_ALGORITHMS = frozenset({"random"})
HASH_ALGORITHMS = frozenset({"sh", "dh", "maglev"})
REACTIVE_ALGORITHMS = frozenset({"rr", "wrr", "lc", "wlc", "sed", "nq"})
ALGORITHMS = GROUP_ALGORITHMS | HASH_ALGORITHMS | REACTIVE_ALGORITHMS
HASH_FIELDS = {"sh": "nw_src", "dh": "nw_dst", "maglev": "symmetric_l3l4+udp"}
MAX_SLOTS = 65521            # largest prime below multipath's 65536 links


class UnknownAlgorithm(ValueError):
    pass


def algorithm_name(text: str) -> str:
    name = (text or "random").strip().lower()
    if name not in ALGORITHMS:
        raise UnknownAlgorithm(f"unknown load-balancing algorithm {text!r} (known: {', '.join(sorted(ALGORITHMS))})")
    return name


def endpoint_weights(endpoints: Sequence[Endpoint], weights: Mapping[str, int]) -> tuple[int, ...]:
    """Weight of each endpoint from `ip`, `ip:port` or pod-name keys; 1 when not given."""
    result = []
    for endpoint in endpoints:
        for key in (endpoint.address, endpoint.ip, endpoint.pod_name):
            if key is not None and key in weights:
                result.append(max(0, int(weights[key])))
                break
        else:
            result.append(1)
    return tuple(result)


# --- proactive: slot tables -------------------------------------------------------------------------
def slot_table(algorithm: str, endpoints: Sequence[Endpoint]) -> tuple[int, ...]:
    """Slot -> endpoint index for the hash algorithms (the switch hashes packets into slots)."""
    if algorithm in ("sh", "dh"):
        return tuple(range(len(endpoints)))
    if algorithm == "maglev":
        return maglev_table([e.address for e in endpoints], maglev_size(len(endpoints)))
    raise ValueError(f"{algorithm} has no slot table")


def maglev_size(backends: int) -> int:
    """Smallest prime >= 100 x backends (Maglev's advice M >> N), at most MAX_SLOTS."""
    candidate = max(101, 100 * backends)
    while candidate < MAX_SLOTS and not _is_prime(candidate):
        candidate += 1
    return min(candidate, MAX_SLOTS)


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))


def _hash64(text: str, salt: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8, key=salt).digest(), "big")


def maglev_table(names: Sequence[str], size: int) -> tuple[int, ...]:
    """Maglev's lookup table (Eisenbud et al., NSDI 2016, section 3.4): each backend fills the
    slots of its own permutation (offset, skip) in turn until the table is full."""
    if not names:
        return ()
    if not _is_prime(size):
        raise ValueError(f"Maglev table size must be prime, got {size}")
    offsets = [_hash64(n, b"offset") % size for n in names]
    skips = [_hash64(n, b"skip") % (size - 1) + 1 for n in names]
    next_index = [0] * len(names)
    table = [-1] * size
    filled = 0
    while True:
        for i in range(len(names)):
            slot = (offsets[i] + next_index[i] * skips[i]) % size
            while table[slot] >= 0:
                next_index[i] += 1
                slot = (offsets[i] + next_index[i] * skips[i]) % size
            table[slot] = i
            next_index[i] += 1
            filled += 1
            if filled == size:
                return tuple(table)


# --- reactive: choosers kept by the controller -------------------------------------------------------
@dataclass
class ReactiveChooser:
    """The per-bridge state of one reactive Service instance, as one node's IPVS keeps it.

    IPVS counts each real server's connections in two kinds (ip_vs_conn.c, ip_vs_proto_tcp.c):
    active ones (TCP in ESTABLISHED) and inactive ones (every other state: closing, TIME_WAIT,
    and all UDP "connections"). A connection here is active from its first packet (the switch
    does not report the handshake) until its client sends FIN or RST, then inactive until its
    per-connection flow idles out. The least-connection family weighs them as IPVS does."""
    algorithm: str
    endpoints: tuple[str, ...] = ()           # endpoint addresses ("ip:port"), in pipeline order
    weights: tuple[int, ...] = ()
    active: dict[str, int] = field(default_factory=dict)
    inactive: dict[str, int] = field(default_factory=dict)
    _last: int = -1                           # rr/wrr position
    _current_weight: int = 0                  # wrr

    def update(self, endpoints: Sequence[str], weights: Sequence[int]) -> None:
        """New endpoint set; counts of surviving endpoints are kept, the rotation restarts only
        if the set changed."""
        endpoints, weights = tuple(endpoints), tuple(weights)
        if (endpoints, weights) != (self.endpoints, self.weights):
            self._last, self._current_weight = -1, 0
        self.endpoints, self.weights = endpoints, weights
        self.active = {e: self.active.get(e, 0) for e in endpoints}
        self.inactive = {e: self.inactive.get(e, 0) for e in endpoints}

    def opened(self, address: str, active: bool = True) -> None:
        counts = self.active if active else self.inactive
        if address in counts:
            counts[address] += 1

    def closing(self, address: str) -> None:
        """An active connection left ESTABLISHED (FIN or RST seen): it is inactive now."""
        if self.active.get(address, 0) > 0:
            self.active[address] -= 1
            self.inactive[address] += 1

    def closed(self, address: str, active: bool = True) -> None:
        """A connection is gone (its flow expired); `active`: which count it was in."""
        counts = self.active if active else self.inactive
        if counts.get(address, 0) > 0:
            counts[address] -= 1

    def choose(self) -> int | None:
        """Index of the endpoint for a new connection (None: no endpoint may take one)."""
        n = len(self.endpoints)
        if not n or not any(self.weights):
            return None
        return getattr(self, f"_choose_{self.algorithm}")(n)

    def _choose_rr(self, n: int) -> int:
        for step in range(1, n + 1):
            index = (self._last + step) % n
            if self.weights[index] > 0:
                self._last = index
                return index
        raise AssertionError("unreachable: some weight is positive")

    def _choose_wrr(self, n: int) -> int:
        positive = [w for w in self.weights if w > 0]
        step, top = math.gcd(*positive), max(positive)
        while True:
            self._last = (self._last + 1) % n
            if self._last == 0:
                self._current_weight -= step
                if self._current_weight <= 0:
                    self._current_weight = top
            if self.weights[self._last] >= self._current_weight:
                return self._last

    def _active(self, index: int) -> int:
        return self.active.get(self.endpoints[index], 0)

    def _overhead(self, index: int) -> int:
        """ip_vs_dest_conn_overhead(): active connections weigh 256 inactive ones."""
        return (self._active(index) << 8) + self.inactive.get(self.endpoints[index], 0)

    def _pick_min(self, n: int, key) -> int:
        candidates = [i for i in range(n) if self.weights[i] > 0]
        return min(candidates, key=lambda i: (key(i), i))

    def _choose_lc(self, n: int) -> int:
        return self._pick_min(n, self._overhead)

    def _choose_wlc(self, n: int) -> int:
        return self._pick_min(n, lambda i: self._overhead(i) / self.weights[i])

    def _choose_sed(self, n: int) -> int:
        """ip_vs_sed: (active + 1) / weight; inactive connections do not count."""
        return self._pick_min(n, lambda i: (self._active(i) + 1) / self.weights[i])

    def _choose_nq(self, n: int) -> int:
        """ip_vs_nq: the first server with no active connection, else as sed."""
        idle = [i for i in range(n) if self.weights[i] > 0 and self._active(i) == 0]
        return idle[0] if idle else self._choose_sed(n)
