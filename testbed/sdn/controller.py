"""The SDN controller: an OS-Ken (Ryu API) OpenFlow 1.3 app, a thin shell over state.py.

    python -m testbed.sdn.controller --ofp-port 6653 --socket /run/testbed/sdn.sock

It listens for switches on 127.0.0.1 only and for the testbed on a unix socket (messages.py).
What it does with each event:
- a bridge connects (again): full resync. It reads the bridge's flows (flow stats) and groups,
  adds what is missing, deletes what is extra (by cookie), keeps per-connection and affinity flows
  of live Services (adopting connection flows into the counts) and ends with a barrier. Since the
  bridges run with fail_mode secure and conntrack state lives in the datapath, a controller
  restart leaves established connections alone: equal cookies mean equal flows, nothing moves.
- a request on the socket: state.py computes what changed per bridge; the plans go out as one
  batch per bridge, each ending with a barrier; the answer comes after every barrier reply.
- a packet-in: from a reactive Service, choose (state.ReactiveSelector), install the
  per-connection flow and send the packet on; from a Service without endpoints, answer with a
  TCP RST / ICMP port unreachable (packets.py).
- a flow-removed of a per-connection flow: the connection count goes down.

OS-Ken runs its apps on native threads here (OSKEN_HUB_TYPE defaults to "native"): event handlers
run on the app's event thread and must not wait for switch replies (those arrive as events on the
same thread), so resyncs and socket requests run on their own threads and wait there.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import logging
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import controller as ofp_controller
from os_ken.controller import ofp_event
from os_ken.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.packet import ipv4, packet, tcp, udp
from os_ken.ofproto import ofproto_v1_3 as ofp

from testbed.sdn import messages, openflow
from testbed.sdn.flows import (
    IN_PORT, KIND_CONNECTION, L4_FIELDS, Output, cookie_kind, cookie_owner)
from testbed.sdn.packets import rejection
from testbed.sdn.pipeline import FLAG_REACTIVE, REG_FLAGS, REG_INSTANCE, T_CLOSING
from testbed.sdn.state import ClusterState, Plan, ReactiveSelector, instance_for_connection
from testbed.sdn.wiring import Wiring

LOG = logging.getLogger("testbed.sdn.controller")


def guarded(handler):
    """Log a handler's exception instead of raising it: on OS-Ken's native hub, hub.TaskExit is
    Exception itself, so any exception escaping a handler silently ends the app's event loop."""
    def run(self, ev):
        try:
            handler(self, ev)
        except Exception:
            LOG.exception("%s failed", handler.__name__)
    run.__name__ = handler.__name__
    return run
CHUNK_BYTES = 256 * 1024          # flow-mods are sent in chunks of this size
REPLY_TIMEOUT = 120.0


@dataclass
class Settings:
    socket_path: str = "/run/testbed/sdn.sock"
    ofp_port: int = 6653


SETTINGS = Settings()


@dataclass
class Link:
    """One connected bridge."""
    datapath: object
    dpid: int
    node: str | None = None
    synced: bool = False
    errors: list = field(default_factory=list)     # (xid, text)
    last_resync: dict | None = None                # summary of the last (re)connect resync
    connected_at: float = field(default_factory=time.time)
    synced_at: float | None = None                 # epoch seconds of the last completed resync


