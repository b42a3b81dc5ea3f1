"""kube-proxy's userspace mode (pkg/proxy/userspace, removed in 1.26): a proxy process per node
copies every Service connection through user space; iptables only redirects to it.

    pod packet ─► nat PREROUTING ─► KUBE-PORTALS-CONTAINER: -d VIP --dport P -j REDIRECT --to-ports L
                                └─► KUBE-NODEPORT-CONTAINER (dst LOCAL): --dport NODEPORT -j REDIRECT ...
    node packet ─► nat OUTPUT ────► KUBE-PORTALS-HOST: -d VIP --dport P -j DNAT --to-destination NODE_IP:L
                                └─► KUBE-NODEPORT-HOST (dst LOCAL): -j DNAT ...
    filter INPUT ─► KUBE-NODEPORT-NON-LOCAL: --dport L NEW -j ACCEPT
       ▼
    the proxy process (testbed/workloads/userspace_proxy.py) listening on L: accepts, picks an
    endpoint (round robin over a shuffled list, ClientIP affinity), connects from the node and
    copies the bytes both ways; UDP keeps one backend socket per client address.

The chains, their jumps and the rule arguments are iptablesInit, openOnePortal, openNodePort and
the *PortalArgs functions of proxier.go (release-1.25): REDIRECT for traffic from containers
(the proxy listens on 0.0.0.0), DNAT to the node IP for the node's own traffic, external IPs with
the `physdev ! --physdev-is-in` and `addrtype --dst-type LOCAL` variants, LoadBalancer IPs as
plain portals. Where kube-proxy called EnsureRule once per rule, the testbed writes one
iptables-restore per sync: a full one flushes and rewrites the chains, a partial one deletes and
appends the changed Services' rules only.

Listener ports: the proxier allocates them (kube-proxy's PortAllocator over --proxy-port-range,
here the lowest free port of `proxy_port_range`, default 40000-65535, so that a render shows the
ports a fresh node gets), and the node's net.ipv4.ip_local_reserved_ports keeps that range out
of the kernel's ephemeral ports. The proxy process binds them and holds each NodePort open on the
node IP (claimNodePort); UDP listeners bind the node IP, the address REDIRECT sends to, so that
replies leave with the source conntrack expects.

Choices the iptables module makes, kept: NodePorts on the node IP only (`--nodeport-addresses
primary`: the NodePort rules carry `-d <node IP>/32`). Testbed extensions where the userspace
proxier had no answer (it predates traffic policies and never rejected):
- a Service port without endpoints gets no portal and a REJECT (filter chain KUBE-PORTALS-FILTER,
  the verdicts of kube-proxy's iptables mode); kube-proxy's userspace proxy accepted and closed;
- internalTrafficPolicy / externalTrafficPolicy Local: the listener of the internal or external
  portals uses topology.py's local endpoints (DROP when there are none here, as in iptables
  mode); the external one connects from the client's address (IP_TRANSPARENT; mangle
  KUBE-PORTALS-TRANSPARENT marks the replies with `-m socket --transparent`, and `ip rule fwmark
  0x10000 lookup 166` with `local 0.0.0.0/0 dev lo` delivers them to the proxy: TPROXY's return
  path), so endpoints see the client's IP as in the kernel modes.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from testbed.net.runner import NamespaceRunner
from testbed.proxy.backend import Backend, BackendOption, ServiceKey, SyncResult, register
from testbed.proxy.model import NodeInfo, ServicePort
from testbed.proxy.topology import categorize_endpoints, externally_accessible
from testbed.timescale import scaled

from .iptables import SavedState, chain_removal_text, drop_empty_nft_tables, parse_save

PORTALS_CONTAINER = "KUBE-PORTALS-CONTAINER"
PORTALS_HOST = "KUBE-PORTALS-HOST"
NODEPORT_CONTAINER = "KUBE-NODEPORT-CONTAINER"
NODEPORT_HOST = "KUBE-NODEPORT-HOST"
NODEPORT_NON_LOCAL = "KUBE-NODEPORT-NON-LOCAL"
PORTALS_FILTER = "KUBE-PORTALS-FILTER"             # testbed extension: REJECT / DROP verdicts
PORTALS_TRANSPARENT = "KUBE-PORTALS-TRANSPARENT"   # testbed extension: client-IP keeping for Local

CHAINS: tuple[tuple[str, str], ...] = (
    ("nat", PORTALS_CONTAINER), ("nat", PORTALS_HOST), ("nat", NODEPORT_CONTAINER), ("nat", NODEPORT_HOST),
    ("filter", NODEPORT_NON_LOCAL), ("filter", PORTALS_FILTER), ("mangle", PORTALS_TRANSPARENT),
)
TRANSPARENT_MARK = 0x10000         # replies to the proxy's transparent sockets
TRANSPARENT_TABLE = 166
DEFAULT_PORT_RANGE = "40000-65535"
UDP_IDLE_TIMEOUT = 0.25            # kube-proxy's --udp-timeout default (250 ms)


@dataclass(frozen=True)
class Jump:
    """iptablesInit's jumps from the built-in chains (Prepend -> -I, Append -> -A)."""
    table: str
    source: str
    target: str
    args: tuple[str, ...]
    append: bool = False

    def line(self) -> str:
        return " ".join(["-A" if self.append else "-I", self.source, *self.args, "-j", self.target])

    def saved_spec(self) -> str:
        return " ".join([*self.args, "-j", self.target])


