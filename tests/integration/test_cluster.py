"""The emulated cluster carries real traffic: Services by name, NodePorts, LoadBalancer IPs, DNS,
affinity, traffic policies, no-endpoint rejection, hairpin - in every proxy mode."""
import collections
import math
import subprocess
import time
from pathlib import Path

from testbed.net import addressing
from testbed.timescale import scaled

from tests.support.live import curl, curl_json

NODE_IPS = [addressing.node_ip(i) for i in range(3)]


def is_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def myapp_pods(cluster) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.get("pods") if p["metadata"]["name"].startswith("myapp-")}


def test_client_reaches_service_by_name_and_requests_spread(live):
    client = live.client()
    seen = collections.Counter(curl(client, "http://myapp-svc/hostname.html") for _ in range(40))
    assert set(seen) == myapp_pods(live), seen


def test_echo_answers_json_with_pod_namespace_path_host_method_headers(live):
    answer = curl_json(live.client(), "http://myapp-svc.default.svc.cluster.local/some/path?x=1")
    assert answer["pod"] in myapp_pods(live)
    assert answer["namespace"] == "default" and answer["path"] == "/some/path?x=1"
    assert answer["host"] == "myapp-svc.default.svc.cluster.local" and answer["method"] == "GET"
    assert "User-Agent" in answer["headers"]


def test_nodeport_answers_from_the_external_host_on_every_node(live):
    external = live.external()
    for ip in NODE_IPS:
        assert curl(external, f"http://{ip}:32223/hostname.html") in myapp_pods(live)


def test_loadbalancer_ip_answers_from_the_external_host(live):
    lb_ip = live.get("svc", "myapp-svc-lb")["status"]["loadBalancer"]["ingress"][0]["ip"]
    external = live.external()
    seen = {curl(external, f"http://{lb_ip}/hostname.html") for _ in range(20)}
    assert seen == myapp_pods(live)


def test_cluster_dns_answers_a_srv_ptr_cname(live):
    client = live.client()
    cluster_ip = live.get("svc", "myapp-svc")["spec"]["clusterIP"]
    assert client.cmd("dig +short myapp-svc.default.svc.cluster.local").split() == [cluster_ip]
    assert client.cmd("dig +short +search myapp-svc").split() == [cluster_ip]  # search path, ndots:5
    pod_ips = sorted(p["status"]["podIP"] for p in live.get("pods") if p["metadata"]["name"].startswith("myapp-"))
    assert sorted(client.cmd("dig +short myapp-headless-svc.default.svc.cluster.local").split()) == pod_ips
    srv = client.cmd("dig +short SRV _httpport._tcp.myapp-headless-svc.default.svc.cluster.local").splitlines()
    assert len(srv) == 3 and all(line.split()[2] == "80" for line in srv)
    ptr = client.cmd(f"dig +short -x {cluster_ip}").strip()
    assert ptr == "myapp-svc.default.svc.cluster.local."
    assert client.cmd("dig +short external-redis-svc.default.svc.cluster.local CNAME").strip() == "redis.ilinux.io."
    assert "status: NXDOMAIN" in client.cmd("dig nothing-here.default.svc.cluster.local")
    # the server answered through the kube-dns Service VIP
    assert "SERVER: 10.96.0.10#53" in client.cmd("dig myapp-svc.default.svc.cluster.local")
    started = time.monotonic()
    assert "status: REFUSED" in client.cmd("dig +tries=1 +time=2 example.com")
    assert time.monotonic() - started < 1.5


def test_dns_follows_changes_within_a_second(live):
    client = live.client()
    live.apply("apiVersion: v1\nkind: Service\nmetadata: {name: late}\nspec: {selector: {app: myapp}, ports: [{port: 80}]}\n")
    ip = live.get("svc", "late")["spec"]["clusterIP"]
    deadline = time.monotonic() + 1.0
    answer = ""
    while time.monotonic() < deadline:
        answer = client.cmd("dig +short late.default.svc.cluster.local").strip()
        if answer == ip:
            break
    assert answer == ip
    live.delete("svc", "late")


def test_pod_environment_has_service_variables_hostname_and_resolv_conf(live):
    client = live.client()
    env = client.cmd("env | grep -E '^(MYAPP_SVC|KUBERNETES)_' | sort")
    ip = live.get("svc", "myapp-svc")["spec"]["clusterIP"]
    assert f"MYAPP_SVC_SERVICE_HOST={ip}" in env and "MYAPP_SVC_SERVICE_PORT=80" in env
    assert f"MYAPP_SVC_PORT=tcp://{ip}:80" in env and f"MYAPP_SVC_PORT_80_TCP_ADDR={ip}" in env
    assert "KUBERNETES_SERVICE_HOST=10.96.0.1" in env
    assert client.cmd("hostname").strip() == "client"
    resolv = client.cmd("cat /etc/resolv.conf")
    assert "nameserver 10.96.0.10" in resolv and "options ndots:5" in resolv
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    # a workload process sees them too
    pod = sorted(myapp_pods(live))[0]
    host = live.pod(pod)
    assert host.cmd("hostname").strip() == pod


