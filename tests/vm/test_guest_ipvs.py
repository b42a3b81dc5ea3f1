"""Real IPVS in the guest: a round-robin virtual service with two masqueraded (NAT) real servers.

    client ns 10.0.0.2 ── 10.0.0.1 director ns (VIP 10.96.0.10 on a dummy, ipvsadm) 10.1.1.1 ── real1 10.1.1.2
                                                                                 10.1.2.1 ── real2 10.1.2.2

The real servers route back through the director (masquerading is IPVS's NAT: only the destination is
rewritten), so each answers with the client's own address, and rr alternates between them.
"""
import json
import re
import sys
import time

from testbed.vm import scaled
from tests.vm.support import sh

VIP = "10.96.0.10"
ECHO_SERVER = "testbed/workloads/echo_server.py"


def wait_for_http(netns, namespace: str, url: str, timeout: float) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if netns.run(namespace, f"curl -s -m 5 -o /dev/null -w '%{{http_code}}' {url}", check=False) == "200":
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer from {namespace}")


def test_ipvs_round_robin_over_two_masqueraded_real_servers(netns):
    sh("modprobe ip_vs && modprobe ip_vs_rr")
    client, director = netns.add("client"), netns.add("director")
    netns.link(client, "10.0.0.2/24", director, "10.0.0.1/24")
    netns.run(client, "ip route add default via 10.0.0.1")
    netns.run(director, "sysctl -qw net.ipv4.ip_forward=1")
    netns.run(director, "ip link add kube-ipvs0 type dummy")
    netns.run(director, f"ip addr add {VIP}/32 dev kube-ipvs0")
    reals = []
    for index in (1, 2):
        real = netns.add(f"real{index}")
        netns.link(director, f"10.1.{index}.1/24", real, f"10.1.{index}.2/24")
        netns.run(real, f"ip route add default via 10.1.{index}.1")
        netns.spawn(real, f"{sys.executable} -I -S {ECHO_SERVER} --pod real{index} --tcp 80")
        wait_for_http(netns, director, f"http://10.1.{index}.2/hostname.html", timeout=5)
        reals.append(f"10.1.{index}.2")

    netns.run(director, f"ipvsadm -A -t {VIP}:80 -s rr")
    for address in reals:
        netns.run(director, f"ipvsadm -a -t {VIP}:80 -r {address}:80 -m -w 1")
    table = netns.run(director, "ipvsadm -S -n")
    assert f"-A -t {VIP}:80 -s rr" in table and table.count(f"-a -t {VIP}:80 -r ") == 2, table

    answers = [json.loads(netns.run(client, f"curl -sf -m 10 http://{VIP}/")) for _ in range(4)]
    pods = [a["pod"] for a in answers]
    assert set(pods) == {"real1", "real2"} and pods[0] != pods[1] and pods[:2] == pods[2:], pods
    assert all(a["client"].startswith("10.0.0.2:") for a in answers), answers   # NAT: the client's own address
    assert all(a["podIP"] in reals and a["port"] == 80 for a in answers), answers

    # The kernel's own count agrees. Its counters are summed by the IPVS estimator every 2 s, so
    # they lag behind the connections: wait for them.
    deadline = time.monotonic() + scaled(5)
    while True:
        stats = netns.run(director, "ipvsadm -L -n --stats")
        connections = [int(line.split()[2]) for line in stats.splitlines() if re.match(r"\s*->\s+\d", line)]
        if connections == [2, 2] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert connections == [2, 2], stats