_PORTALS = ("-m", "comment", "--comment", '"handle ClusterIPs; NOTE: this must be before the NodePort rules"')
_NODEPORTS = ("-m", "addrtype", "--dst-type", "LOCAL", "-m", "comment", "--comment",
              '"handle service NodePorts; NOTE: this must be the last rule in the chain"')
JUMPS: tuple[Jump, ...] = (
    Jump("nat", "PREROUTING", PORTALS_CONTAINER, _PORTALS),
    Jump("nat", "OUTPUT", PORTALS_HOST, _PORTALS),
    Jump("nat", "PREROUTING", NODEPORT_CONTAINER, _NODEPORTS, append=True),
    Jump("nat", "OUTPUT", NODEPORT_HOST, _NODEPORTS, append=True),
    Jump("filter", "INPUT", NODEPORT_NON_LOCAL,
         ("-m", "comment", "--comment", '"Ensure that non-local NodePort traffic can flow"')),
    Jump("filter", "INPUT", PORTALS_FILTER, ("-m", "conntrack", "--ctstate", "NEW")),
    Jump("filter", "FORWARD", PORTALS_FILTER, ("-m", "conntrack", "--ctstate", "NEW")),
    Jump("filter", "OUTPUT", PORTALS_FILTER, ("-m", "conntrack", "--ctstate", "NEW")),
    Jump("mangle", "PREROUTING", PORTALS_TRANSPARENT, ()),
)
_MARK = f"0x{TRANSPARENT_MARK:x}"
# Replies to a transparent backend socket (bound to the client's address) are marked by the
# socket match, and `ip rule fwmark` routes marked packets to the local stack: the classic TPROXY
# return path. Only arriving packets are marked, so the proxy's own packets route normally.
TRANSPARENT_RULES = (f"-A {PORTALS_TRANSPARENT} -m socket --transparent -j MARK --set-xmark {_MARK}/{_MARK}",)


# ---------------------------------------------------------------------------------------------
# The plan for one Service port


@dataclass(frozen=True)
class ListenerSpec:
    """A listening socket of the proxy (one ServiceInfo of the userspace proxier)."""
    id: str
    protocol: str
    endpoints: tuple[str, ...]
    affinity: int | None
    transparent: bool = False
    claims: tuple[int, ...] = ()       # NodePorts held open

    def message(self, port: int, node: NodeInfo) -> dict:
        return {"id": self.id, "protocol": self.protocol, "port": port,
                "bind": node.ip if self.protocol == "UDP" else "0.0.0.0", "claim": list(self.claims),
                "claim_bind": node.ip, "endpoints": list(self.endpoints), "affinity": self.affinity,
                "transparent": self.transparent}


@dataclass(frozen=True)
class Portal:
    """One address the Service answers on, and the listener that gets its traffic."""
    kind: str             # "cluster", "external", "loadbalancer", "nodeport"
    ip: str | None        # None for NodePorts
    port: int
    listener: str