def test_session_affinity_keeps_a_client_on_one_pod(live):
    client = live.client()
    seen = {curl(client, "http://myapp-sticky/hostname.html") for _ in range(15)}
    assert len(seen) == 1


def test_service_without_endpoints_rejects_fast(live):
    live.apply("apiVersion: v1\nkind: Service\nmetadata: {name: empty}\nspec: {selector: {app: none}, ports: [{port: 80}]}\n")
    client = live.client()
    started = time.monotonic()
    output = client.cmd(f"curl -s -m {scaled(5):g} -o /dev/null -w '%{{http_code}}' http://empty/; echo \" exit=$?\"")
    assert "exit=7" in output  # connection refused (ICMP port unreachable / RST), not a timeout
    assert time.monotonic() - started < 2
    live.delete("svc", "empty")


def test_hairpin_a_pod_reaches_itself_through_its_service(live):
    pod = sorted(myapp_pods(live))[0]
    host = live.pod(pod)
    seen = {curl(host, "http://myapp-svc/hostname.html") for _ in range(30)}
    assert pod in seen and seen <= myapp_pods(live)


def test_external_traffic_policy_local_keeps_client_ip_and_uses_local_endpoints(live):
    live.apply("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: solo}
spec:
  replicas: 1
  selector: {matchLabels: {app: solo}}
  template:
    metadata: {labels: {app: solo}}
    spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: solo-local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: solo}
  ports: [{port: 80, nodePort: 30081}]
---
apiVersion: v1
kind: Service
metadata: {name: solo-cluster}
spec:
  type: NodePort
  selector: {app: solo}
  ports: [{port: 80, nodePort: 30082}]
""")
    pod = [p for p in live.get("pods") if p["metadata"]["name"].startswith("solo-")][0]
    home = addressing.node_ip(int(pod["spec"]["nodeName"][-1]) - 1)
    other = next(ip for ip in NODE_IPS if ip != home)
    external = live.external()
    answer = curl_json(external, f"http://{home}:30081/")
    assert answer["client"].split(":")[0] == addressing.EXTERNAL_IP  # source kept
    assert curl(external, f"http://{other}:30081/", timeout=2) == ""  # no local endpoint: dropped
    answer = curl_json(external, f"http://{other}:30082/")
    assert answer["client"].split(":")[0] == other  # Cluster policy: SNAT to the node that received it
    live.delete("deployment", "solo")
    live.delete("svc", "solo-local")
    live.delete("svc", "solo-cluster")


def test_internal_traffic_policy_local_uses_only_the_clients_node(live):
    live.apply("""
apiVersion: v1
kind: Service
metadata: {name: myapp-local}
spec:
  internalTrafficPolicy: Local
  selector: {app: myapp}
  ports: [{port: 80}]
""")
    client_node = live.get("pod", "client")["spec"]["nodeName"]
    local = {p["metadata"]["name"] for p in live.get("pods")
             if p["metadata"]["name"].startswith("myapp-") and p["spec"]["nodeName"] == client_node}
    seen = {curl(live.client(), "http://myapp-local/hostname.html") for _ in range(10)}
    assert seen == local
    live.delete("svc", "myapp-local")


def test_readiness_probe_keeps_an_unready_pod_out_of_endpoints(live):
    live.apply("""
apiVersion: v1
kind: Pod
metadata: {name: unready, labels: {app: probe}}
spec:
  containers:
  - name: web
    image: nginx
    ports: [{containerPort: 80}]
    readinessProbe: {tcpSocket: {port: 81}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: ready, labels: {app: probe}}
spec:
  containers:
  - name: web
    image: nginx
    ports: [{containerPort: 80}]
    readinessProbe: {httpGet: {path: /healthz, port: 80}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: probe}
spec: {selector: {app: probe}, ports: [{port: 80}]}
""")
    # The first probe may run before the server listens; the next one (1 s later) passes.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not is_ready(live.get("pod", "ready")):
        time.sleep(0.1)
    live.emulation.settle()
    seen = {curl(live.client(), "http://probe/hostname.html") for _ in range(10)}
    assert seen == {"ready"}
    statuses = {p["metadata"]["name"]: p["status"] for p in live.get("pods") if p["metadata"]["name"] in ("ready", "unready")}
    assert {n: is_ready({"status": s}) for n, s in statuses.items()} == {"ready": True, "unready": False}
    for name in ("ready", "unready"):
        live.delete("pod", name)
    live.delete("svc", "probe")


def test_deleted_pod_is_replaced_and_the_service_keeps_answering(live):
    before = myapp_pods(live)
    victim = sorted(before)[0]
    live.delete("pod", victim)
    after = myapp_pods(live)
    assert victim not in after and len(after) == 3
    client = live.client()
    seen = collections.Counter(curl(client, "http://myapp-svc/hostname.html") for _ in range(40))
    assert set(seen) == after, seen


def test_exec_and_logs(live):
    pod = sorted(myapp_pods(live))[0]
    assert live.exec(pod, "hostname").strip() == pod
    curl(live.client(), "http://myapp-svc/hostname.html")
    assert "serving default/" in live.logs(pod)


def test_the_data_plane_lives_where_the_mode_puts_it(live):
    """Kernel modes put the Service in each node's own rules (iptables, nftables, IPVS) and leave
    the bridges plain switches; the SDN mode puts it in the bridges' flows and nothing in the nodes."""
    vip = live.get("svc", "myapp-svc")["spec"]["clusterIP"]
    node_state = live.node("node1").cmd("iptables-save; nft list ruleset; ipvsadm -Sn 2>/dev/null")
    flows = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "tb-node1"],
                           capture_output=True, text=True).stdout
    if live.backend.needs_openflow:
        assert vip not in node_state and "KUBE-" not in node_state
        assert f"nw_dst={vip}" in flows
    else:
        assert vip in node_state
        assert f"nw_dst={vip}" not in flows  # the bridge is a plain switch


