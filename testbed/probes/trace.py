"""Which rule or flow a connection to a Service met, in whichever data plane the cluster runs.

The method follows what is in the client's node, not the mode's name:
- OpenFlow (a mode whose backend programs the bridges): `ovs-appctl ofproto/trace` of the client's
  first packet on its node bridge; the trace follows the conntrack recirculations with ct_state
  trk,new (its default), as a new connection would; the matched flows table by table.
- nftables (kube-proxy's nftables mode, and iptables-nft, whose rules are nftables rules): a
  `meta nftrace set 1` rule for the probe's packets in a table of its own (`testbed-trace`, at
  priority raw - 50, so it comes before every other hook) and `nft monitor trace` in the node's
  namespace while the client connects once; the rules that matched, chain by chain.
- iptables-legacy: its TRACE target logs through nf_log, which in a namespace other than the
  host's logs nothing unless the host-wide sysctl nf_log_all_netns is set (the testbed does not
  touch the host): instead the packet counters of `iptables-legacy-save -c` before and after the
  connection tell which rules it passed.
Everything runs inside the node's namespace and is removed afterwards.
"""
from __future__ import annotations

import re
import subprocess
import shlex
import time

from ..errors import TestbedError
from ..net import addressing
from ..net.runner import NamespaceRunner


TRACE_TABLE = "testbed-trace"
_OFPROTO_STEP = re.compile(r"^\s*(\d+)\.\s+(.*)$")
_COUNTED_RULE = re.compile(r"^\[(\d+):(\d+)\]\s+(-A\s+\S+.*)$")


def nft_trace_rules(source_ip: str, vip: str, port: int) -> str:
    return (f"add table ip {TRACE_TABLE}\n"
            f"add chain ip {TRACE_TABLE} pre {{ type filter hook prerouting priority -350; }}\n"
            f"add rule ip {TRACE_TABLE} pre ip saddr {source_ip} ip daddr {vip} tcp dport {port} meta nftrace set 1\n")


def matched_from_nft_trace(text: str) -> list[str]:
    """The rules of the first traced packet, in order ("table chain: rule"), without the trace's own
    table (pure; input: `nft monitor trace` output)."""
    first_id, steps = None, []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 6 or words[0] != "trace" or words[1] != "id":
            continue
        trace_id, family, table, chain, kind = words[2], words[3], words[4], words[5], words[6] if len(words) > 6 else ""
        first_id = first_id or trace_id
        if trace_id != first_id or table == TRACE_TABLE or kind != "rule":
            continue
        rule = " ".join(words[7:])
        steps.append(f"{family} {table} {chain}: {rule}")
    return steps


def counted_rules(save_text: str) -> dict[str, int]:
    """`iptables-save -c` -> {"table: -A CHAIN rule": packets} (pure)."""
    table, counts = "", {}
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:]
            continue
        match = _COUNTED_RULE.match(line)
        if match:
            counts[f"{table}: {match.group(3)}"] = counts.get(f"{table}: {match.group(3)}", 0) + int(match.group(1))
    return counts


def matched_from_counters(before: str, after: str) -> list[str]:
    """The rules whose packet counters grew between two `iptables-save -c` dumps, in dump order."""
    old = counted_rules(before)
    return [rule for rule, packets in counted_rules(after).items() if packets > old.get(rule, 0)]


def matched_from_ofproto(text: str) -> list[str]:
    """The flows an `ofproto/trace` met, as "table N: match, actions" lines (pure)."""
    steps, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        match = _OFPROTO_STEP.match(line)
        if not match:
            continue
        actions = lines[i + 1].strip() if i + 1 < len(lines) and not _OFPROTO_STEP.match(lines[i + 1]) else ""
        steps.append(f"table {match.group(1)}: {match.group(2)}" + (f" -> {actions}" if actions else ""))
    return steps


def _connect_once(client, vip: str, port: int) -> None:
    client.cmd(f"timeout 2 bash -c {shlex.quote(f'exec 3<>/dev/tcp/{vip}/{port}')} 2>/dev/null; true")


def trace(cluster, service: str, namespace: str = "default", port: int | str | None = None, client=None) -> dict:
    """Trace one connection from a pod (default: the client pod) to the Service's VIP."""
    from . import next_hop, resolve_mac, service_target
    target = service_target(cluster, service, namespace, port)
    vip, vport = target["vip"], target["port"]
    client = client or cluster.client()
    pod = cluster.get("pod", client.name)
    node_name = pod["spec"]["nodeName"]
    node = cluster.node(node_name)
    runner = NamespaceRunner(pid=node.pid)
    record = {"target": f"{vip}:{vport}", "service": target["service"], "node": node_name, "client": client.name}
    if cluster.backend.needs_openflow:
        mac = client.cmd("ip -o link show eth0").split()
        src_mac = mac[mac.index("link/ether") + 1]
        gateway_mac = resolve_mac(client, next_hop(client, vip)) or ""
        in_port = client.intf("eth0").link.intf2.name
        flow = (f"in_port={in_port},tcp,dl_src={src_mac},dl_dst={gateway_mac},nw_src={client.IP()},nw_dst={vip},"
                f"nw_ttl=64,tp_src=45678,tp_dst={vport},tcp_flags=0x002")  # SYN: an exact value, not a match
        # ovs-appctl talks to ovs-vswitchd over its control socket: a command, no traffic
        # (each ct action's recirculation is followed with ct_state trk,new: ofproto/trace's default)
        output = NamespaceRunner().run(["ovs-appctl", "ofproto/trace", addressing.bridge_name(node_name), flow],
                                       check=False)
        text = output.stdout + output.stderr
        return {**record, "method": "ofproto/trace", "matched": matched_from_ofproto(text), "raw": text}
    tables = runner.run(["nft", "list", "tables"], check=False).stdout.strip()
    if tables:
        runner.run(["nft", "-f", "-"], input=nft_trace_rules(client.IP(), vip, vport))
        monitor = runner.popen(["nft", "monitor", "trace"], stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.3)
            _connect_once(client, vip, vport)
            time.sleep(0.3)
        finally:
            monitor.terminate()
            text = monitor.communicate(timeout=5)[0]
            runner.run(["nft", "delete", "table", "ip", TRACE_TABLE], check=False)
        return {**record, "method": "nft monitor trace", "matched": matched_from_nft_trace(text), "raw": text}
    before = runner.run(["iptables-legacy-save", "-c"], check=False).stdout
    if not before.strip():
        raise TestbedError(f"node {node_name} has neither nftables nor iptables-legacy rules to trace")
    _connect_once(client, vip, vport)
    after = runner.run(["iptables-legacy-save", "-c"]).stdout
    return {**record, "method": "iptables-legacy packet counters", "matched": matched_from_counters(before, after),
            "raw": after}