@dataclass(frozen=True)
class PortPlan:
    service: str
    listeners: tuple[ListenerSpec, ...]
    portals: tuple[Portal, ...]
    filter_rules: tuple[str, ...]     # REJECT / DROP verdicts (testbed extension)


def _listener_id(port: ServicePort, external: bool = False) -> str:
    return f"{port.service_port_name}/{port.protocol}" + ("/external" if external else "")


def plan_port(port: ServicePort, node: NodeInfo) -> PortPlan:
    """Which listeners and portals a Service port gets on `node` (mergeService + openPortal)."""
    service = f"{port.namespace}/{port.name}"
    name, proto = port.service_port_name, port.protocol.lower()
    cats = categorize_endpoints(port, node.name)
    internal = cats.local if port.internal_policy_local else cats.cluster
    external = cats.local if port.external_policy_local else cats.cluster

    def verdict(target: str, why: str, ip: str | None, vport: int) -> str:
        dest = f"-d {ip}/32 " if ip else f"-d {node.ip}/32 "
        return (f'-A {PORTALS_FILTER} -m comment --comment "{name} {why}" -p {proto} -m {proto} {dest}'
                f"--dport {vport} -j {target}")

    external_portals = ([("external", ip, port.port) for ip in port.external_ips]
                        + [("loadbalancer", ip, port.port) for ip in port.load_balancer_ips]
                        + ([("nodeport", None, port.node_port)] if port.node_port else []))
    if not cats.has_any:
        rules = [verdict("REJECT", "has no endpoints", port.cluster_ip, port.port)]
        rules += [verdict("REJECT", "has no endpoints", ip, vport) for _, ip, vport in external_portals]
        return PortPlan(service, (), (), tuple(rules))
    listeners: list[ListenerSpec] = []
    portals: list[Portal] = []
    rules: list[str] = []
    internal_id = _listener_id(port)
    if internal:
        listeners.append(ListenerSpec(internal_id, port.protocol, tuple(e.address for e in internal),
                                      port.affinity_timeout))
        portals.append(Portal("cluster", port.cluster_ip, port.port, internal_id))
    else:
        rules.append(verdict("DROP", "has no local endpoints", port.cluster_ip, port.port))
    if externally_accessible(port):
        separate = port.external_policy_local or port.internal_policy_local
        external_id = _listener_id(port, external=True) if separate else internal_id
        claims = (port.node_port,) if port.node_port else ()
        if external:
            if separate:
                listeners.append(ListenerSpec(external_id, port.protocol, tuple(e.address for e in external),
                                              port.affinity_timeout, transparent=port.external_policy_local,
                                              claims=claims))
            else:
                listeners[0] = ListenerSpec(internal_id, port.protocol, listeners[0].endpoints, port.affinity_timeout,
                                            claims=claims)
            portals += [Portal(kind, ip, vport, external_id) for kind, ip, vport in external_portals]
        else:
            rules += [verdict("DROP", "has no local endpoints", ip, vport) for _, ip, vport in external_portals]
    return PortPlan(service, tuple(listeners), tuple(portals), tuple(rules))


def portal_rules(plan: PortPlan, node: NodeInfo, ports: Mapping[str, int], protocol: str, name: str) -> list[str]:
    """iptables*PortalArgs for each portal of a plan, given the listener ports."""
    proto = protocol.lower()
    rules: list[str] = []

    def common(ip: str | None, vport: int, physdev: bool = False, dst_local: bool = False) -> str:
        words = ["-m", "comment", "--comment", f'"{name}"', "-p", proto, "-m", proto, "--dport", str(vport)]
        if ip:
            words += ["-d", f"{ip}/32"]
        if physdev:
            words += ["-m", "physdev", "!", "--physdev-is-in"]
        if dst_local:
            words += ["-m", "addrtype", "--dst-type", "LOCAL"]
        return " ".join(words)

    for portal in plan.portals:
        lport = ports[portal.listener]
        redirect = f"-j REDIRECT --to-ports {lport}"
        dnat = f"-j DNAT --to-destination {node.ip}:{lport}"
        if portal.kind == "nodeport":   # openNodePort, on the node IP only (--nodeport-addresses primary)
            rules.append(f"-A {NODEPORT_CONTAINER} {common(node.ip, portal.port)} {redirect}")
            rules.append(f"-A {NODEPORT_HOST} {common(node.ip, portal.port)} {dnat}")
            rules.append(f"-A {NODEPORT_NON_LOCAL} {common(None, lport)} -m state --state NEW -j ACCEPT")
        elif portal.kind == "external":   # openOnePortal with isExternal
            rules.append(f"-A {PORTALS_CONTAINER} {common(portal.ip, portal.port, physdev=True)} {redirect}")
            rules.append(f"-A {PORTALS_CONTAINER} {common(portal.ip, portal.port, dst_local=True)} {redirect}")
            rules.append(f"-A {PORTALS_HOST} {common(portal.ip, portal.port, dst_local=True)} {dnat}")
        else:
            rules.append(f"-A {PORTALS_CONTAINER} {common(portal.ip, portal.port)} {redirect}")
            rules.append(f"-A {PORTALS_HOST} {common(portal.ip, portal.port)} {dnat}")
    return rules