def test_pod_dns_records_and_udp_echo_through_a_service(live):
    client = live.client()
    pod = sorted(myapp_pods(live))[0]
    ip = live.get("pod", pod)["status"]["podIP"]
    dashed = ip.replace(".", "-")
    assert client.cmd(f"dig +short {dashed}.default.pod.cluster.local").split() == [ip]
    live.apply("""
apiVersion: v1
kind: Pod
metadata: {name: udp, labels: {app: udp}}
spec: {containers: [{name: echo, image: nginx, ports: [{containerPort: 5353, protocol: UDP, name: echo}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: udp}
spec: {selector: {app: udp}, ports: [{port: 53, targetPort: echo, protocol: UDP}]}
""")
    answer = client.cmd("echo ping | timeout 3 nc -u -w1 udp 53 || "
                        "python3 -c \"import socket;s=socket.socket(2,2);s.settimeout(2);"
                        "s.sendto(b'ping',('udp',53));print(s.recv(99).decode())\"")
    assert "udp: ping" in answer
    live.delete("pod", "udp")
    live.delete("svc", "udp")


def test_failing_liveness_probe_restarts_the_container_then_backs_off(live):
    """A failed liveness probe kills the container; the first restart comes at once, the next ones
    after the kubelet's CrashLoopBackOff (10 s, 20 s, ...), as for a container that exits. (Restarted
    every two seconds without it, the pod never let the cluster settle on a slow machine.)"""
    live.apply("""
apiVersion: v1
kind: Pod
metadata: {name: sick}
spec:
  enableServiceLinks: false
  containers:
  - name: web
    image: nginx
    ports: [{containerPort: 80}]
    livenessProbe: {tcpSocket: {port: 81}, initialDelaySeconds: %d, periodSeconds: 1, failureThreshold: 2}
""" % math.ceil(scaled(1)))   # under TCG the container needs that long to exec its workload at all

    def status():
        return live.get("pod", "sick")["status"]["containerStatuses"][0]
    deadline = time.monotonic() + scaled(15)
    restarts = 0
    while time.monotonic() < deadline and restarts == 0:
        restarts = status()["restartCount"]
        time.sleep(0.2)
    assert restarts >= 1
    # the restarted container's environment still honours enableServiceLinks: false
    container = live.emulation.kubelet.pods[("default", "sick")].containers["web"]

    def workload_environment() -> list[str]:
        """The environment of the container's process once it has exec'd the workload (before
        that, on a slow machine, the child is still the wrapper's `env -i`, with an empty one)."""
        try:
            child = Path(f"/proc/{container.pid}/task/{container.pid}/children").read_text().split()[0]
            return Path(f"/proc/{child}/environ").read_bytes().decode().split("\0")
        except (IndexError, OSError, TypeError):
            return []
    deadline = time.monotonic() + scaled(5)
    env = workload_environment()
    while time.monotonic() < deadline and not any(v.startswith("KUBERNETES_SERVICE_HOST=") for v in env):
        time.sleep(0.1)
        env = workload_environment()
    assert any(v.startswith("KUBERNETES_SERVICE_HOST=") for v in env)
    assert not any(v.startswith("MYAPP_SVC_SERVICE_HOST=") for v in env)
    # the second kill is not followed by an immediate restart
    deadline = time.monotonic() + scaled(15)
    current = status()
    while time.monotonic() < deadline and "waiting" not in current["state"]:
        time.sleep(0.2)
        current = status()
    assert current["state"]["waiting"]["reason"] == "CrashLoopBackOff", current
    assert "back-off 10s" in current["state"]["waiting"]["message"]
    assert current["restartCount"] == 1 and current["lastState"]["terminated"]["finishedAt"]
    events = live.control_plane.events[("Pod", "default", "sick")]
    assert any(e["reason"] == "Killing" and "failed liveness probe" in e["message"] for e in events)
    live.delete("pod", "sick")
