"""A small real instance of the SDN wiring for integration tests (needs root, Open vSwitch, Mininet).

It follows testbed/net/addressing.py (addresses, MACs, port numbers, routes) but uses its own
names so that it never collides with a running cluster: node names `sdn<i>` (bridges
`tb-sdn<i>`), the fabric `tb-sdnfab`, root-side veth ends `tbs<i>gw`, `tbs<i>p<slot>`, `tbsext`,
patch ports `tbs-up<i>` / `tbs-fab<i>`. Hosts are Mininet hosts (network namespaces with a shell).
Everything is removed again by `close()` (use it in `finally` or as a context manager).
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mininet.node import Host

from testbed.net import addressing
from testbed.net.ovs import OvsDaemons, vsctl
from testbed.sdn.wiring import Pod, Wiring
from tests.support.sdn_pods import pod_at

FABRIC = "tb-sdnfab"
ZONE_BASE = 40000
SERVER = Path(__file__).with_name("sdn_echo_server.py")


def sh(*args: str, check: bool = True) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class SdnWiring:
    nodes: int = 2
    pods_per_node: int = 2
    ofp_port: int = 16653
    topology: Wiring = None
    hosts: dict = field(default_factory=dict)            # name -> mininet Host
    servers: list = field(default_factory=list)
    veths: list = field(default_factory=list)
    bridges: list = field(default_factory=list)

    def __post_init__(self) -> None:
        base = Wiring.for_nodes([f"sdn{i}" for i in range(self.nodes)])
        pods = [pod_at(b, slot, "default", f"pod{b.index}{slot}") for b in base.bridges for slot in range(self.pods_per_node)]
        # Own conntrack zones: the userspace datapath's conntrack table is shared with any running cluster.
        self.topology = Wiring.for_nodes([b.node for b in base.bridges], pods=pods, zone_base=ZONE_BASE)

    # --- build -------------------------------------------------------------------------------------
    def build(self) -> "SdnWiring":
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        OvsDaemons().ensure()
        vsctl("--may-exist", "add-br", FABRIC, "--", "set", "bridge", FABRIC, "datapath_type=netdev",
              "fail_mode=standalone")
        self.bridges.append(FABRIC)
        for bridge in self.topology.bridges:
            i = bridge.index
            vsctl("--may-exist", "add-br", bridge.name, "--", "set", "bridge", bridge.name, "datapath_type=netdev",
                  "protocols=OpenFlow13", "fail_mode=secure", f"other-config:datapath-id={bridge.dpid:016x}")
            self.bridges.append(bridge.name)
            # Reconnect within a second after a controller restart (OVS' default backoff reaches 8 s).
            vsctl("--", "--id=@c", "create", "controller", f'target="tcp:127.0.0.1:{self.ofp_port}"',
                  "max_backoff=1000", "--", "set", "bridge", bridge.name, "controller=@c")
            vsctl("add-port", bridge.name, f"tbs-up{i}", "--", "set", "interface", f"tbs-up{i}", "type=patch",
                  f"options:peer=tbs-fab{i}", f"ofport_request={bridge.uplink_port}",
                  "--", "add-port", FABRIC, f"tbs-fab{i}", "--", "set", "interface", f"tbs-fab{i}", "type=patch",
                  f"options:peer=tbs-up{i}")
            node = self._host(f"tbsn{i}", bridge.name, f"tbs{i}gw", bridge.node_port, bridge.node_mac)
            node.cmd(f"ip addr add {bridge.node_ip}/16 dev eth0; ip addr add {bridge.gateway_ip}/24 dev eth0; "
                     f"ip route add {self.topology.service_cidr} dev eth0; sysctl -qw net.ipv4.ip_forward=1")
            for other in self.topology.bridges:
                if other is not bridge:
                    node.cmd(f"ip route add {other.pod_cidr} via {other.node_ip}")
            for pod in self.topology.pods_on(bridge.node):
                host = self._host(f"tbsp-{pod.name}", bridge.name, f"tbs{i}p{pod.ofport - addressing.FIRST_POD_PORT}",
                                  pod.ofport, pod.mac)
                host.cmd(f"ip addr add {pod.ip}/32 dev eth0; ip route add {bridge.gateway_ip} dev eth0; "
                         f"ip route add default via {bridge.gateway_ip} dev eth0 onlink")
        external = self._host("tbsext", FABRIC, "tbsext", None, addressing.host_mac(addressing.EXTERNAL_IP))
        external.cmd(f"ip addr add {addressing.EXTERNAL_IP}/16 dev eth0")

    def _host(self, name: str, bridge: str, veth: str, ofport: int | None, mac: str) -> Host:
        host = Host(name)
        self.hosts[name] = host
        peer = f"{veth}x"
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
        self.veths.append(veth)
        sh("ip", "link", "set", peer, "netns", str(host.pid))
        host.cmd(f"ip link set {peer} name eth0; ip link set eth0 address {mac}; ip link set eth0 up; "
                 f"ip link set lo up; ethtool -K eth0 tx off >/dev/null 2>&1")
        sh("ethtool", "-K", veth, "tx", "off", check=False)
        sh("ip", "link", "set", veth, "up")
        request = ["--", "set", "interface", veth, f"ofport_request={ofport}"] if ofport else []
        vsctl("add-port", bridge, veth, *request)
        return host

    # --- use ---------------------------------------------------------------------------------------
    def host(self, name: str) -> Host:
        """`external`, a node name (`sdn0`) or a pod name (`pod01`)."""
        if name == "external":
            return self.hosts["tbsext"]
        if name.startswith("sdn"):
            return self.hosts[f"tbsn{name[3:]}"]
        return self.hosts[f"tbsp-{name}"]

    def pod(self, name: str) -> Pod:
        return next(p for p in self.topology.pods if p.name == name)

    def start_servers(self, http: int = 8080, echo: int = 9000) -> None:
        for pod in self.topology.pods:
            process = self.host(pod.name).popen([sys.executable, str(SERVER), "--pod", pod.name,
                                                 "--http", str(http), "--echo", str(echo)],
                                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            self.servers.append(process)
        for process in self.servers:
            if process.stdout.readline().strip() != b"ready":
                raise RuntimeError("a test server did not start")

    def curl(self, client: str, url: str, timeout: float = 3.0) -> str:
        """Body of GET url from a host ('' on failure), as `curl` there sees it."""
        return self.host(client).cmd(f"curl -s --max-time {timeout} {url}").strip()

    def close(self) -> None:
        for process in self.servers:
            process.kill()
            process.wait()
        self.servers.clear()
        for host in self.hosts.values():
            host.terminate()
        self.hosts.clear()
        for bridge in reversed(self.bridges):
            vsctl("--if-exists", "del-br", bridge, check=False)
        self.bridges.clear()
        for veth in self.veths:
            subprocess.run(["ip", "link", "del", veth], capture_output=True)
        self.veths.clear()

    def __enter__(self) -> "SdnWiring":
        return self.build()

    def __exit__(self, *exc) -> None:
        self.close()

