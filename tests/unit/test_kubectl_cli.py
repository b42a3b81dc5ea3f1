"""The interactive CLI: line dispatch (pure) and TestbedCLI on a Mininet object that was never
started (no root), driven by a script file as `source` does."""
import io
import logging
import os
from pathlib import Path

import pytest
from mininet.log import lg
from mininet.net import Mininet

from testbed import Cluster
from testbed.kubectl import Kubectl, execute_line
from testbed.kubectl import shell  # TestbedCLI, referred to as shell.TestbedCLI so pytest does not collect it


@pytest.fixture
def kubectl():
    cluster = Cluster(network=False, seed=1)
    cluster.apply(Path("/work/shared/examples/myapp.yaml"))
    return Kubectl(cluster)


def test_execute_line_accepts_kubectl_k_or_the_bare_verb(kubectl):
    outputs = [execute_line(kubectl, line) for line in
               ("kubectl get deploy myapp", "k get deploy myapp", "get deploy myapp")]
    assert all(r.ok for r in outputs)
    assert len({r.output for r in outputs}) == 1 and outputs[0].output.startswith("NAME")


def test_execute_line_reports_errors_as_text(kubectl):
    result = execute_line(kubectl, "k get nosuch")
    assert not result.ok and result.output == 'error: the server doesn\'t have a resource type "nosuch"'
    quoting = execute_line(kubectl, "k exec pod -- sh -c 'echo")
    assert not quoting.ok and quoting.output == "error: No closing quotation"
    quoted = execute_line(kubectl, "get svc -l 'app in (myapp)' -o name")
    assert quoted.ok and "service/myapp-svc" not in quoted.output   # Services carry no labels here


@pytest.fixture
def captured():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    previous = lg.level
    lg.addHandler(handler)
    lg.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        lg.removeHandler(handler)
        lg.setLevel(previous)


def test_cli_runs_kubectl_commands_and_keeps_mininet_commands(kubectl, captured, tmp_path):
    script = tmp_path / "commands"
    script.write_text("kubectl get svc myapp-svc-nodeport\n"
                      "k get deploy\n"
                      "scale deployment/myapp --replicas=2\n"
                      "api-resources --namespaced=false -o name\n"
                      "get nosuch\n"
                      "nodes\n")
    with open(os.devnull) as stdin:
        cli = shell.TestbedCLI(Mininet(build=False), kubectl, stdin=stdin, script=str(script))
    text = captured.getvalue()
    assert "80:32223/TCP" in text
    assert "deployment.apps/myapp scaled" in text
    assert ("namespaces\nnodes\ngatewayclasses.gateway.networking.k8s.io\n"
            "ingressclasses.networking.k8s.io\n") in text                       # `api-resources` reached
    assert 'error: the server doesn\'t have a resource type "nosuch"\n' in text
    assert "Traceback" not in text
    assert "available nodes are:" in text                                        # Mininet's own command
    assert kubectl.cluster.get("Deployment", "myapp")["spec"]["replicas"] == 2
    assert cli.parseline("api-resources -o name") == ("api-resources", "-o name", "api-resources -o name")
    assert cli.parseline("get pods")[0] == "get"


def test_cli_help_covers_the_kubectl_verbs(kubectl, tmp_path):
    script = tmp_path / "empty"
    script.write_text("")
    with open(os.devnull) as stdin:
        cli = shell.TestbedCLI(Mininet(build=False), kubectl, stdin=stdin, script=str(script))
    names = cli.get_names()
    for verb in ("do_kubectl", "do_k", "do_get", "do_describe", "do_apply", "do_rollout", "do_api-resources"):
        assert verb in names
    assert "Usage: get TYPE" in cli.do_get.__doc__


def test_comments_are_cut_only_outside_quotes():
    assert shell.strip_comment("get pods  # list them") == "get pods  "
    assert shell.strip_comment("# whole line") == ""
    assert shell.strip_comment("exec p -- sh -c 'echo #1' # done") == "exec p -- sh -c 'echo #1' "
    assert shell.strip_comment("get svc a#b") == "get svc a#b"


# -- client / external (issue 7, bug 4) -------------------------------------------------------------

