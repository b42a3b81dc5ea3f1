"""Helpers for tests against a live emulated cluster."""
import json
import subprocess

from testbed.timescale import scaled


def curl(host, url: str, timeout: float = 3, extra: str = "") -> str:
    return host.cmd(f"curl -s -m {scaled(timeout):g} {extra} {url}").strip()


def curl_json(host, url: str, timeout: float = 3) -> dict:
    output = curl(host, url, timeout)
    return json.loads(output)


def root_network_state() -> dict:
    """What a run must leave unchanged in the root namespace."""
    def run(*args):
        return subprocess.run(args, capture_output=True, text=True).stdout
    return {"iptables": run("iptables-save"), "nft": run("nft", "list", "ruleset"),
            "routes": run("ip", "route", "show", "table", "all"), "rules": run("ip", "rule"),
            "sysctl_forward": open("/proc/sys/net/ipv4/ip_forward").read()}
