"""Pods placed the way the emulation places them, for SDN unit tests."""
import ipaddress

from testbed.net import addressing
from testbed.sdn.wiring import Bridge, Pod


def pod_at(bridge: Bridge, slot: int, namespace: str, name: str, host_octet: int | None = None) -> Pod:
    """A pod on `bridge`'s switch port 10+slot with IP 10.244.i.(2+slot) unless told otherwise."""
    network = ipaddress.ip_network(bridge.pod_cidr)
    ip = str(network.network_address + (host_octet if host_octet is not None else 2 + slot))
    return Pod(namespace=namespace, name=name, node=bridge.node, ip=ip, mac=addressing.pod_mac(ip),
               ofport=addressing.FIRST_POD_PORT + slot)
