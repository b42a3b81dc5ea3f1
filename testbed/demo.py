"""`make demo` / `testbed demo`: the default cluster with the example manifests, shown working.

It brings the cluster up, applies examples/ (the manifests from the articles this project came
from, unchanged) and shows, with real traffic: a ClusterIP Service by name spreading over its
replicas, the NodePort and the LoadBalancer IP from the external host, session affinity, cluster DNS
(A, SRV, PTR, CNAME), a deleted pod being replaced while the Service keeps answering, and the rules
the chosen mode put in a node for the Service. Then it tears everything down, and runs a quick
proxy-scale sweep (1 and 1,000 Services) of every mode this kernel can run, printing its headline
table and the path of its report.
"""
from __future__ import annotations

import collections
import os
import time
from pathlib import Path

from .cluster import Cluster
from .errors import TestbedError
from .kubectl import Kubectl
from .net import addressing

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _section(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def _curl(host, url: str) -> str:
    return host.cmd(f"curl -s -m 3 {url}").strip() or "<no answer>"


def _show(host, command: str) -> None:
    print(f"$ {command}")
    print(host.cmd(command).rstrip())


def _control_plane_only() -> int:
    print("testbed demo: the emulated network needs root; showing what the control plane derives instead.\n")
    cluster = Cluster(network=False, seed=1)
    for line in cluster.apply(str(EXAMPLES)):
        print(line)
    kubectl = Kubectl(cluster)
    for argv in (["get", "pods", "-o", "wide"], ["get", "svc"], ["get", "endpointslices"], ["get", "ingress"]):
        _section("kubectl " + " ".join(argv))
        print(kubectl.run(argv).rstrip())
    return 0


def run_demo(topo: str = "default", proxy_mode: str = "iptables", sweep: bool = True) -> int:
    if os.geteuid() != 0:
        return _control_plane_only()
    started = time.monotonic()
    with Cluster(topo=topo, proxy_mode=proxy_mode, seed=1) as cluster:
        emulation = cluster.emulation
        print(f"cluster up in {time.monotonic() - started:.1f} s: topology {topo}, proxy mode {proxy_mode}, "
              f"OVS datapath {emulation.datapath.type} ({emulation.datapath.reason})")
        _section(f"kubectl apply -f {EXAMPLES.name}/")
        for line in cluster.apply(str(EXAMPLES)):
            print(line)
        kubectl = Kubectl(cluster)
        for argv in (["get", "pods", "-o", "wide"], ["get", "svc"]):
            _section("kubectl " + " ".join(argv))
            print(kubectl.run(argv).rstrip())

        client, external = cluster.client(), cluster.external()
        _section("a client pod calls http://myapp-svc/hostname.html 30 times (ClusterIP, by DNS name)")
        seen = collections.Counter(_curl(client, "http://myapp-svc/hostname.html") for _ in range(30))
        for pod, count in sorted(seen.items()):
            print(f"  {pod}: {count}")

        _section("the external host reaches the NodePort (32223) on every node, and the LoadBalancer IP")
        for index, node in enumerate(cluster.topology.nodes):
            ip = addressing.node_ip(index)
            print(f"  {node} {ip}:32223 -> {_curl(external, f'http://{ip}:32223/hostname.html')}")
        lb_ip = cluster.get("svc", "myapp-svc-lb")["status"]["loadBalancer"]["ingress"][0]["ip"]
        print(f"  LoadBalancer {lb_ip}:80 -> {_curl(external, f'http://{lb_ip}/hostname.html')}")

        _section("session affinity (myapp-sticky, ClientIP): 10 calls")
        print("  " + ", ".join(sorted(set(_curl(client, "http://myapp-sticky/hostname.html") for _ in range(10)))))

        _section("cluster DNS through the kube-dns Service (10.96.0.10)")
        cluster_ip = cluster.get("svc", "myapp-svc")["spec"]["clusterIP"]
        for command in ("dig +short myapp-svc.default.svc.cluster.local",
                        "dig +short +search myapp-svc",
                        "dig +short SRV _httpport._tcp.myapp-headless-svc.default.svc.cluster.local",
                        f"dig +short -x {cluster_ip}",
                        "dig +short CNAME external-redis-svc.default.svc.cluster.local",
                        "dig +short CNAME my-service.prod.svc.cluster.local"):
            _show(client, command)

        _section("delete a pod: its ReplicaSet replaces it and the Service keeps answering")
        victim = sorted(seen)[0]
        print(kubectl.run(["delete", "pod", victim]).rstrip())
        print(kubectl.run(["get", "pods", "-l", "app=myapp"]).rstrip())
        answers = collections.Counter(_curl(client, "http://myapp-svc/hostname.html") for _ in range(20))
        print("  answers: " + ", ".join(f"{pod} x{count}" for pod, count in sorted(answers.items())))
        if "<no answer>" in answers:
            raise TestbedError("the Service stopped answering after a pod was replaced")

        backend = cluster.backend
        if backend.state_command:
            command = backend.state_command.format(node="node1", bridge=addressing.bridge_name("node1"))
            _section(f"what the {backend.label(cluster.proxy_options)} data plane holds for myapp-svc "
                     f"({cluster_ip}) on node1: {command}")
            lines = cluster.node("node1").cmd(command).splitlines()
            chains = {word for line in lines if cluster_ip in line or "default/myapp-svc" in line
                      for word in line.split() if word.startswith(("KUBE-SVC-", "KUBE-SEP-", "service-", "endpoint-"))}
            for line in lines:
                if cluster_ip in line or "default/myapp-svc" in line or any(c in line for c in chains):
                    print("  " + line.strip())
        print(f"\ntour finished in {time.monotonic() - started:.1f} s; tearing down")
    print("torn down: no namespaces, bridges or processes left")
    if sweep:
        quick_sweep()
    print(f"\ndemo finished in {time.monotonic() - started:.1f} s")
    return 0


def quick_sweep(argv: tuple[str, ...] = ("--quick",)) -> Path:
    """`testbed experiment run proxy-scale --quick`, its report, and the headline table printed."""
    from .reports import headline, headline_blocks, to_markdown, write_report
    from .results import load
    from .experiments import run_experiment
    _section("proxy-scale --quick: every mode this kernel runs, at 1 and 1,000 Services")
    out = run_experiment("proxy-scale", list(argv))
    report = write_report(out)
    results = load(out)
    print(to_markdown(headline_blocks(headline(results.samples))).strip() or "no samples")
    for _, row in results.not_run.drop_duplicates(subset=["mode"]).iterrows():
        print(f"not run: {row['mode']}: {row['reason']}")
    print(f"report: {report.html} (and {report.markdown.name}, plots beside it)")
    return out
