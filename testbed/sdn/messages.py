"""The control socket's messages: JSON lines between the testbed (SdnClient) and the controller.

Every request is one JSON object on one line with an `op` and an `id`; the controller answers each
with one line holding the same `id`, `ok`, and either the result or an `error`. Requests that
change state are answered after every connected bridge confirmed the change (OpenFlow barrier):

| op | fields | answer |
|---|---|---|
| ping | | `ofp_port` |
| set_state | `topology` (Wiring.to_json), `services` (ServicePort list) | `programmed`: per node the plan summary; `pending`: nodes whose bridge is not connected yet (they get everything when they connect) |
| upsert_service | `namespace`, `name`, `ports` (all ports of the Service), `announcements` ({ip: node}, optional) | as set_state |
| delete_service | `namespace`, `name` | as set_state |
| add_pod | `pod` (Pod fields) | as set_state |
| remove_pod | `namespace`, `name` | as set_state |
| status | | `bridges`: {node: {bridge, dpid, connected, synced, flows, groups, last_resync, connected_at, synced_at, connections}} |
| wait_programmed | `nodes` (optional), `seconds`, `after` (epoch seconds, optional) | `bridges` once every listed bridge is connected and in sync (by a resync after `after`) |
| connections | `node` | reactive connection counts as IPVS keeps them: `connections` {instance id: {endpoint: active}}, `inactive` {instance id: {endpoint: inactive}} |
"""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Mapping

from testbed.proxy.model import Endpoint, ServicePort
from testbed.sdn.wiring import Pod

CHANGE_OPS = frozenset({"set_state", "upsert_service", "delete_service", "add_pod", "remove_pod"})
OPS = CHANGE_OPS | {"ping", "status", "wait_programmed", "connections"}


class ProtocolError(ValueError):
    pass


def port_to_json(port: ServicePort) -> dict:
    data = asdict(port)
    data["lb_weights"] = dict(port.lb_weights)
    return data


def port_from_json(data: Mapping[str, Any]) -> ServicePort:
    fields = dict(data)
    fields["endpoints"] = tuple(Endpoint(**e) for e in fields.get("endpoints", ()))
    for name in ("external_ips", "load_balancer_ips", "load_balancer_source_ranges"):
        fields[name] = tuple(fields.get(name) or ())
    fields["lb_weights"] = dict(fields.get("lb_weights") or {})
    return ServicePort(**fields)


def pod_to_json(pod: Pod) -> dict:
    return asdict(pod)


def pod_from_json(data: Mapping[str, Any]) -> Pod:
    return Pod(**data)


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes | str) -> dict:
    try:
        message = json.loads(line)
    except json.JSONDecodeError as error:
        raise ProtocolError(f"not JSON: {error}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message is a JSON object")
    return message


def request(op: str, request_id: int, **fields: Any) -> dict:
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r}")
    return {"op": op, "id": request_id, **fields}