# ---------------------------------------------------------------------------------------------
# Port allocation (PortAllocator)


def parse_port_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    low_port, high_port = int(low), int(high or low)
    if not 1024 <= low_port <= high_port <= 65535:
        raise ValueError(f"proxy port range {text!r}: give LOW-HIGH within 1024-65535")
    return low_port, high_port


class PortAllocator:
    """Lowest free port of the range; ports that failed to bind are skipped until released."""

    def __init__(self, port_range: str = DEFAULT_PORT_RANGE):
        self.low, self.high = parse_port_range(port_range)
        self.owner: dict[str, int] = {}
        self._used: set[int] = set()
        self._bad: set[int] = set()
        self._next = self.low

    def allocate(self, listener_id: str) -> int:
        if listener_id in self.owner:
            return self.owner[listener_id]
        port = self._next
        while port in self._used or port in self._bad:
            port += 1
        if port > self.high:
            port = next((p for p in range(self.low, self.high + 1) if p not in self._used and p not in self._bad), None)
            if port is None:
                raise RuntimeError(f"userspace proxy: no free port left in {self.low}-{self.high}")
        self.owner[listener_id] = port
        self._used.add(port)
        self._next = port + 1
        return port

    def release(self, listener_id: str) -> None:
        port = self.owner.pop(listener_id, None)
        if port is not None:
            self._used.discard(port)
            self._next = min(self._next, port)

    def mark_bad(self, listener_id: str) -> None:
        port = self.owner.get(listener_id)
        if port is not None:
            self._bad.add(port)
            self.release(listener_id)


# ---------------------------------------------------------------------------------------------
# The desired state of a node


@dataclass(frozen=True)
class ServiceRules:
    service: str
    listeners: tuple[dict, ...]       # control messages (with ports)
    rules: tuple[tuple[str, str], ...]   # (table, "-A CHAIN ...")


def _port_key(port: ServicePort) -> tuple[str, str, str, str]:
    return (port.namespace, port.name, port.port_name, port.protocol)


def build_rules(ports: Sequence[ServicePort], node: NodeInfo, allocator: PortAllocator,
                memo: dict | None = None) -> dict[str, ServiceRules]:
    """Listeners and rules of every Service. Ports of listeners that are gone are released first,
    so a new listener may take one; kept listeners keep theirs.

    `memo` (kept by the caller between calls) remembers each port's plan and rules by the port
    object's identity: the change tracker hands unchanged Services' ports over as the same
    objects, so at 10,000 Services a sync does not even hash them."""
    previous = memo if memo is not None else {}
    fresh: dict = {}
    plans = []
    for port in sorted((p for p in ports if p.cluster_ip), key=_port_key):
        entry = previous.get(id(port))
        if entry is None or entry[0] is not port or entry[1] != node:
            entry = (port, node, plan_port(port, node), None, None)
        fresh[id(port)] = entry
        plans.append(entry)
    wanted = {spec.id for entry in plans for spec in entry[2].listeners}
    for listener_id in [i for i in allocator.owner if i not in wanted]:
        allocator.release(listener_id)
    by_service: dict[str, list] = {}
    for port, _, plan, assigned_before, made in plans:
        assigned = tuple((spec.id, allocator.allocate(spec.id)) for spec in plan.listeners)
        if made is None or assigned != assigned_before:
            ports_of = dict(assigned)
            listeners = tuple(spec.message(ports_of[spec.id], node) for spec in plan.listeners)
            rules = [("nat" if not r.startswith(f"-A {NODEPORT_NON_LOCAL}") else "filter", r)
                     for r in portal_rules(plan, node, ports_of, port.protocol, port.service_port_name)]
            made = (listeners, tuple(rules) + tuple(("filter", r) for r in plan.filter_rules))
            fresh[id(port)] = (port, node, plan, assigned, made)
        service = by_service.setdefault(plan.service, [[], []])
        service[0] += made[0]
        service[1] += made[1]
    if memo is not None:
        memo.clear()
        memo.update(fresh)
    return {service: ServiceRules(service, tuple(lst), tuple(rules)) for service, (lst, rules) in by_service.items()}


