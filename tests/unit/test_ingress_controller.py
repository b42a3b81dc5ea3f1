"""The controller's sync without a network: a fake pod whose runner runs the real `nginx -t` on the
candidate (paths moved into a temporary directory) and answers the checksum of the installed
configuration, as the pod's nginx would after a reload. Checks that a broken Ingress is found,
left out and reported while the others keep serving, that the last good configuration stays when
nothing can be isolated, and that every served Ingress gets the controller's address."""
import shutil
import subprocess
from pathlib import Path

import pytest

from testbed import Cluster
from testbed.components import ComponentContext
from testbed.ingress import nginx
from testbed.ingress.controller import IngressController, NginxPod
from tests.unit.test_ingress import ingress, rule, service

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")


class FakeRunner:
    def __init__(self, conf_dir: Path, state_dir: Path):
        self.conf_dir, self.state_dir = conf_dir, state_dir
        self.tests = 0

    def run(self, args, check=True, timeout=60, input=None):
        if args[:2] == ["nginx", "-t"]:
            self.tests += 1
            text = Path(args[3].replace(nginx.CONF_DIR, str(self.conf_dir))).read_text()
            text = text.replace(nginx.CONF_DIR + "/", f"{self.conf_dir}/").replace(nginx.STATE_DIR, str(self.state_dir))
            text = text.replace("access_log /dev/stdout", f"access_log {self.state_dir}/access.log")
            candidate = self.state_dir / "candidate.conf"
            candidate.write_text(text)
            return subprocess.run(["nginx", "-t", "-p", str(self.state_dir), "-c", str(candidate)],
                                  capture_output=True, text=True)
        if args[0] == "curl":   # the pod's nginx serves what nginx.conf holds once reloaded
            text = (self.conf_dir / "nginx.conf").read_text()
            return subprocess.CompletedProcess(args, 0, nginx.config_checksum(text) + "\n", "")
        raise AssertionError(args)


class FakeProcess:
    def __init__(self):
        self.sleeper = subprocess.Popen(["sleep", "60"])
        self.pid = self.sleeper.pid
        self.signals = []

    def send_signal(self, sig):
        self.signals.append(sig)

    def poll(self):
        return None


class Nodes:
    def __init__(self, root: Path):
        self.root = root

    def directory(self, *parts):
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path


@pytest.fixture
def setup(tmp_path):
    cluster = Cluster(network=False, seed=9, addons=["ingress"])
    cluster.apply(service("echo") + [ingress("good", [rule("good.example", ("/", "Prefix", "echo"))])])
    controller = IngressController(ComponentContext(nodes=Nodes(tmp_path), api=cluster.control_plane.api_view()))
    state = tmp_path / "state"
    state.mkdir()
    runner = FakeRunner(controller.conf_dir, state)
    process = FakeProcess()
    log = tmp_path / "nginx.log"
    pod = NginxPod("ingress-nginx", "ingress-nginx-controller-x", process, runner, state, log, open(log, "a"))
    controller.pods[process.pid] = pod
    yield cluster, controller, runner, process, log
    process.sleeper.kill()


def events(cluster, kind, name, namespace="default"):
    return cluster.control_plane.events.get((kind, namespace, name), [])


def test_sync_installs_reloads_and_writes_status(setup):
    cluster, controller, runner, process, _ = setup
    controller._sync()
    conf = (controller.conf_dir / "nginx.conf").read_text()
    assert "server_name good.example ;" in conf and process.signals == [1]
    assert (controller.conf_dir / "ssl" / "default-fake-certificate.pem").exists()
    assert cluster.get("ingress", "good")["status"] == {"loadBalancer": {"ingress": [{"ip": "172.18.255.250"}]}}
    assert [e["reason"] for e in events(cluster, "Ingress", "good")] == ["Sync"]
    controller._sync()                       # nothing changed: no test, no reload
    assert process.signals == [1] and runner.tests == 1


def test_a_broken_ingress_is_left_out_and_reported(setup):
    cluster, controller, runner, process, log = setup
    controller._sync()
    cluster.apply(ingress("broken", [rule("broken.example", ("/foo(", "ImplementationSpecific", "echo"))],
                          {"nginx.ingress.kubernetes.io/use-regex": "true"}))
    cluster.apply(ingress("later", [rule("later.example", ("/", "Prefix", "echo"))]))
    controller._sync()
    conf = (controller.conf_dir / "nginx.conf").read_text()
    assert "server_name later.example ;" in conf and "broken.example" not in conf
    warning = [e for e in events(cluster, "Ingress", "broken") if e["type"] == "Warning"]
    assert warning and warning[0]["reason"] == "RELOAD" and "pcre" in warning[0]["message"].lower()
    assert "Error reloading NGINX" in log.read_text()
    assert not [e for e in events(cluster, "Ingress", "later") if e["type"] == "Warning"]
    tests = runner.tests
    controller._sync()                       # the same broken text is not tested again
    assert runner.tests == tests


def test_when_nothing_can_be_isolated_the_last_good_configuration_stays(setup):
    cluster, controller, runner, process, _ = setup
    controller._sync()
    good = (controller.conf_dir / "nginx.conf").read_text()
    configmap = cluster.get("ConfigMap", "nginx-configuration", namespace="ingress-nginx")
    configmap["data"] = {"log-format-upstream": "$no_such_variable"}
    cluster.apply(configmap)
    controller._sync()
    assert (controller.conf_dir / "nginx.conf").read_text() == good
    reasons = [e["reason"] for e in events(cluster, "ConfigMap", "nginx-configuration", "ingress-nginx")]
    assert "RELOAD" in reasons


def test_an_endpoint_change_needs_no_reload(setup):
    cluster, controller, runner, process, _ = setup
    controller._sync()
    tests = runner.tests
    conf = (controller.conf_dir / "nginx.conf").read_text()
    endpoints = cluster.get("Endpoints", "echo")
    endpoints["subsets"][0]["addresses"].append({"ip": "10.244.9.250"})
    cluster.apply(endpoints)
    controller._sync()
    assert "10.244.9.250:8080 1\n" in (controller.conf_dir / "endpoints" / "default-echo-80").read_text()
    assert (controller.conf_dir / "nginx.conf").read_text() == conf
    assert runner.tests == tests and process.signals == [1]        # neither tested nor reloaded
    cluster.delete("Endpoints", "echo")
    controller._sync()
    assert not (controller.conf_dir / "endpoints" / "default-echo-80").exists()   # the balancer answers 503
    cluster.apply(ingress("another", [rule("another.example", ("/", "Prefix", "echo"))]))
    controller._sync()
    assert runner.tests == tests + 1                                 # a new server is tested


def test_a_good_ingress_made_bad_keeps_its_last_good_version(setup):
    cluster, controller, runner, process, _ = setup
    controller._sync()
    good = cluster.get("ingress", "good")
    good["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/use-regex": "true"}
    good["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/broken("
    cluster.apply(good)
    controller._sync()
    conf = (controller.conf_dir / "nginx.conf").read_text()
    assert "server_name good.example ;" in conf and "/broken(" not in conf
    assert (controller.conf_dir / "endpoints" / "default-echo-80").exists()
    warning = [e for e in events(cluster, "Ingress", "good") if e["type"] == "Warning"][-1]
    assert "its last good version keeps serving" in warning["message"]
