"""The emulated network: turns a topology and the control plane's objects into namespaces, bridges,
links and processes, and keeps them in step.

Wiring and addresses: see addressing.py. Bring-up order: Open vSwitch (started if needed, kernel or
userspace datapath), the SDN controller (sdn mode), Mininet hosts and bridges, node namespaces
(addresses, routes, sysctls - inside the nodes, never the host), then the data plane, the kubelet (which
starts the pods the control plane already has, cluster DNS among them), the DNS record pusher and the
LoadBalancer speaker. Everything lives under one cluster id: every root-namespace name starts with `tb`,
every process carries TESTBED_CLUSTER=<id>, and /run/testbed/<id>/ holds the state `testbed clean` reads.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from mininet.link import Link, OVSLink
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch

from ..controlplane.endpoints import pod_is_ready
from ..errors import TestbedError
from ..proxy.model import NodeInfo
from ..topology import Topology
from . import addressing
from .hosts import CLUSTER_ENV, EmulatedHost
from .netns import netns_file
from .ovs import Datapath, OvsDaemons, choose_datapath, vsctl
from .runner import NamespaceRunner

if TYPE_CHECKING:
    from ..controlplane import ControlPlane

log = logging.getLogger(__name__)
RUN_ROOT = Path("/run/testbed")
REQUIRED_TOOLS = ("ovs-vsctl", "ovs-vswitchd", "mnexec", "ip", "ethtool", "iptables-restore", "unshare",
                  "nsenter", "setsid", "unbound")


class TestbedBridge(OVSSwitch):
    """An OVS bridge marked as the testbed's (external_ids), so clean-up finds only ours."""

    def __init__(self, name, cluster_id: str, rstp: bool = False, controlled: bool = False, **params):
        self.cluster_id = cluster_id
        self.rstp = rstp
        self.controlled = controlled
        super().__init__(name, **params)

    def start(self, controllers):
        # Mininet hands every switch every controller; only node bridges belong to the SDN
        # controller, fabric switches stay plain learning switches.
        super().start(controllers if self.controlled else [])

    def bridgeOpts(self):
        # RSTP (not Mininet's STP option: plain STP takes 30 s to converge) breaks the loops of
        # redundant fabrics such as leaf-spine.
        return super().bridgeOpts() + f" external_ids:testbed-cluster={self.cluster_id}" + \
            (" rstp_enable=true" if self.rstp else "")