class FakeHost:
    """What Mininet's CLI needs to run `NODE CMD` on a host: sendCmd, a pollable stdout, monitor()
    and `waiting`. It answers every command with `<name> ran: <command>`."""

    def __init__(self, name: str):
        self.name = name
        self.commands: list[str] = []
        read_end, self._write_end = os.pipe()
        self.stdout = os.fdopen(read_end, "rb", buffering=0)
        self.waiting = False

    def sendCmd(self, command: str) -> None:   # noqa: N802 - Mininet's name
        self.commands.append(command)
        self.waiting = True
        os.write(self._write_end, f"{self.name} ran: {command}\n".encode())

    def monitor(self) -> str:
        self.waiting = False
        return os.read(self.stdout.fileno(), 4096).decode()

    def write(self, data: str) -> None:
        pass

    def sendInt(self) -> None:   # noqa: N802 - Mininet's name
        self.waiting = False


class FakeCluster:
    """Cluster.client() and Cluster.external() as the CLI sees them: the client pod's host joins
    the Mininet net on first use, as the emulation adds a pod's host when it starts."""

    def __init__(self, net):
        self.net = net
        self.external_host = FakeHost("ext")
        net.nameToNode["ext"] = self.external_host
        self.client_host = None
        self.client_calls = 0

    def client(self):
        self.client_calls += 1
        if self.client_host is None:
            self.client_host = FakeHost("client")
            self.net.nameToNode["client"] = self.client_host
        return self.client_host

    def external(self):
        return self.external_host


def run_cli_script(tmp_path, kubectl, net, cluster, text: str):
    script = tmp_path / "commands"
    script.write_text(text)
    with open(os.devnull) as stdin:
        return shell.TestbedCLI(net, kubectl, stdin=stdin, script=str(script), cluster=cluster)


def test_client_and_external_run_on_the_cluster_api_hosts(kubectl, captured, tmp_path):
    net = Mininet(build=False)
    cluster = FakeCluster(net)
    run_cli_script(tmp_path, kubectl, net, cluster,
                   "client curl -s myapp-svc\n"
                   "client curl -s myapp-svc/hostname.html\n"
                   "external curl -s 172.18.0.10:32223\n"
                   "client\n")
    text = captured.getvalue()
    assert cluster.client_host.commands == ["curl -s myapp-svc", "curl -s myapp-svc/hostname.html"]
    assert cluster.external_host.commands == ["curl -s 172.18.0.10:32223"]
    assert "client ran: curl -s myapp-svc\n" in text and "ext ran: curl -s 172.18.0.10:32223\n" in text
    assert "*** Please enter a command for client: client <cmd>" in text
    assert "Unknown command" not in text and "Traceback" not in text
    assert cluster.client_calls == 2   # resolved through the Cluster API each time (created once)


def test_client_without_a_network_is_one_error_line(kubectl, captured, tmp_path):
    # A control-plane-only cluster has no hosts: the CLI says so and goes on.
    run_cli_script(tmp_path, kubectl, Mininet(build=False), kubectl.cluster,
                   "client curl -s myapp-svc\nexternal true\nk get deploy myapp\n")
    text = captured.getvalue()
    assert text.count("error: this cluster has no network") == 2
    assert "myapp" in text and "Traceback" not in text


def test_client_and_external_are_listed_in_help(kubectl, tmp_path):
    net = Mininet(build=False)
    cli = run_cli_script(tmp_path, kubectl, net, FakeCluster(net), "")
    assert {"do_client", "do_external"} <= set(cli.get_names())
    assert "client curl -s myapp-svc" in cli.helpStr and "Cluster.client()" in cli.do_client.__doc__


def test_proxy_mode_command_switches_and_reports_the_mode(kubectl, captured, tmp_path):
    """`proxy-mode MODE` in `testbed up` calls Cluster.set_proxy_mode (here on a network-less
    cluster, which only records the mode); unknown modes and options are one error line."""
    run_cli_script(tmp_path, kubectl, Mininet(build=False), kubectl.cluster,
                   "proxy-mode\nproxy-mode sdn\nproxy-mode iptables --iptables-backend legacy\n"
                   "proxy-mode nosuchmode\nproxy-mode iptables --iptables-backend bogus\n")
    text = captured.getvalue()
    assert "proxy mode: iptables (nft) (modes: " in text
    assert "proxy mode: sdn (OS-Ken controller, OpenFlow 1.3)" in text
    assert "proxy mode: iptables (legacy)" in text
    assert "error: unknown proxy mode 'nosuchmode'" in text
    assert "error: iptables_backend: 'bogus'" in text and "Traceback" not in text
    assert kubectl.cluster.proxy_mode == "iptables" and kubectl.cluster.proxy_options == {"iptables_backend": "legacy"}
