"""The `testbed` command: exit codes and one line per problem, never a traceback."""
import subprocess
import sys


from testbed.cli import main


def test_validate_examples_ok(capsys):
    assert main(["validate", "-f", "examples/"]) == 0
    assert "19 objects in 4 file(s): valid" in capsys.readouterr().out


def test_validate_reports_each_problem_on_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 0}]\n---\n"
                   "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n")
    assert main(["validate", "-f", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"{bad}:1 Service/web: spec.ports[0].port: Invalid value: 0")
    assert any(line.startswith(f"{bad}:2 Pod/p: spec.containers: Required value") for line in err)
    assert not any("Traceback" in line for line in err)


def test_render_iptables_without_root(capsys):
    assert main(["render", "iptables", "-f", "examples/myapp.yaml", "--node", "node2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("*filter") and "KUBE-SVC-" in out and "--dport 32223" in out


def test_unknown_node_and_mode_are_errors(capsys):
    assert main(["render", "iptables", "-f", "examples/myapp.yaml", "--node", "node9"]) == 1
    assert "unknown node 'node9'" in capsys.readouterr().err


def test_stdin_and_bad_yaml_through_a_real_process():
    proc = subprocess.run([sys.executable, "-m", "testbed.cli", "validate", "-f", "-"], input="kind: [\n",
                          capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.startswith("<stdin>:1 ") and "invalid YAML" in proc.stderr
    assert "Traceback" not in proc.stderr




KUBE_PROXY_TEST_SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: ns1-svc1, namespace: default}
spec:
  clusterIP: 172.30.0.41
  ports: [{name: p80, port: 80, protocol: TCP, targetPort: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: ns1-svc1, namespace: default}
subsets: [{addresses: [{ip: 10.180.0.1}], ports: [{name: p80, port: 80}]}]
"""


def test_service_cidr_flag_renders_kube_proxys_own_test_services(tmp_path, capsys):
    """kube-proxy's unit tests use Service IPs in 172.30.0.0/16 (kube-apiserver
    --service-cluster-ip-range); with --service-cidr they render, without it they are refused."""
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(KUBE_PROXY_TEST_SERVICE)
    assert main(["validate", "-f", str(manifest)]) == 1
    assert "spec.clusterIP" in capsys.readouterr().err
    assert main(["validate", "-f", str(manifest), "--service-cidr", "172.30.0.0/16"]) == 0
    capsys.readouterr()
    assert main(["render", "iptables", "-f", str(manifest), "--service-cidr", "172.30.0.0/16"]) == 0
    assert '"default/ns1-svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-' in capsys.readouterr().out
    assert main(["render", "iptables", "-f", str(manifest), "--service-cidr", "172.30.0.0/33"]) == 1
    assert "--service-cidr: invalid CIDR" in capsys.readouterr().err


def test_service_cidr_flag_exists_on_up():
    from testbed.cli import build_parser
    args = build_parser().parse_args(["up", "--service-cidr", "172.30.0.0/16", "--proxy-mode", "sdn"])
    assert args.service_cidr == "172.30.0.0/16"