@contextmanager
def collector_paused():
    """The desired state is large and long-lived (10,000 Services: ~40,000 flow objects per bridge)
    and a change allocates many objects at once: the cyclic garbage collector would walk the whole
    state again and again, which measured three times slower. Pause it during a change and freeze
    what survives, so later collections skip it (the state has no reference cycles to collect)."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


class Replies:
    """Waiters for switch replies by xid; handlers (event thread) deliver, requests wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[threading.Event, list, int]] = {}
        self._failed: set[int] = set()

    def expect(self, xid: int, dpid: int) -> None:
        with self._lock:
            self._pending[xid] = (threading.Event(), [], dpid)

    def deliver(self, xid: int, body, done: bool = True) -> None:
        with self._lock:
            waiter = self._pending.get(xid)
        if waiter is None:
            return
        if body is not None:
            waiter[1].extend(body)
        if done:
            waiter[0].set()

    def wait(self, xid: int, timeout: float = REPLY_TIMEOUT) -> list:
        with self._lock:
            event, body, _ = self._pending[xid]
        ok = event.wait(timeout)
        with self._lock:
            self._pending.pop(xid, None)
            failed = xid in self._failed
            self._failed.discard(xid)
        if failed:
            raise ConnectionError(f"bridge disconnected before answering xid {xid:#x}")
        if not ok:
            raise TimeoutError(f"no reply to xid {xid:#x} within {timeout}s")
        return body

    def fail(self, dpid: int) -> None:
        """Wake everyone waiting for a bridge that went away."""
        with self._lock:
            for xid, (event, _, owner) in self._pending.items():
                if owner == dpid:
                    self._failed.add(xid)
                    event.set()


