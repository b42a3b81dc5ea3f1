"""Allocators for the things a cluster hands out: ClusterIPs, NodePorts, LoadBalancer IPs, pod IPs.

Each allocator only knows which values are in use; the control plane rebuilds them from the store
after a failed batch, so a rollback never leaks an allocation. Random choice (as the API server does
for ClusterIPs and NodePorts) uses the control plane's seeded generator, so runs are reproducible.
"""
from __future__ import annotations

import ipaddress
import random


class AllocationError(Exception):
    pass


class IPRange:
    """Free/used bookkeeping over an IPv4 range given as first and last integer address."""

    def __init__(self, first: int, last: int, rng: random.Random, sequential: bool):
        self.first, self.last = first, last
        self.used: set[int] = set()
        self.rng = rng
        self.sequential = sequential
        self._next = first

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def contains(self, ip: str) -> bool:
        return self.first <= int(ipaddress.IPv4Address(ip)) <= self.last

    def is_free(self, ip: str) -> bool:
        return int(ipaddress.IPv4Address(ip)) not in self.used

    def reserve(self, ip: str) -> None:
        self.used.add(int(ipaddress.IPv4Address(ip)))

    def release(self, ip: str | None) -> None:
        if ip:
            self.used.discard(int(ipaddress.IPv4Address(ip)))

    def pick_free(self, exclude: set[str]) -> str:
        """A free address not in `exclude`, chosen as `allocate` would, without taking it."""
        for _ in range(64):
            value = self.rng.randint(self.first, self.last)
            if value not in self.used and str(ipaddress.IPv4Address(value)) not in exclude:
                return str(ipaddress.IPv4Address(value))
        value = next((v for v in range(self.first, self.last + 1)
                      if v not in self.used and str(ipaddress.IPv4Address(v)) not in exclude), None)
        if value is None:
            raise AllocationError("range is full")
        return str(ipaddress.IPv4Address(value))

    def allocate(self) -> str:
        if len(self.used) >= self.size:
            raise AllocationError("range is full")
        if self.sequential:
            value = self._next
            while value in self.used:
                value = self.first if value >= self.last else value + 1
            self._next = self.first if value >= self.last else value + 1
        else:
            # Random probing, then a linear scan when the range is nearly full.
            for _ in range(64):
                value = self.rng.randint(self.first, self.last)
                if value not in self.used:
                    break
            else:
                value = next(v for v in range(self.first, self.last + 1) if v not in self.used)
        self.used.add(value)
        return str(ipaddress.IPv4Address(value))


class ClusterIPAllocator(IPRange):
    """ClusterIPs from the service CIDR; the network and broadcast addresses are never handed out."""

    def __init__(self, cidr: str, rng: random.Random):
        network = ipaddress.IPv4Network(cidr)
        super().__init__(int(network.network_address) + 1, int(network.broadcast_address) - 1, rng,
                         sequential=False)
        self.network = network

    def nth(self, n: int) -> str:
        return str(self.network.network_address + n)


class PortAllocator:
    """NodePorts from the node port range, random like the API server's allocator."""

    def __init__(self, first: int, last: int, rng: random.Random):
        self.first, self.last = first, last
        self.used: set[int] = set()
        self.rng = rng

    def contains(self, port: int) -> bool:
        return self.first <= port <= self.last

    def is_free(self, port: int) -> bool:
        return port not in self.used

    def reserve(self, port: int) -> None:
        self.used.add(port)

    def release(self, port: int | None) -> None:
        if port:
            self.used.discard(port)

    def pick_free(self, exclude: set[int]) -> int:
        """A free port not in `exclude`, chosen as `allocate` would, without taking it (a batch plans
        all its ports first: one pass, not a retry per port already planned)."""
        for _ in range(64):
            port = self.rng.randint(self.first, self.last)
            if port not in self.used and port not in exclude:
                return port
        port = next((p for p in range(self.first, self.last + 1) if p not in self.used and p not in exclude), None)
        if port is None:
            raise AllocationError("range is full")
        return port

    def allocate(self) -> int:
        if len(self.used) > self.last - self.first:
            raise AllocationError("range is full")
        for _ in range(64):
            port = self.rng.randint(self.first, self.last)
            if port not in self.used:
                break
        else:
            port = next(p for p in range(self.first, self.last + 1) if p not in self.used)
        self.used.add(port)
        return port


class LoadBalancerPool(IPRange):
    """LoadBalancer IPs handed out lowest-first from a pool, as MetalLB does."""

    def __init__(self, first: str, last: str, rng: random.Random):
        super().__init__(int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last)), rng,
                         sequential=True)


class PodIPAM:
    """host-local IPAM: each node hands out pod IPs from its own pod CIDR (.1 is the gateway)."""

    def __init__(self, pod_cidrs: dict[str, str], rng: random.Random):
        self.ranges: dict[str, IPRange] = {}
        for node, cidr in pod_cidrs.items():
            network = ipaddress.IPv4Network(cidr)
            self.ranges[node] = IPRange(int(network.network_address) + 2, int(network.broadcast_address) - 1,
                                        rng, sequential=True)

    def allocate(self, node: str) -> str:
        try:
            return self.ranges[node].allocate()
        except AllocationError:
            raise AllocationError(f"no free pod IP on node {node}") from None

    def reserve(self, node: str, ip: str) -> None:
        if node in self.ranges and self.ranges[node].contains(ip):
            self.ranges[node].reserve(ip)

    def release(self, node: str | None, ip: str | None) -> None:
        if node in self.ranges and ip:
            self.ranges[node].release(ip)