def restore_text(services: Mapping[str, ServiceRules], *, jumps: Sequence[Jump] = JUMPS,
                 flush: bool = True, delete: Sequence[tuple[str, str]] = (),
                 add: Sequence[tuple[str, str]] | None = None) -> str:
    """iptables-restore input (--noflush). Full (`flush`): the chains declared (flushed) and every
    rule written; partial: `delete` (as -D) and `add` only."""
    out: list[str] = []
    rules = [r for s in services.values() for r in s.rules] if add is None else list(add)
    for table in ("nat", "filter", "mangle"):
        body: list[str] = []
        if flush:
            body += [f":{c} - [0:0]" for t, c in CHAINS if t == table]
        body += [j.line() for j in jumps if j.table == table]
        body += ["-D " + line[3:] for t, line in delete if t == table]
        body += [line for t, line in rules if t == table]
        if flush and table == "mangle":
            body += list(TRANSPARENT_RULES)
        if body:
            out += [f"*{table}", *body, "COMMIT"]
    return "\n".join(out) + "\n" if out else ""


def render_userspace(ports: Sequence[ServicePort], node: NodeInfo, port_range: str = DEFAULT_PORT_RANGE) -> str:
    """`testbed render userspace`: the listeners a fresh proxy opens, then the iptables-restore
    input of the full sync that points the portals at them."""
    services = build_rules(ports, node, PortAllocator(port_range))
    out = [f"# kube-proxy userspace mode, node {node.name}: the proxy process's listeners"]
    for rules in services.values():
        for listener in rules.listeners:
            extra = " transparent" if listener["transparent"] else ""
            extra += f" affinity {listener['affinity']}s" if listener["affinity"] is not None else ""
            extra += f" holds {','.join(map(str, listener['claim']))}" if listener["claim"] else ""
            out.append(f"# {listener['protocol']} {listener['bind']}:{listener['port']} {listener['id']} -> "
                       f"{' '.join(listener['endpoints'])}{extra}")
    out.append("# iptables-restore --noflush input:")
    return "\n".join(out) + "\n" + restore_text(services)


# ---------------------------------------------------------------------------------------------
# The applier


class ProxyProcess:
    """The proxy program in the node's namespace, and its control socket."""

    def __init__(self, runner: NamespaceRunner, run_dir: Path, udp_timeout: float = UDP_IDLE_TIMEOUT):
        self.runner = runner
        self.run_dir = Path(run_dir)
        self.control = self.run_dir / "userspace-proxy.sock"
        self.log = self.run_dir / "userspace-proxy.log"
        self.udp_timeout = udp_timeout
        self.proc = None
        self._sock: socket.socket | None = None
        self._file = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        self.stop()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log, "ab")
        self.proc = self.runner.popen([sys.executable, "-m", "testbed.workloads.userspace_proxy", "--control",
                                       str(self.control), "--udp-timeout", str(self.udp_timeout)],
                                      stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        log.close()
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the userspace proxy exited {self.proc.returncode}: {self._log_tail()}")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.control))
                self._sock, self._file = sock, sock.makefile("rwb")
                return
            except OSError:
                sock.close()
                time.sleep(0.02)
        raise RuntimeError(f"the userspace proxy did not open {self.control} within {scaled(timeout):.0f} s")

    def request(self, message: dict, timeout: float = 300.0) -> dict:
        self._sock.settimeout(scaled(timeout))
        self._file.write((json.dumps(message) + "\n").encode())
        self._file.flush()
        line = self._file.readline()
        if not line:
            raise RuntimeError(f"the userspace proxy closed its control socket: {self._log_tail()}")
        return json.loads(line)

    def stop(self) -> None:
        if self.running() and self._file is not None:
            try:
                self.request({"op": "exit"}, timeout=5)
            except Exception:
                pass
        if self._sock is not None:
            self._sock.close()
            self._sock = self._file = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=2)
            except Exception:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-500:].strip()
        except OSError:
            return ""