class SdnController(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.state = ClusterState()
        self.selector = ReactiveSelector()
        self.lock = threading.RLock()          # state, selector, links: held briefly, never while waiting
        self.apply_lock = threading.RLock()    # one change or resync at a time, held while waiting
        self.synced = threading.Condition(self.lock)
        self.links: dict[int, Link] = {}
        self.replies = Replies()
        self._xids = itertools.count(0x40000000)
        self.server: socket.socket | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self):
        thread = super().start()
        threading.Thread(target=self._serve_socket, name="sdn-socket", daemon=True).start()
        return thread

    def stop_serving(self) -> None:
        if self.server is not None:
            self.server.close()
        Path(SETTINGS.socket_path).unlink(missing_ok=True)

    # --- switch events -----------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def _state_change(self, ev):
        datapath = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            with self.lock:
                self.links[datapath.id] = Link(datapath, datapath.id)
            LOG.info("bridge %#x connected", datapath.id)
            threading.Thread(target=self._resync_quietly, args=(datapath.id,), daemon=True).start()
        elif ev.state == DEAD_DISPATCHER and datapath.id is not None:
            with self.lock:
                link = self.links.get(datapath.id)
                if link is not None and link.datapath is datapath:
                    del self.links[datapath.id]
                    self.replies.fail(datapath.id)
                    if link.node:
                        self.state.forget_installed(link.node)
                        self.selector.forget_node(link.node)
            LOG.info("bridge %#x disconnected", datapath.id)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @guarded
    def _barrier_reply(self, ev):
        self.replies.deliver(ev.msg.xid, None)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def _flow_stats_reply(self, ev):
        self.replies.deliver(ev.msg.xid, ev.msg.body, done=not ev.msg.flags & ofp.OFPMPF_REPLY_MORE)

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def _group_desc_reply(self, ev):
        self.replies.deliver(ev.msg.xid, ev.msg.body, done=not ev.msg.flags & ofp.OFPMPF_REPLY_MORE)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    @guarded
    def _error(self, ev):
        msg = ev.msg
        text = f"type={msg.type} code={msg.code} data={bytes(msg.data[:64]).hex()}"
        LOG.error("bridge %#x error for xid %#x: %s", msg.datapath.id, msg.xid, text)
        with self.lock:
            link = self.links.get(msg.datapath.id)
            if link is not None:
                link.errors.append((msg.xid, text))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def _packet_in(self, ev):
        msg = ev.msg
        datapath = msg.datapath
        with self.lock:
            link = self.links.get(datapath.id)
            node = link.node if link else None
        if node is None:
            return
        in_port = msg.match.get("in_port")
        flags = msg.match.get(REG_FLAGS, 0)
        if msg.table_id == T_CLOSING:
            fields = packet_fields(bytes(msg.data))   # post-DNAT: the connection's flow key
            if fields is not None:
                sport, dport = L4_FIELDS[fields["ip_proto"]]
                with self.lock:
                    self.selector.on_closing(node, (fields["ipv4_src"], fields[sport], fields["ipv4_dst"],
                                                    fields[dport], fields["ip_proto"]))
        elif flags & FLAG_REACTIVE:
            self._choose(datapath, node, msg, in_port, flags)
        else:
            answer = rejection(bytes(msg.data))
            if answer is not None:
                datapath.send_msg(datapath.ofproto_parser.OFPPacketOut(
                    datapath, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                    actions=[openflow.ofp_action(Output(IN_PORT))], data=answer))

    def _choose(self, datapath, node: str, msg, in_port: int, flags: int) -> None:
        fields = packet_fields(bytes(msg.data))
        if fields is None:
            return
        with self.lock:
            instance = self.state.instances_for(node).get(msg.match.get(REG_INSTANCE, 0))
            if instance is None:
                return
            choice = self.selector.on_packet_in(node, instance, flags, fields)
        if choice is None:
            return
        if choice.tracking_flow is not None:
            datapath.send_msg(openflow.flow_mod(choice.tracking_flow, datapath))
        datapath.send_msg(datapath.ofproto_parser.OFPPacketOut(
            datapath, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
            actions=[openflow.ofp_action(a) for a in choice.packet_out_actions], data=bytes(msg.data)))

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    @guarded
    def _flow_removed(self, ev):
        msg = ev.msg
        if cookie_kind(msg.cookie) != KIND_CONNECTION:
            return
        key = connection_key(msg.match)
        with self.lock:
            link = self.links.get(msg.datapath.id)
            if link is not None and link.node and key is not None:
                self.selector.on_flow_removed(link.node, key)

    # --- resync --------------------------------------------------------------------------------------
    def _resync_quietly(self, dpid: int) -> None:
        try:
            self.resync(dpid)
        except Exception:                                  # a thread must not die silently
            LOG.exception("resync of bridge %#x failed", dpid)

    def resync(self, dpid: int) -> tuple[str, dict] | None:
        with self.apply_lock, collector_paused():
            with self.lock:
                link = self.links.get(dpid)
                bridge = self.state.topology.bridge_by_dpid(dpid)
                if link is None:
                    return None
                if bridge is None:
                    LOG.info("bridge %#x is not in the topology (yet); waiting for state", dpid)
                    return None
                link.node, link.synced = bridge.node, False
            datapath = link.datapath
            started = time.monotonic()
            flows = self._request(datapath, datapath.ofproto_parser.OFPFlowStatsRequest(
                datapath, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0, datapath.ofproto_parser.OFPMatch()))
            groups = self._request(datapath, datapath.ofproto_parser.OFPGroupDescStatsRequest(datapath, 0))
            with self.lock:
                plan, stale = self.state.resync_plan(bridge.node, [f.cookie for f in flows], [g.group_id for g in groups])
                self._adopt_connections(bridge.node, flows)
            deletes = [openflow.delete_flow_strict(datapath, flows[i].table_id, flows[i].priority, flows[i].match,
                                                   flows[i].cookie) for i in stale]
            first, last = self._send_plan(datapath, plan, extra_deletes=deletes)
            self._barrier(datapath)
            summary = plan.summary()
            summary["flows_deleted"] += len(deletes)
            summary["errors"] = self._errors_between(dpid, first, last)
            summary["seconds"] = round(time.monotonic() - started, 4)
            summary["flows_on_switch"] = len(flows)
            with self.synced:
                link.synced = dpid in self.links and self.links[dpid] is link
                link.last_resync, link.synced_at = summary, time.time()
                self.synced.notify_all()
            LOG.info("bridge %s resynced in %.2fs: %d flows on switch, %s", bridge.name,
                     time.monotonic() - started, len(flows), summary)
            return bridge.node, summary

    def _adopt_connections(self, node: str, flows) -> None:
        instances = self.state.instances_for(node)
        for stats in flows:
            if cookie_kind(stats.cookie) != KIND_CONNECTION:
                continue
            key = connection_key(stats.match)
            instance = instance_for_connection(instances, cookie_owner(stats.cookie), f"{key[2]}:{key[3]}") if key else None
            if instance is not None:
                self.selector.adopt(node, instance, key)

    # --- sending -------------------------------------------------------------------------------------
    def _next_xid(self) -> int:
        with self.lock:
            return next(self._xids) & 0xFFFFFFFF

    def _request(self, datapath, msg) -> list:
        xid = self._next_xid()
        msg.set_xid(xid)
        self.replies.expect(xid, datapath.id)
        datapath.send_msg(msg)
        return self.replies.wait(xid)

    def _barrier(self, datapath) -> None:
        self._request(datapath, datapath.ofproto_parser.OFPBarrierRequest(datapath))

    def _send_plan(self, datapath, plan: Plan, extra_deletes=()) -> tuple[int, int]:
        """Send a plan in its order (groups, adds, deletes, group deletes); returns its xid range."""
        first = self._next_xid()
        for group in plan.add_groups:
            self._send(datapath, openflow.group_mod(group, datapath, ofp.OFPGC_ADD))
        for group in plan.modify_groups:
            self._send(datapath, openflow.group_mod(group, datapath, ofp.OFPGC_MODIFY))
        self._send_bulk(datapath, [openflow.encode_flow_mod(f, self._next_xid()) for f in plan.add_flows])
        self._send_bulk(datapath, [openflow.encode_delete_strict(f, self._next_xid()) for f in plan.delete_flows])
        for msg in extra_deletes:
            self._send(datapath, msg)
        for cookie, mask in plan.delete_cookies:
            self._send(datapath, openflow.delete_cookie(datapath, cookie, mask))
        for group_id in plan.delete_groups:
            self._send(datapath, openflow.delete_group(datapath, group_id))
        return first, self._next_xid()

    def _send(self, datapath, msg) -> None:
        msg.set_xid(self._next_xid())
        datapath.send_msg(msg)

    @staticmethod
    def _send_bulk(datapath, encoded: list[bytes]) -> None:
        chunk, size = [], 0
        for buf in encoded:
            chunk.append(buf)
            size += len(buf)
            if size >= CHUNK_BYTES:
                datapath.send(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            datapath.send(b"".join(chunk))

    def _errors_between(self, dpid: int, first: int, last: int) -> list[str]:
        with self.lock:
            link = self.links.get(dpid)
            if link is None:
                return ["bridge disconnected"]
            found = [text for xid, text in link.errors if first <= xid <= last]
            link.errors = [(x, t) for x, t in link.errors if not first <= x <= last]
            return found

    # --- requests from the testbed ----------------------------------------------------------------------
    def handle(self, request: dict) -> dict:
        op = request.get("op")
        if op == "ping":
            return {"ok": True, "ofp_port": SETTINGS.ofp_port, "ofp_listening": ofp_listening(SETTINGS.ofp_port)}
        if op == "status":
            return {"ok": True, "bridges": self.status()}
        if op == "wait_programmed":
            return self.wait_programmed(request.get("nodes"), float(request.get("seconds", 30)),
                                        float(request.get("after") or 0))
        if op == "connections":
            with self.lock:
                node = request["node"]
                instances = self.state.instances_for(node)
                return {"ok": True, "connections": {str(i): self.selector.active(node, i) for i in instances},
                        "inactive": {str(i): self.selector.inactive(node, i) for i in instances}}
        if op in messages.CHANGE_OPS:
            return self.change(request)
        raise messages.ProtocolError(f"unknown op {op!r}")

    def change(self, request: dict) -> dict:
        """Apply a change to the desired state, program every connected bridge, answer after the
        barrier replies (per node: what was sent and the switch's errors)."""
        with self.apply_lock, collector_paused():
            started = time.monotonic()
            with self.lock:
                self._apply(request)
                targets = [(link, self.state.take_plan(link.node)) for link in self.links.values()
                           if link.synced and self._names_node(link)]
                unsynced = [link.dpid for link in self.links.values() if not link.synced or not self._names_node(link)]
                computed = time.monotonic()
            programmed = self._program(targets)
        for dpid in unsynced:        # bridges that connected before the state named them (or failed a resync)
            result = self.resync(dpid)
            if result is not None:
                programmed[result[0]] = result[1]
        with self.lock:
            connected = {link.node for link in self.links.values() if link.node}
            pending = sorted({b.node for b in self.state.topology.bridges} - set(programmed) - connected)
        errors = [e for summary in programmed.values() for e in summary.get("errors", [])]
        return {"ok": not errors, "programmed": programmed, "pending": pending,
                "compute_seconds": round(computed - started, 4), "seconds": round(time.monotonic() - started, 4),
                **({"error": f"switch errors: {errors[:5]}"} if errors else {})}

    def _apply(self, request: dict) -> None:
        op = request["op"]
        if op == "set_state":
            self.state.set_state(Wiring.from_json(request["topology"]),
                                 [messages.port_from_json(p) for p in request.get("services", ())])
        elif op == "upsert_service":
            self.state.upsert_service(request["namespace"], request["name"],
                                      [messages.port_from_json(p) for p in request.get("ports", ())],
                                      request.get("announcements"))
        elif op == "delete_service":
            self.state.delete_service(request["namespace"], request["name"])
        elif op == "add_pod":
            self.state.add_pod(messages.pod_from_json(request["pod"]))
        elif op == "remove_pod":
            self.state.remove_pod(request["namespace"], request["name"])

    def _names_node(self, link: Link) -> bool:
        bridge = self.state.topology.bridge_by_dpid(link.dpid)
        return bridge is not None and bridge.node == link.node

    def _program(self, targets: list) -> dict:
        """Send every bridge its plan, then wait for each barrier (bridges work in parallel)."""
        programmed, sent = {}, []
        for link, plan in targets:
            if len(plan):
                sent.append((link, plan, *self._send_plan(link.datapath, plan)))
            else:
                programmed[link.node] = plan.summary() | {"errors": []}
        for link, plan, first, last in sent:
            try:
                self._barrier(link.datapath)
                errors = self._errors_between(link.dpid, first, last)
            except (ConnectionError, TimeoutError) as error:
                errors = [str(error)]
            programmed[link.node] = plan.summary() | {"errors": errors}
        return programmed

    def status(self) -> dict:
        with self.lock:
            links = {link.node: link for link in self.links.values() if link.node}
            return {b.node: {"bridge": b.name, "dpid": b.dpid, "connected": b.node in links,
                             "synced": b.node in links and links[b.node].synced,
                             "flows": self.state.flow_count(b.node), "groups": self.state.group_count(b.node),
                             "last_resync": links[b.node].last_resync if b.node in links else None,
                             "connected_at": links[b.node].connected_at if b.node in links else None,
                             "synced_at": links[b.node].synced_at if b.node in links else None,
                             "connections": sum(1 for key in self.selector.connections if key[0] == b.node)}
                    for b in self.state.topology.bridges}

    def wait_programmed(self, nodes, timeout: float, after: float = 0.0) -> dict:
        """Wait until the bridges are connected and in sync, by a resync that ended after `after`
        (epoch seconds; e.g. the time ovs-vswitchd was restarted) if given."""
        deadline = time.monotonic() + timeout
        with self.synced:
            while True:
                status = self.status()
                wanted = nodes or list(status)
                if all(status.get(n, {}).get("synced") and (status[n]["synced_at"] or 0) >= after for n in wanted):
                    return {"ok": True, "bridges": status}
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return {"ok": False, "bridges": status, "error": f"not programmed within {timeout}s"}
                self.synced.wait(min(remaining, 0.5))

    # --- the control socket -----------------------------------------------------------------------------
    def _serve_socket(self) -> None:
        path = Path(SETTINGS.socket_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        os.chmod(path, 0o600)
        server.listen(16)
        self.server = server
        LOG.info("control socket %s, OpenFlow on 127.0.0.1:%d", path, SETTINGS.ofp_port)
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_client, args=(conn,), daemon=True).start()

    def _serve_client(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            for line in reader:
                request_id = None
                try:
                    request = messages.decode(line)
                    request_id = request.get("id")
                    answer = self.handle(request)
                except Exception as error:       # answer every request, even a broken one
                    LOG.exception("request failed")
                    answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
                conn.sendall(messages.encode({"id": request_id, **answer}))


# --- helpers (pure) ------------------------------------------------------------------------------------
def packet_fields(frame: bytes) -> dict | None:
    """The 5-tuple fields of a packet-in's packet, named as in flows."""
    pkt = packet.Packet(frame)
    ip = pkt.get_protocol(ipv4.ipv4)
    segment = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
    if ip is None or segment is None:
        return None
    sport, dport = L4_FIELDS[ip.proto]
    return {"ipv4_src": ip.src, "ipv4_dst": ip.dst, "ip_proto": ip.proto,
            sport: segment.src_port, dport: segment.dst_port}


def connection_key(match) -> tuple | None:
    """(src, sport, dst, dport, proto) of a per-connection flow's match."""
    proto = match.get("ip_proto")
    if proto not in L4_FIELDS:
        return None
    sport, dport = L4_FIELDS[proto]
    return match.get("ipv4_src"), match.get(sport), match.get("ipv4_dst"), match.get(dport), proto


def ofp_listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1/0.0.0.0:port in this network namespace."""
    wanted = f":{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1].endswith(wanted) and line.split()[3] == "0A" for line in lines)


def notice_disconnects() -> None:
    """Make OS-Ken 4.2.2 report a lost switch connection on its native-thread hub.

    When a switch goes away, Datapath.serve() joins its sender thread, which waits on an empty
    queue; the native hub cannot kill threads, so serve() never returns and the datapath never
    becomes DEAD (no disconnect event, no resync on reconnect). After the receive loop ends we
    queue one last message, as closing the socket: the sender fails on the closed socket, drains
    its queue and exits, and serve() completes normally."""
    if getattr(ofp_controller.Datapath, "_testbed_wakes_sender", False):
        return
    receive = ofp_controller.Datapath._recv_loop

    def receive_then_wake_sender(self):
        try:
            receive(self)
        finally:
            if self.send_q is not None:
                self.send(b"", close_socket=True)

    ofp_controller.Datapath._recv_loop = receive_then_wake_sender
    ofp_controller.Datapath._testbed_wakes_sender = True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed.sdn.controller", description=__doc__.split("\n")[0])
    parser.add_argument("--ofp-port", type=int, default=6653)
    parser.add_argument("--socket", default=SETTINGS.socket_path)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    SETTINGS.socket_path, SETTINGS.ofp_port = args.socket, args.ofp_port
    cfg.CONF(args=["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(args.ofp_port)], project="os_ken")

    def terminate(signum, _frame):
        LOG.info("signal %d: stopping", signum)
        for app in app_manager.AppManager.get_instance().applications.values():
            if isinstance(app, SdnController):
                app.stop_serving()
        logging.shutdown()
        os._exit(0)     # OS-Ken's native-thread hub cannot stop its threads; flows stay on the bridges

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    notice_disconnects()
    try:
        app_manager.AppManager.run_apps(["testbed.sdn.controller"])
    except Exception:
        LOG.exception("controller stopped")
    os._exit(1)     # run_apps returns only when a service thread died (e.g. the OpenFlow port was taken)


if __name__ == "__main__":
    # Run main() of the importable module, not of __main__: OS-Ken loads the app class by module
    # name, and SETTINGS must be the one that class reads.
    from testbed.sdn.controller import main as module_main
    module_main()
