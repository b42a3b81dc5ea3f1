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