class UserspaceProxier:
    """Keeps one node's proxy process and its iptables portals in step with the Services.

    The first sync (and the first after a failure or a restarted process) is full: it starts the
    proxy if needed, sets the node up (reserved ports, the policy routing for transparent
    listeners), tells the proxy every listener and rewrites the chains whole. Later syncs send only
    the changed Services' listeners (an endpoint change is a balancer update; the socket stays)
    and delete/append only their rules."""

    def __init__(self, runner: NamespaceRunner, node: NodeInfo, run_dir: Path, *,
                 port_range: str = DEFAULT_PORT_RANGE, restore_command: str = "iptables-restore", process=None):
        self.runner = runner
        self.node = node
        self.port_range = port_range
        self.restore_command = restore_command
        self.save_command = restore_command[: -len("-restore")] + "-save"
        self.process = process or ProxyProcess(runner, run_dir)
        self.allocator = PortAllocator(port_range)
        self._in_sync = False
        self._installed: dict[str, ServiceRules] = {}
        self._memo: dict = {}

    def sync(self, ports: Sequence[ServicePort], changed: frozenset[ServiceKey] | None = None) -> SyncResult:
        started = time.perf_counter()
        restarted = False
        if not self.process.running():
            self.process.start()
            restarted = True
        full = not self._in_sync or changed is None or restarted
        self._in_sync = False
        if full:
            self._prepare_node()
            saved = parse_save(self.runner.run([self.save_command]).stdout)
            jumps = [j for j in JUMPS if not saved.has_jump(j)]
        desired = build_rules(ports, self.node, self.allocator, self._memo)
        if full:
            listeners = [m for s in desired.values() for m in s.listeners]
            message = {"op": "sync", "full": True, "listeners": listeners, "remove": []}
            text = restore_text(desired, jumps=jumps)
            touched = set(desired)
        else:
            touched = {f"{n}/{s}" for n, s in changed}
            old_ids = {m["id"] for s in touched for m in getattr(self._installed.get(s), "listeners", ())}
            new = [m for s in touched if s in desired for m in desired[s].listeners]
            old_messages = {m["id"]: m for s in touched for m in getattr(self._installed.get(s), "listeners", ())}
            listeners = [m for m in new if old_messages.get(m["id"]) != m]
            removed = sorted(old_ids - {m["id"] for m in new})
            message = {"op": "sync", "full": False, "listeners": listeners, "remove": removed}
            old_rules = [r for s in touched if s in self._installed for r in self._installed[s].rules]
            new_rules = [r for s in touched if s in desired for r in desired[s].rules]
            keep = set(old_rules) & set(new_rules)
            text = restore_text(desired, jumps=(), flush=False, delete=[r for r in old_rules if r not in keep],
                                add=[r for r in new_rules if r not in keep])
        seconds_render = time.perf_counter() - started
        apply_started = time.perf_counter()
        if message["listeners"] or message["remove"] or full:
            reply = self.process.request(message)
            if not reply.get("ok"):
                for listener_id in reply.get("errors", {}):
                    self.allocator.mark_bad(listener_id)
                raise RuntimeError(f"userspace proxy: {reply.get('errors')}")
        if text:
            self.runner.run([self.restore_command, "-w", "5", "--noflush", "--counters"], input=text, timeout=None)
        seconds_apply = time.perf_counter() - apply_started
        self._installed = desired
        self._in_sync = True
        rule_count = sum(len(s.rules) for s in desired.values())
        written = sum(1 for line in text.splitlines() if line.startswith(("-A ", "-I ", "-D ")))
        return SyncResult(seconds_render, seconds_apply, rule_count, tuple(sorted(touched)), full, written,
                          {"listeners": sum(len(s.listeners) for s in desired.values()),
                           "listener_updates": len(message["listeners"]) + len(message["remove"])})

    def _prepare_node(self) -> None:
        """Reserved listener ports, and policy routing that hands replies to transparent sockets back
        to the proxy (idempotent)."""
        low, high = self.allocator.low, self.allocator.high
        self.runner.run(["sysctl", "-q", "-w", f"net.ipv4.ip_local_reserved_ports={low}-{high}"])
        rules = self.runner.run(["ip", "rule", "show"]).stdout
        if f"lookup {TRANSPARENT_TABLE}" not in rules:
            self.runner.run(["ip", "rule", "add", "fwmark", f"{_MARK}/{_MARK}", "lookup", str(TRANSPARENT_TABLE)])
        self.runner.run(["ip", "route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", str(TRANSPARENT_TABLE)])

    def cleanup(self) -> None:
        """CleanupLeftovers: the jumps and chains (ours and the extensions'), the proxy process,
        the policy routing and the reserved ports."""
        self.process.stop()
        saved = parse_save(self.runner.run([self.save_command]).stdout)
        text = cleanup_text(saved)
        if text:
            self.runner.run([self.restore_command, "-w", "5", "--noflush"], input=text)
        drop_empty_nft_tables(self.runner, self.save_command)
        self.runner.run(["ip", "rule", "del", "fwmark", f"{_MARK}/{_MARK}", "lookup", str(TRANSPARENT_TABLE)], check=False)
        self.runner.run(["ip", "route", "flush", "table", str(TRANSPARENT_TABLE)], check=False)
        self.runner.run(["sysctl", "-q", "-w", "net.ipv4.ip_local_reserved_ports="], check=False)
        self._in_sync, self._installed, self._memo = False, {}, {}
        self.allocator = PortAllocator(self.port_range)

    def stop(self) -> None:
        self.process.stop()


