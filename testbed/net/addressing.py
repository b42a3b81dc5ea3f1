"""Naming and addressing of the emulated cluster, written down once.

Wiring (every proxy mode uses the same one; see README "Architecture" for why):

    external host (ext, 172.18.0.100)            LoadBalancer pool 172.18.255.200-250
              |                                    (announced on the node network, L2 like MetalLB)
        tb-fabric  (OVS bridge, plain L2 switch)
          |  patch tb-fab-<node> <-> tb-up-<node>
        tb-<node>  (OVS bridge of one node; the SDN controller programs these)
          | port 1: uplink (patch to the fabric)
          | port 2: the node's namespace, interface eth0: node IP 172.18.0.<10+i>/16 and the pods'
          |         gateway 10.244.<i>.1/24 (i = node index from 0)
          | ports 10..: pods, interface eth0 inside the pod: 10.244.<i>.<n>/32, default route via
                        10.244.<i>.1 onlink

Pods get /32 addresses so that all their traffic, even to a pod on the same node, is routed through
the node's namespace (kernel proxy modes: the kube-proxy rules see both directions of every
connection, as br_netfilter gives a real bridge CNI) or through the node bridge's OpenFlow pipeline
(SDN mode), as Calico and Antrea do.

MAC addresses are derived from IPv4 addresses so that any component can compute them:
pods 0a:58:<ip> (OVN-Kubernetes' convention), node and external interfaces 02:42:<ip> (Docker's).

Names: a bridge is `tb-<node>`; switch-side veth ends are `tb<node-index>p<slot>` for pods and
`tb<node-index>gw` for the node; patch ports `tb-up-<node>` / `tb-fab-<node>`. Everything the testbed
creates in the root namespace starts with `tb`, which is how `testbed clean` finds it.
"""
from __future__ import annotations

import ipaddress

NODE_NETWORK = ipaddress.ip_network("172.18.0.0/16")
EXTERNAL_IP = "172.18.0.100"
LOADBALANCER_POOL = ("172.18.255.200", "172.18.255.250")
CLUSTER_CIDR = ipaddress.ip_network("10.244.0.0/16")
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
POD_CIDR_PREFIX = 24

UPLINK_PORT = 1
NODE_PORT = 2
FIRST_POD_PORT = 10

ROOT_PREFIX = "tb"


def mac_from_ip(ip: str, prefix: tuple[int, int]) -> str:
    octets = ipaddress.IPv4Address(ip).packed
    return ":".join(f"{b:02x}" for b in (*prefix, *octets))


def pod_mac(ip: str) -> str:
    return mac_from_ip(ip, (0x0A, 0x58))


def host_mac(ip: str) -> str:
    """MAC of a node's or the external host's interface on the node network."""
    return mac_from_ip(ip, (0x02, 0x42))


def node_ip(index: int) -> str:
    return str(NODE_NETWORK.network_address + 10 + index)


def node_pod_cidr(index: int) -> str:
    return str(list(CLUSTER_CIDR.subnets(new_prefix=POD_CIDR_PREFIX))[index])


def gateway_ip(pod_cidr: str) -> str:
    return str(ipaddress.ip_network(pod_cidr).network_address + 1)


def bridge_name(node: str) -> str:
    name = f"{ROOT_PREFIX}-{node}"
    if len(name) > 15:
        raise ValueError(f"node name {node!r} too long for an interface name (max 12 characters)")
    return name


def dpid_for(index: int, fabric: bool = False) -> int:
    """Datapath ids: node bridges 0x1 + index, the fabric 0xfab0 + index."""
    return (0xFAB0 if fabric else 0x1) + index


def pod_veth_name(node_index: int, slot: int) -> str:
    return f"{ROOT_PREFIX}{node_index}p{slot}"


def node_veth_name(node_index: int) -> str:
    return f"{ROOT_PREFIX}{node_index}gw"