class Emulation:
    def __init__(self, cp: "ControlPlane", topology: Topology, proxy_mode: str, *,
                 datapath: str | None = None, iptables_backend: str = "nft", settle_timeout: float = 60):
        self.cp = cp
        self.topology = topology
        self.proxy_mode = proxy_mode
        self.requested_datapath = datapath
        self.iptables_backend = iptables_backend
        self.settle_timeout = settle_timeout
        self.cluster_id = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.run_dir = RUN_ROOT / self.cluster_id
        self.node_names = list(topology.nodes)
        self.datapath: Datapath | None = None
        self.net: Mininet | None = None
        self.ovs = OvsDaemons()
        self.node_hosts_by_name: dict[str, EmulatedHost] = {}
        self.bridges: dict[str, TestbedBridge] = {}
        self.external: EmulatedHost | None = None
        self._free_slots: dict[str, set[int]] = {}
        self._mininet_lock = threading.RLock()
        self.kubelet = None
        self.dataplane = None
        self.dns = None
        self.speaker = None
        self.sdn = None
        self.started = False
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------------------------
    # Bring-up
    # ------------------------------------------------------------------------------------
    def start(self) -> None:
        started = time.monotonic()
        self._preflight()
        # What a crashed run left (its owner is gone) would collide with our names: remove it first.
        from .cleanup import clean_dead_clusters
        for line in clean_dead_clusters():
            log.warning("removed what an earlier run left: %s", line)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_state()
        setLogLevel("output")  # Mininet: our CLI output yes, its progress chatter no
        self.ovs.acquire(self.cluster_id)
        self.datapath = choose_datapath(self.requested_datapath)
        self.net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False, autoStaticArp=False)
        from ..proxy.backends import make_dataplane
        self.dataplane = make_dataplane(self.proxy_mode, self)   # may start the SDN controller
        self._build_static_network()
        self.timings["network"] = time.monotonic() - started
        self._configure_nodes()
        self.dataplane.start()
        from ..dns.cluster import ClusterDNS
        from ..kubelet.kubelet import Kubelet
        from ..proxy.loadbalancer import LoadBalancerSpeaker
        self.dns = ClusterDNS(self.cp, self)
        self.dns.start()
        self.speaker = LoadBalancerSpeaker(self.cp, self)
        self.speaker.start()
        self.kubelet = Kubelet(self.cp, self)
        self.kubelet.start()
        self.started = True
        self.settle()
        self.timings["bring_up"] = time.monotonic() - started

    def _preflight(self) -> None:
        if os.geteuid() != 0:
            raise TestbedError("the emulated network needs root (network namespaces, Open vSwitch); "
                               "use network=False for the control plane alone")
        missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
        if missing:
            raise TestbedError(f"missing programs: {', '.join(missing)} (run `make setup`)")

    def _write_state(self) -> None:
        state = {"cluster": self.cluster_id, "owner_pid": os.getpid(), "topology": self.topology.name,
                 "proxy_mode": self.proxy_mode, "started": time.time(),
                 "bridges": [addressing.bridge_name(n) for n in self.node_names]
                 + [f"{addressing.ROOT_PREFIX}-{s}" for s in self.topology.switches]}
        (self.run_dir / "state.json").write_text(json.dumps(state, indent=1))

    def _bridge(self, name: str, dpid: int, controlled: bool, rstp: bool = False) -> TestbedBridge:
        fail_mode = "secure" if controlled else "standalone"
        bridge = self.net.addSwitch(name, cls=TestbedBridge, cluster_id=self.cluster_id, failMode=fail_mode,
                                    datapath="user" if self.datapath.is_userspace else "kernel",
                                    protocols="OpenFlow13", dpid=f"{dpid:016x}", rstp=rstp, controlled=controlled)
        return bridge

    def _host(self, name: str, hostname: str, etc: dict[str, Path]) -> EmulatedHost:
        return self.net.addHost(name, cls=EmulatedHost, cluster_id=self.cluster_id, hostname=hostname,
                                etc_files=etc, ip=None, inNamespace=True)

    def _host_etc(self, name: str, resolv: str) -> dict[str, Path]:
        directory = self.run_dir / "hosts" / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "resolv.conf").write_text(resolv)
        (directory / "hostname").write_text(name + "\n")
        return {"/etc/resolv.conf": directory / "resolv.conf", "/etc/hostname": directory / "hostname"}

    def _build_static_network(self) -> None:
        no_dns = "# no upstream resolver inside the emulation\n"
        controller = self.dataplane.openflow_controller()
        redundant = bool(self.topology.switch_links())
        for index, switch in enumerate(self.topology.switches):
            self._bridge(f"{addressing.ROOT_PREFIX}-{switch}", addressing.dpid_for(index, fabric=True), False,
                         rstp=redundant)
        for index, node in enumerate(self.node_names):
            host = self._host(node, node, self._host_etc(node, no_dns))
            self.node_hosts_by_name[node] = host
            bridge = self._bridge(addressing.bridge_name(node), addressing.dpid_for(index), controller is not None)
            self.bridges[node] = bridge
            ip = addressing.node_ip(index)
            self.net.addLink(host, bridge, intfName1="eth0", intfName2=addressing.node_veth_name(index),
                             port2=addressing.NODE_PORT, addr1=addressing.host_mac(ip), cls=Link)
            uplink = self.net[f"{addressing.ROOT_PREFIX}-{self.topology.uplink_of(node)}"]
            self.net.addLink(bridge, uplink, port1=addressing.UPLINK_PORT, cls=OVSLink,
                             intfName1=f"tb-up-{node}"[:15], intfName2=f"tb-fab-{node}"[:15])
            self._free_slots[node] = set(range(1, 250))
        # Fabric links are veth pairs, not patch ports: OVS 3.1 aborts when RSTP runs over patch ports.
        switch_index = {name: i for i, name in enumerate(self.topology.switches)}
        self.fabric_veths = []
        for a, b in self.topology.switch_links():
            names = (f"tbs{switch_index[a]}s{switch_index[b]}", f"tbs{switch_index[b]}s{switch_index[a]}")
            self.net.addLink(self.net[f"{addressing.ROOT_PREFIX}-{a}"], self.net[f"{addressing.ROOT_PREFIX}-{b}"],
                             intfName1=names[0], intfName2=names[1], cls=Link)
            self.fabric_veths += names
        self.external = self._host("ext", "external", self._host_etc("ext", no_dns))
        self.net.addLink(self.external, self.net[f"{addressing.ROOT_PREFIX}-{self.topology.external}"],
                         intfName1="eth0", intfName2="tbext", addr1=addressing.host_mac(addressing.EXTERNAL_IP),
                         cls=Link)
        if controller is not None:
            self.net.addController(controller)
        self.net.start()
        for host in [*self.node_hosts_by_name.values(), self.external]:
            host.cmd("set +m")  # no job control: background workloads are started with setsid

    def _configure_nodes(self) -> None:
        prefix = addressing.NODE_NETWORK.prefixlen
        for index, node in enumerate(self.node_names):
            host = self.node_hosts_by_name[node]
            pod_cidr = addressing.node_pod_cidr(index)
            commands = [
                "ip link set lo up",
                f"ip addr add {addressing.node_ip(index)}/{prefix} dev eth0",
                f"ip addr add {addressing.gateway_ip(pod_cidr)}/{addressing.POD_CIDR_PREFIX} dev eth0",
                "ip link set eth0 up",
                # A router for its pods: forward, and never redirect pods to each other (/32 pods
                # must keep going through the node, where the Service rules are).
                "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 "
                "net.ipv4.conf.eth0.send_redirects=0 net.ipv4.conf.all.rp_filter=0 "
                "net.ipv4.conf.eth0.rp_filter=0 net.ipv4.conf.default.rp_filter=0",
            ]
            for other in range(len(self.node_names)):
                if other != index:
                    commands.append(f"ip route add {addressing.node_pod_cidr(other)} via {addressing.node_ip(other)}")
            commands += self.dataplane.node_setup_commands(node)
            commands += self._inside_commands()
            self._run_all(host, commands, f"node {node}")
            self._prepare_root_interface(addressing.node_veth_name(index))
        self._run_all(self.external, [f"ip addr add {addressing.EXTERNAL_IP}/{prefix} dev eth0", "ip link set lo up",
                                      "ip link set eth0 up", *self._inside_commands()], "the external host")
        self._prepare_root_interface("tbext")
        for veth in self.fabric_veths:
            self._prepare_root_interface(veth)
        self._wait_for_fabric()

    def _wait_for_fabric(self, timeout: float = 15) -> None:
        """With RSTP, wait until every fabric port has settled (forwarding, or discarding as an
        alternate path), so that the first packets of a test are not lost in convergence."""
        if not self.fabric_veths:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            settled = True
            for switch in self.topology.switches:
                out = subprocess.run(["ovs-appctl", "rstp/show", f"{addressing.ROOT_PREFIX}-{switch}"],
                                     capture_output=True, text=True).stdout
                for line in out.splitlines():
                    parts = line.split()
                    if len(parts) >= 3 and parts[1] in ("Root", "Designated") and parts[2] != "Forwarding":
                        settled = False
            if settled:
                return
            time.sleep(0.2)
        raise TestbedError(f"the fabric's RSTP did not converge within {timeout:.0f} s")

    def _inside_commands(self) -> list[str]:
        """For every emulated host's own namespace: IPv4 only (no router solicitations flooding the
        bridges), and TX checksum offload off where the userspace datapath needs it."""
        commands = ["sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"]
        if self.datapath.is_userspace:
            commands.append("ethtool -K eth0 tx off >/dev/null")
        return commands

    @staticmethod
    def _run_all(host, commands: list[str], what: str) -> None:
        output = host.cmd(" && ".join(commands) + " && echo __ok__")
        if "__ok__" not in output:
            raise TestbedError(f"configuring {what} failed: {output.strip()}")

    def _prepare_root_interface(self, interface: str) -> None:
        """The switch-side end of a veth, in the root namespace: no IPv6 (the kernel would otherwise
        add link-local addresses and routes to the host's tables), and no TX checksum offload on the
        userspace datapath."""
        commands = [f"sysctl -qw net.ipv6.conf.{interface}.disable_ipv6=1"]
        if self.datapath.is_userspace:
            commands.append(f"ethtool -K {interface} tx off >/dev/null")
        os.system(" ; ".join(commands) + " 2>/dev/null")

    # ------------------------------------------------------------------------------------
    # Pods (called by the kubelet)
    # ------------------------------------------------------------------------------------
    def pod_dir(self, pod: dict) -> Path:
        return self.run_dir / "pods" / f"{pod['metadata']['namespace']}_{pod['metadata']['name']}"

    def mininet_name(self, namespace: str, name: str) -> str:
        return name if namespace == "default" else f"{namespace}/{name}"

    def create_pod_sandbox(self, pod: dict, hostname: str, etc: dict[str, Path]):
        """A Mininet host on its node's bridge with the pod's IP; returns (host, sandbox record)."""
        node = pod["spec"]["nodeName"]
        index = self.node_names.index(node)
        ip = pod["status"]["podIP"]
        if pod["spec"].get("hostNetwork"):
            raise TestbedError("hostNetwork pods are not emulated yet")
        with self._mininet_lock:
            slot = min(self._free_slots[node])
            self._free_slots[node].discard(slot)
            name = self.mininet_name(pod["metadata"]["namespace"], pod["metadata"]["name"])
            host = self._host(name, hostname, etc)
            veth = addressing.pod_veth_name(index, slot)
            ofport = addressing.FIRST_POD_PORT + slot
            bridge = self.bridges[node]
            self.net.addLink(host, bridge, intfName1="eth0", intfName2=veth, port2=ofport,
                             addr1=addressing.pod_mac(ip), cls=Link)
            vsctl("add-port", bridge.name, veth, "--", "set", "Interface", veth, f"ofport_request={ofport}")
        gateway = addressing.gateway_ip(addressing.node_pod_cidr(index))
        commands = ["set +m", "ip link set lo up", f"ip addr add {ip}/32 dev eth0", "ip link set eth0 up",
                    f"ip route add {gateway} dev eth0 scope link", f"ip route add default via {gateway} dev eth0",
                    *self._inside_commands()]
        self._prepare_root_interface(veth)
        os.system(f"ip link set {veth} up")
        self._run_all(host, commands, f"pod {name}")
        sandbox = {"node": node, "slot": slot, "veth": veth, "ofport": ofport, "ip": ip,
                   "mac": addressing.pod_mac(ip), "name": name}
        self.dataplane.pod_added(pod, sandbox)
        return host, sandbox

    def destroy_pod_sandbox(self, host, sandbox: dict) -> None:
        self.dataplane.pod_removed(sandbox)
        with self._mininet_lock:
            bridge = self.bridges.get(sandbox["node"])
            if bridge is not None:
                vsctl("--if-exists", "del-port", bridge.name, sandbox["veth"], check=False)
            for link in list(self.net.links):
                if host in (link.intf1.node, link.intf2.node):
                    self.net.links.remove(link)
            if host.name in self.net.nameToNode:
                self.net.delHost(host)
            self._free_slots[sandbox["node"]].add(sandbox["slot"])

    # DNS servers live in coredns pods; the kubelet asks for them like for any container.
    def start_dns_server(self, runtime) -> int:
        return self.dns.start_server(runtime)

    def stop_dns_server(self, pid: int | None) -> None:
        self.dns.stop_server(pid)

    def dns_server_log(self, pid: int | None) -> str:
        return self.dns.server_log(pid)

    # ------------------------------------------------------------------------------------
    # Lookups for the API
    # ------------------------------------------------------------------------------------
    def node_info(self, node: str) -> NodeInfo:
        index = self.node_names.index(node)
        return NodeInfo(name=node, ip=addressing.node_ip(index), pod_cidr=addressing.node_pod_cidr(index),
                        cluster_cidr=self.cp.config.cluster_cidr, service_cidr=self.cp.config.service_cidr)

    def node_runner(self, node: str) -> NamespaceRunner:
        return NamespaceRunner(pid=self.node_hosts_by_name[node].pid, env={CLUSTER_ENV: self.cluster_id})

    def node_netns(self, node: str) -> str:
        return netns_file(self.node_hosts_by_name[node].pid)

    def node_hosts(self) -> list[EmulatedHost]:
        return [self.node_hosts_by_name[n] for n in self.node_names]

    def node_host(self, name: str) -> EmulatedHost:
        try:
            return self.node_hosts_by_name[name]
        except KeyError:
            raise TestbedError(f'nodes "{name}" not found') from None

    def pod_host(self, namespace: str, name: str) -> EmulatedHost:
        runtime = self.kubelet.pods.get((namespace, name)) if self.kubelet else None
        if runtime is None:
            raise TestbedError(f'pod "{name}" in namespace "{namespace}" is not running')
        return runtime.host

    def external_host(self) -> EmulatedHost:
        return self.external

    def client_pod(self) -> EmulatedHost:
        """The `client` pod in the default namespace (created on first use, like `kubectl run client`)."""
        if self.kubelet.pods.get(("default", "client")) is None:
            if self.cp.store.get("Pod", "default", "client") is None:
                from ..manifests import parse_objects
                self.cp.apply(parse_objects([{
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "client", "namespace": "default", "labels": {"run": "client"}},
                    "spec": {"containers": [{"name": "client", "image": "busybox",
                                             "command": ["sleep", "infinity"]}]}}], "<client>"))
            self.settle()
        return self.pod_host("default", "client")

    def pod_logs(self, namespace: str, name: str) -> str:
        try:
            return self.kubelet.logs(namespace, name)
        except KeyError:
            raise TestbedError(f'pods "{name}" not found') from None

    # ------------------------------------------------------------------------------------
    # Waiting until the emulation reflects the control plane
    # ------------------------------------------------------------------------------------
    def _converged(self) -> bool:
        with self.cp.lock:
            pending = [p for p in self.cp.store.list("Pod")
                       if p["spec"].get("nodeName") in self.node_names
                       and (p["metadata"].get("deletionTimestamp")
                            or (p["metadata"]["namespace"], p["metadata"]["name"]) not in self.kubelet.pods)]
        return (not pending and self.kubelet.idle() and self.kubelet.all_evaluated()
                and self.dataplane.synced() and self.dns.synced() and self.speaker.synced())

    def settle(self, timeout: float | None = None) -> None:
        """Wait until pods run (and readiness is known) and every data plane, DNS and the speaker
        have caught up with the control plane's latest change."""
        if not self.started:
            return
        deadline = time.monotonic() + (timeout or self.settle_timeout)
        stable = 0
        while time.monotonic() < deadline:
            if self._converged():
                stable += 1
                if stable >= 2:
                    return
            else:
                stable = 0
            time.sleep(0.02)
        problems = self.kubelet.errors[-5:] + self.dataplane.errors[-5:] + self.dns.errors[-5:]
        raise TestbedError("the emulation did not settle within %.0f s%s" % (
            timeout or self.settle_timeout, (": " + "; ".join(problems)) if problems else ""))

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.settle(max(0.1, deadline - time.monotonic()))
            with self.cp.lock:
                unready = [p["metadata"]["name"] for p in self.cp.store.list("Pod") if not pod_is_ready(p)]
            if not unready:
                return
            time.sleep(0.05)
        raise TestbedError(f"pods not ready after {timeout:.0f} s: {', '.join(unready)}")

    # ------------------------------------------------------------------------------------
    # Teardown
    # ------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Remove everything this emulation made; safe to call twice and after a failed start."""
        for component in (self.kubelet, self.speaker, self.dns):
            if component is not None:
                try:
                    component.stop()
                except Exception:
                    log.exception("stopping %s", type(component).__name__)
        if self.dataplane is not None:
            try:
                self.dataplane.stop()
            except Exception:
                log.exception("stopping the data plane")
        if self.net is not None:
            try:
                self.net.stop()
            except Exception:
                log.exception("stopping Mininet")
            self.net = None
        from .cleanup import clean_cluster
        clean_cluster(self.cluster_id)
        self.ovs.release(self.cluster_id)
        self.started = False
