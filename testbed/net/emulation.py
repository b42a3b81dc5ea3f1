"""The emulated network: turns a topology and the control plane's objects into namespaces, bridges,
links and processes, and keeps them in step.

Wiring and addresses: see addressing.py. Bring-up order: Open vSwitch (started if needed, kernel or
userspace datapath), the data plane (which, in sdn mode, starts the OpenFlow controller the node
bridges need), Mininet hosts and bridges, node namespaces (addresses, routes, sysctls and the
backend's node set-up - inside the nodes, never the host), then the components: the data plane's
sync loop, the LoadBalancer speaker, the add-ons' components (cluster DNS, ...), and the kubelet,
which starts the pods the control plane already has (the add-ons' pods among them).

Components get a NodeAccess (net/nodes.py) and an ApiView (controlplane/view.py), never this
object. Everything lives under one cluster id: every root-namespace name starts with `tb`, every
process carries TESTBED_CLUSTER=<id>, and /run/testbed/<id>/ holds the state `testbed clean` reads.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from mininet.link import Link, OVSLink
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch

from ..components import ComponentContext, ManagedImages
from ..controlplane.endpoints import pod_is_ready
from ..errors import TestbedError
from ..proxy.backend import DataPlaneContext, get_backend
from ..proxy.kernel import KernelDataPlane
from ..proxy.model import NodeInfo
from ..topology import Topology
from ..timescale import scaled
from . import addressing
from .hosts import EmulatedHost
from .nodes import NodeAccess
from .ovs import Datapath, OvsDaemons, choose_datapath, vsctl
from .switches import SWITCH_KINDS, NamespacedLinuxBridge
from .runner import NamespaceRunner

log = logging.getLogger(__name__)
RUN_ROOT = Path("/run/testbed")
REQUIRED_TOOLS = ("mnexec", "ip", "ethtool", "unshare", "nsenter", "setsid")
OVS_TOOLS = ("ovs-vsctl", "ovs-vswitchd")
ROOT = NamespaceRunner()   # the root namespace: only for the switch-side ends of veths


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
    def __init__(self, cp, topology: Topology, proxy_mode: str, *, proxy_options: dict | None = None,
                 addons=(), datapath: str | None = None, switch: str = "ovs", stall_timeout: float = 60):
        """`switch`: "ovs" (Open vSwitch, kernel or userspace datapath) or "linuxbridge" (Linux
        bridges in namespaces of their own: the kernel's datapath everywhere; not for sdn mode)."""
        if switch not in SWITCH_KINDS:
            raise TestbedError(f"switch: {switch!r}: choose one of {', '.join(SWITCH_KINDS)}")
        self.switch = switch
        self.cp = cp
        self.topology = topology
        self.backend = get_backend(proxy_mode)
        self.proxy_mode = proxy_mode
        self.proxy_options = self.backend.resolve_options(proxy_options or {})
        self.addons = tuple(addons)
        self.requested_datapath = datapath
        self.stall_timeout = stall_timeout
        self.cluster_id = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.run_dir = RUN_ROOT / self.cluster_id
        self.node_names = list(topology.nodes)
        infos = {node: NodeInfo(name=node, ip=addressing.node_ip(i), pod_cidr=addressing.node_pod_cidr(i),
                                cluster_cidr=cp.config.cluster_cidr, service_cidr=cp.config.service_cidr)
                 for i, node in enumerate(self.node_names)}
        self.nodes = NodeAccess(self.cluster_id, self.run_dir, tuple(self.node_names), infos, {})
        self.datapath: Datapath | None = None
        self.net: Mininet | None = None
        self.ovs = OvsDaemons()
        self.node_hosts_by_name: dict[str, EmulatedHost] = {}
        self.bridges: dict[str, TestbedBridge] = {}
        self.external: EmulatedHost | None = None
        self.fabric_veths: list[str] = []
        self._free_slots: dict[str, set[int]] = {}
        self._mininet_lock = threading.RLock()
        self.kubelet = None
        self.dataplane = None
        self.speaker = None
        self.addon_components: dict[str, object] = {}
        self.started = False
        self.timings: dict[str, float] = {}

    @property
    def components(self) -> list:
        """Everything `settle()` waits for, in start order."""
        return [c for c in (self.dataplane, self.speaker, *self.addon_components.values(), self.kubelet)
                if c is not None]

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
        if self.switch == "ovs":
            self.ovs.acquire(self.cluster_id)
            self.datapath = choose_datapath(self.requested_datapath)
        else:
            self.datapath = Datapath("linuxbridge", "Linux bridges, each in its own namespace (the kernel's datapath)")
        self.net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False, autoStaticArp=False)
        api = self.cp.api_view()
        self.dataplane = self._make_dataplane(api)   # sdn mode: starts the OpenFlow controller
        self._build_static_network()
        self.timings["network"] = time.monotonic() - started
        self._configure_nodes()
        if self.topology.link_shapes:   # TCLink-style bw/delay/loss on topology links (net/links.py)
            from .links import shape_topology_links
            shape_topology_links(self)
        self.dataplane.start()
        context = ComponentContext(nodes=self.nodes, api=api, announce=self._announce)
        from ..kubelet.kubelet import Kubelet
        from ..proxy.loadbalancer import LoadBalancerSpeaker
        self.speaker = LoadBalancerSpeaker(context)
        self.speaker.start()
        managed = ManagedImages()
        for addon in self.addons:
            if addon.make_component is None:
                continue
            component = addon.make_component(context)
            self.addon_components[addon.name] = component
            component.start()
            for matches in addon.images:
                managed.add(matches, component)
        self.kubelet = Kubelet(self.cp, sandboxes=self, nodes=self.nodes, managed=managed)
        self.kubelet.start()
        self.started = True
        self.settle()
        self.timings["bring_up"] = time.monotonic() - started

    def _announce(self, old, new) -> None:
        """The speaker's announcements go to whichever data plane runs now (modes can switch)."""
        self.dataplane.announce(old, new)

    # ------------------------------------------------------------------------------------
    # Switching the data plane of a running cluster
    # ------------------------------------------------------------------------------------
    def switch_proxy_mode(self, proxy_mode: str, proxy_options: dict | None = None) -> None:
        """Replace the data plane without restarting pods: stop the old one and remove all of its
        state (rules, sets, addresses, processes, flows, node set-up), reconfigure the node bridges
        when OpenFlow control comes or goes, start the new one and wait until it has synced.
        Established connections may break (their NAT state was the old mode's)."""
        backend = get_backend(proxy_mode)
        options = backend.resolve_options(proxy_options or {})
        reason = backend.unavailable()
        if reason:
            raise TestbedError(f"{proxy_mode} mode cannot run here: {reason}")
        if self.switch != "ovs" and backend.needs_openflow:
            raise TestbedError(f"{proxy_mode} mode needs switch='ovs', not {self.switch!r}")
        missing = [t for t in backend.tools(options) if shutil.which(t) is None]
        if missing:
            raise TestbedError(f"missing programs: {', '.join(missing)} (run `make setup`)")
        old_backend, old_options = self.backend, self.proxy_options
        with self._mininet_lock:
            # The old data plane withdraws its LoadBalancer announcements (a kernel mode's local
            # routes) while it still runs; the new one announces them again below.
            self.dataplane.announce(dict(self.speaker.current), {})
            self.dataplane.stop()
            self.dataplane.cleanup()
            for node in self.node_names:
                commands = old_backend.node_teardown(self.nodes.info(node), old_options)
                if commands:
                    self._run_all(self.node_hosts_by_name[node], commands, f"node {node} (leaving {old_backend.mode})")
            self.backend, self.proxy_mode, self.proxy_options = backend, proxy_mode, options
            self.dataplane = self._make_dataplane(self.cp.api_view())
            self._reconfigure_bridges(self.dataplane.openflow_controller())
            for node in self.node_names:
                commands = backend.node_setup(self.nodes.info(node), options)
                if commands:
                    self._run_all(self.node_hosts_by_name[node], commands, f"node {node} ({backend.mode})")
            for runtime in list(self.kubelet.pods.values()):
                with self.cp.lock:
                    pod = self.cp.store.get("Pod", runtime.namespace, runtime.name)
                if pod is not None:
                    self.dataplane.pod_added(pod, runtime.sandbox)
            self.dataplane.start()
            self.dataplane.announce({}, dict(self.speaker.current))
        self._write_state()
        self.settle()

    def _reconfigure_bridges(self, controller) -> None:
        """Node bridges under an OpenFlow controller (fail_mode secure) or plain learning switches
        (standalone, one NORMAL flow), whichever the new data plane needs."""
        if self.switch != "ovs":
            return
        for bridge in self.bridges.values():
            if controller is not None:
                vsctl("set-fail-mode", bridge.name, "secure")
                vsctl("set-controller", bridge.name, f"tcp:{controller.ip}:{controller.port}")
            else:
                vsctl("del-controller", bridge.name)
                vsctl("set-fail-mode", bridge.name, "standalone")
                ROOT.run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", bridge.name])
                ROOT.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", bridge.name, "priority=0,actions=NORMAL"])
            bridge.controlled = controller is not None

    def _make_dataplane(self, api):
        context = DataPlaneContext(nodes=self.nodes, api=api, service_cidr=self.cp.config.service_cidr,
                                   cluster_cidr=self.cp.config.cluster_cidr, options=self.proxy_options)
        if self.backend.make_dataplane is not None:
            return self.backend.make_dataplane(context, self.backend)
        return KernelDataPlane(context, self.backend)

    def _preflight(self) -> None:
        reason = self.backend.unavailable()
        if reason:   # never run something else instead
            raise TestbedError(f"{self.proxy_mode} mode cannot run here: {reason}")
        if self.switch != "ovs" and self.backend.needs_openflow:
            raise TestbedError(f"{self.proxy_mode} mode programs Open vSwitch bridges over OpenFlow: it needs "
                               f"switch='ovs', not {self.switch!r}")
        if self.switch == "linuxbridge" and self.topology.switch_links():
            raise TestbedError(f"topology {self.topology.name!r} has redundant fabric links, which need RSTP: "
                               "Open vSwitch only (switch='ovs')")
        if os.geteuid() != 0:
            raise TestbedError("the emulated network needs root (network namespaces, Open vSwitch); "
                               "use network=False for the control plane alone")
        tools = REQUIRED_TOOLS + (OVS_TOOLS if self.switch == "ovs" else ()) + self.backend.tools(self.proxy_options)
        missing = [t for t in dict.fromkeys(tools) if shutil.which(t) is None]
        if missing:
            raise TestbedError(f"missing programs: {', '.join(missing)} (run `make setup`)")

    def _write_state(self) -> None:
        state = {"cluster": self.cluster_id, "owner_pid": os.getpid(), "topology": self.topology.name,
                 "proxy_mode": self.proxy_mode, "started": time.time(),
                 "bridges": [addressing.bridge_name(n) for n in self.node_names]
                 + [f"{addressing.ROOT_PREFIX}-{s}" for s in self.topology.switches]}
        (self.run_dir / "state.json").write_text(json.dumps(state, indent=1))

    def _bridge(self, name: str, dpid: int, controlled: bool, rstp: bool = False):
        if self.switch == "linuxbridge":
            return self.net.addSwitch(name, cls=NamespacedLinuxBridge, cluster_id=self.cluster_id,
                                      dpid=f"{dpid:016x}")
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
        shaped = {frozenset((a, b)) for a, b, _ in self.topology.link_shapes}
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
            uplink_switch = self.topology.uplink_of(node)
            uplink = self.net[f"{addressing.ROOT_PREFIX}-{uplink_switch}"]
            # OVS bridges meet over patch ports (no netdev, no copy), except on a shaped link: tc
            # needs a device, so that link is a veth pair.
            patch = self.switch == "ovs" and frozenset((node, uplink_switch)) not in shaped
            self.net.addLink(bridge, uplink, port1=addressing.UPLINK_PORT, cls=OVSLink if patch else Link,
                             intfName1=f"tb-up-{node}"[:15], intfName2=f"tb-fab-{node}"[:15])
            self._free_slots[node] = set(range(1, 250))
        # Fabric links are veth pairs, not patch ports: OVS 3.1 aborts when RSTP runs over patch ports.
        switch_index = {name: i for i, name in enumerate(self.topology.switches)}
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
        for node, host in self.node_hosts_by_name.items():
            self.nodes.pids[node] = host.pid

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
            commands += self.backend.node_setup(self.nodes.info(node), self.proxy_options)
            commands += self._inside_commands()
            self._run_all(host, commands, f"node {node}")
            host.set_address("eth0", addressing.node_ip(index), prefix)
            self._prepare_root_interface(addressing.node_veth_name(index))
        self._run_all(self.external, [f"ip addr add {addressing.EXTERNAL_IP}/{prefix} dev eth0", "ip link set lo up",
                                      "ip link set eth0 up", *self._inside_commands()], "the external host")
        self.external.set_address("eth0", addressing.EXTERNAL_IP, prefix)
        self._prepare_root_interface("tbext")
        for veth in self.fabric_veths:
            self._prepare_root_interface(veth)
        self._wait_for_fabric()

    def _wait_for_fabric(self, timeout: float = 15) -> None:
        """With RSTP, wait until every fabric port has settled (forwarding, or discarding as an
        alternate path), so that the first packets of a test are not lost in convergence."""
        if not self.fabric_veths:
            return
        timeout = scaled(timeout)
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
        add link-local addresses and routes to the host's tables), no TX checksum offload on the
        userspace datapath, and up. (Linux bridges keep their ports in their own namespace.)"""
        if self.switch != "ovs":
            return
        ROOT.run(["sysctl", "-qw", f"net.ipv6.conf.{interface}.disable_ipv6=1"])
        if self.datapath.is_userspace:
            ROOT.run(["ethtool", "-K", interface, "tx", "off"])
        ROOT.run(["ip", "link", "set", interface, "up"])

    # ------------------------------------------------------------------------------------
    # Pod sandboxes (called by the kubelet)
    # ------------------------------------------------------------------------------------
    def pod_dir(self, pod: dict) -> Path:
        return self.run_dir / "pods" / f"{pod['metadata']['namespace']}_{pod['metadata']['name']}"

    @staticmethod
    def mininet_name(namespace: str, name: str) -> str:
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
            if self.switch == "ovs":
                # A slot's previous veth may still be going away (its namespace's end dies with the
                # pod's process): a new pair of the same name would fail with "File exists".
                ROOT.run(["ip", "link", "del", veth], check=False)
            self.net.addLink(host, bridge, intfName1="eth0", intfName2=veth, port2=ofport,
                             addr1=addressing.pod_mac(ip), cls=Link)
            if self.switch == "ovs":
                vsctl("add-port", bridge.name, veth, "--", "set", "Interface", veth, f"ofport_request={ofport}")
            else:
                bridge.attach(veth)
        gateway = addressing.gateway_ip(addressing.node_pod_cidr(index))
        commands = ["ip link set lo up", f"ip addr add {ip}/32 dev eth0", "ip link set eth0 up",
                    f"ip route add {gateway} dev eth0 scope link", f"ip route add default via {gateway} dev eth0",
                    *self._inside_commands()]
        self._prepare_root_interface(veth)
        self._run_all(host, commands, f"pod {name}")
        host.set_address("eth0", ip, 32)
        sandbox = {"node": node, "slot": slot, "veth": veth, "ofport": ofport, "ip": ip,
                   "mac": addressing.pod_mac(ip), "name": name}
        self.dataplane.pod_added(pod, sandbox)
        return host, sandbox

    def destroy_pod_sandbox(self, host, sandbox: dict) -> None:
        self.dataplane.pod_removed(sandbox)
        with self._mininet_lock:
            bridge = self.bridges.get(sandbox["node"])
            if bridge is not None and self.switch == "ovs":
                vsctl("--if-exists", "del-port", bridge.name, sandbox["veth"], check=False)
                ROOT.run(["ip", "link", "del", sandbox["veth"]], check=False)   # gone before its slot is reused
            elif bridge is not None:
                bridge.detach(sandbox["veth"])
            for link in list(self.net.links):
                if host in (link.intf1.node, link.intf2.node):
                    self.net.links.remove(link)
            if host.name in self.net.nameToNode:
                self.net.delHost(host)
            self._free_slots[sandbox["node"]].add(sandbox["slot"])

    # ------------------------------------------------------------------------------------
    # Lookups for the API
    # ------------------------------------------------------------------------------------
    def node_hosts(self) -> list[EmulatedHost]:
        return [self.node_hosts_by_name[n] for n in self.node_names]

    def node_host(self, name: str) -> EmulatedHost:
        try:
            return self.node_hosts_by_name[name]
        except KeyError:
            raise TestbedError(f'nodes "{name}" not found') from None

    def pod_runtime(self, namespace: str, name: str):
        runtime = self.kubelet.pods.get((namespace, name)) if self.kubelet else None
        if runtime is None:
            raise TestbedError(f'pod "{name}" in namespace "{namespace}" is not running')
        return runtime

    def pod_host(self, namespace: str, name: str) -> EmulatedHost:
        return self.pod_runtime(namespace, name).host

    def external_host(self) -> EmulatedHost:
        return self.external

    def pod_logs(self, namespace: str, name: str, container: str | None = None) -> str:
        try:
            return self.kubelet.logs(namespace, name, container)
        except KeyError:
            raise TestbedError(f'pods "{name}" not found') from None

    # ------------------------------------------------------------------------------------
    # Waiting until the emulation reflects the control plane
    # ------------------------------------------------------------------------------------
    def settle(self) -> None:
        """Wait until every component (pods, data plane, speaker, add-ons) has caught up with the
        control plane's latest change.

        A long wait is not an error: a component that is working (a sync in progress, pods
        starting) or that made progress within `stall_timeout` seconds is waited for, however long
        it takes (iptables-nft needs minutes for 10,000 Services; kube-proxy has no deadline either).
        It fails on an error a component reports meanwhile, or on a stall: nothing working and no
        progress for `stall_timeout` seconds. On a terminal, a status line says who is still busy."""
        if not self.started:
            return
        components = self.components
        errors_before = {id(c): len(c.errors) for c in components}
        started = last_progress = time.monotonic()
        progress = {id(c): c.progress() for c in components}
        stable = 0
        status = _StatusLine()
        stall_limit = scaled(self.stall_timeout)
        try:
            while True:
                if all(c.synced() for c in components):
                    stable += 1
                    if stable >= 2:
                        return
                    time.sleep(0.01)
                    continue
                stable = 0
                for c in components:
                    new_errors = c.errors[errors_before[id(c)]:]
                    if new_errors:
                        raise TestbedError(f"{c.name}: {new_errors[-1]}")
                now = time.monotonic()
                current = {id(c): c.progress() for c in components}
                if current != progress or any(c.busy() for c in components):
                    progress, last_progress = current, now
                busy = [f"{c.name}: {c.activity() or 'catching up'}" for c in components if not c.synced()]
                if now - last_progress > stall_limit:
                    raise TestbedError(f"the emulation stalled: no progress for {stall_limit:.0f} s; still waiting "
                                       f"for {'; '.join(busy)}")
                if now - started > 2:
                    status.show(len(components) - len(busy), len(components), "; ".join(busy))
                time.sleep(0.02)
        finally:
            status.clear()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + scaled(timeout)
        unready: list[str] = []
        while time.monotonic() < deadline:
            self.settle()
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
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:
                log.exception("stopping %s", getattr(component, "name", type(component).__name__))
        self.kubelet, self.speaker, self.dataplane = None, None, None
        self.addon_components = {}
        if self.net is not None:
            try:
                self.net.stop()
            except Exception:
                log.exception("stopping Mininet")
            self.net = None
        from .cleanup import clean_cluster
        clean_cluster(self.cluster_id)
        if self.switch == "ovs":
            self.ovs.release(self.cluster_id)
        self.started = False


class _StatusLine:
    """A progress bar on a terminal (stderr) while settling takes long: components caught up out
    of all, and who is still busy with what. Nothing when stderr is not a terminal."""

    def __init__(self):
        self.enabled = sys.stderr.isatty()
        self.bar = None
        self._last = 0.0

    def show(self, done: int, total: int, text: str) -> None:
        if not self.enabled or time.monotonic() - self._last < 0.5:
            return
        self._last = time.monotonic()
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc="settling", unit="component", leave=False,
                            bar_format="{desc}: {n}/{total} components caught up [{elapsed}] {postfix}")
        self.bar.n = done
        self.bar.set_postfix_str(text, refresh=True)

    def clear(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