def cleanup_text(saved: SavedState) -> str:
    """Restore input that deletes the jumps to and the chains of this mode, in every table."""
    return chain_removal_text(saved, {table: [c for t, c in CHAINS if t == table and c in saved.chains[table]]
                                      for table in ("nat", "filter", "mangle") if table in saved.chains})


# ---------------------------------------------------------------------------------------------
# Registration

RESTORE_COMMANDS = {"nft": "iptables-restore", "legacy": "iptables-legacy-restore"}


def _render(ports: Sequence[ServicePort], node: NodeInfo, layout=None) -> str:
    return render_userspace(ports, node)


def _make_proxier(ctx) -> UserspaceProxier:
    return UserspaceProxier(ctx.runner, ctx.node, ctx.run_dir,
                            restore_command=RESTORE_COMMANDS[ctx.options.get("iptables_backend", "nft")])


register(Backend(
    mode="userspace",
    summary="kube-proxy's userspace mode (before 1.26): a proxy process per node (asyncio, a user-space copy of "
            "every byte) with a listening socket per Service port, iptables KUBE-PORTALS-CONTAINER (REDIRECT) / "
            "KUBE-PORTALS-HOST (DNAT) and KUBE-NODEPORT-CONTAINER/HOST portals, round robin over a shuffled endpoint "
            "list, ClientIP affinity, retry on the next endpoint, UDP with per-client backend sockets",
    render=_render,
    make_proxier=_make_proxier,
    algorithms=("rr",),   # LoadBalancerRR is the only balancer; the lb-algorithm annotation does not apply
    required_tools=lambda options: (RESTORE_COMMANDS[options.get("iptables_backend", "nft")],
                                    RESTORE_COMMANDS[options.get("iptables_backend", "nft")][:-len("-restore")] + "-save",
                                    "ip", "sysctl"),
    options=(BackendOption("iptables_backend", ("nft", "legacy"), "nft",
                           "iptables-nft (the default of Debian and most distributions) or iptables-legacy"),),
    describe=lambda options: f"userspace (iptables {options['iptables_backend']})",
    state_command="iptables-save -t nat; ss -ltnup",
))
