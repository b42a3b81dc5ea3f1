"""Fakes for the userspace proxier's unit tests: the proxy process (what listeners it holds, as
testbed/workloads/userspace_proxy.py would after each control message) and a runner with iptables
(tests/support/fake_ipvs.FakeTables), sysctl and ip rule/route."""
from __future__ import annotations

import subprocess

from tests.support.fake_ipvs import FakeError, FakeTables


class FakeProxyProcess:
    def __init__(self):
        self.listeners: dict[str, dict] = {}
        self.messages: list[dict] = []
        self.alive = False
        self.starts = 0
        self.busy_ports: set[int] = set()     # ports the fake refuses to bind

    def running(self) -> bool:
        return self.alive

    def start(self) -> None:
        self.alive, self.listeners = True, {}
        self.starts += 1

    def stop(self) -> None:
        self.alive, self.listeners = False, {}

    def request(self, message: dict) -> dict:
        assert self.alive, "a request to a proxy that is not running"
        self.messages.append(message)
        errors = {}
        wanted = {m["id"]: m for m in message["listeners"]}
        removed = set(message["remove"]) | (set(self.listeners) - set(wanted) if message["full"] else set())
        for lid in removed:
            self.listeners.pop(lid, None)
        for lid, spec in wanted.items():
            if spec["port"] in self.busy_ports:
                errors[lid] = f"Address already in use (port {spec['port']})"
                continue
            self.listeners[lid] = spec
        ports = [s["port"] for s in self.listeners.values()]
        assert len(ports) == len(set(ports)), "two listeners on one port"
        return {"ok": not errors, "errors": errors, "listeners": len(self.listeners)}


class FakeUserspaceRunner:
    def __init__(self):
        self.tables = FakeTables()
        self.sysctls: dict[str, str] = {}
        self.ip_rules: set[str] = set()
        self.routes: set[str] = set()
        self.calls: list[tuple[list[str], str | None]] = []

    def run(self, args, input=None, check=True, timeout=120):
        args = list(args)
        self.calls.append((args, input))
        out, err, rc = "", "", 0
        try:
            if args[0] == "sysctl":
                for item in args[3:]:
                    key, _, value = item.partition("=")
                    self.sysctls[key] = value
            elif args[:3] == ["ip", "rule", "show"]:
                out = "".join(f"100: {r}\n" for r in sorted(self.ip_rules))
            elif args[:3] == ["ip", "rule", "add"]:
                self.ip_rules.add(" ".join(args[3:]).replace("fwmark", "from all fwmark"))
            elif args[:3] == ["ip", "rule", "del"]:
                before = len(self.ip_rules)
                self.ip_rules = {r for r in self.ip_rules if " ".join(args[4:]) not in r}
                rc = 0 if len(self.ip_rules) < before else 2
            elif args[:3] == ["ip", "route", "replace"]:
                self.routes.add(" ".join(args[3:]))
            elif args[:3] == ["ip", "route", "flush"]:
                self.routes = {r for r in self.routes if not r.endswith(f"table {args[4]}")}
            elif args[0].endswith("-save"):
                out = self.tables.save()
            elif args[0].endswith("-restore"):
                if "--noflush" not in args:
                    raise FakeError("the proxier must not flush the tables")
                self.tables.restore(input or "")
            else:
                raise FakeError(f"program {args[0]} not understood")
        except FakeError as error:
            rc, err = 1, str(error)
        if check and rc:
            from testbed.net.runner import CommandError
            raise CommandError(args, rc, err)
        return subprocess.CompletedProcess(args, rc, out, err)

    def rules(self, table: str, chain: str) -> list[str]:
        return self.tables.chains[table].get(chain, [])
