"""The ingress controller in a running emulation: nginx in every controller pod, fed from the API.

As ingress-nginx's sync loop (internal/ingress/controller/controller.go syncIngress, nginx.go
OnUpdate): a SyncLoop watches Ingress, IngressClass, Service, EndpointSlice, Secret, ConfigMap (and
the Gateway API kinds), builds the routing model and renders nginx.conf (pure: model.py, nginx.py,
gateway.py); when the text changed it

1. writes the certificates and the candidate configuration into the shared configuration
   directory, which every controller pod sees at /etc/nginx (bind-mounted in the pod's mount
   namespace), and runs `nginx -t -c <candidate>` inside a controller pod (testTemplate);
2. on success moves it to /etc/nginx/nginx.conf and reloads every pod's nginx (SIGHUP, what
   `nginx -s reload` sends), then waits until each answers with the new configuration's checksum
   (127.0.0.1:10246/configuration/checksum), so an apply returns once the change serves;
3. on failure keeps the last good configuration serving, and finds which of the Ingresses changed
   since then break it (each group of them is tested against the rest, halving), reports each as a
   Warning event on the Ingress (reason RELOAD, shown by `kubectl describe ingress`) and in the
   controller's log, and serves everything else, with those Ingresses at their last good version
   (a new one is left out).

Endpoint changes need no reload: as ingress-nginx's Lua balancer picks an endpoint per request
from backends the controller posts to it, nginx's JavaScript module (Debian's
libnginx-mod-http-js) runs balancer.js, which picks (weighted, at random) from the file
/etc/nginx/endpoints/<upstream> the controller rewrites; nginx.conf itself holds no endpoint, so it
does not change when only endpoints do. benchmarks/ingress.py measures both paths.

Status: every Ingress of our class gets the controller Service's LoadBalancer IP in
status.loadBalancer.ingress (ingress-nginx's --publish-service).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..components import ComponentContext, ManagedContainer
from ..sync import LoopComponent, SyncLoop
from ..timescale import scaled
from . import nginx
from .addon import CONFIGMAP, NAME, NAMESPACE
from .model import ClusterObjects, Problem, RoutingModel, build_model
from .settings import settings_from_configmap

log = logging.getLogger(__name__)
WATCHED = {"Ingress", "IngressClass", "Service", "EndpointSlice", "Secret", "ConfigMap"}
CANDIDATE = "nginx-cfg-check.conf"
RELOAD_TIMEOUT = 15.0   # seconds on the host; scaled() under `testbed vm`
HOST_STATE_MOUNTPOINT = Path(nginx.STATE_DIR)   # exists wherever Debian's nginx is installed


def worker_pids(master: int) -> set[int]:
    """The master's child processes (its workers and, during a reload, the old ones)."""
    try:
        return {int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()}
    except OSError:
        return set()


def accepting(pid: int) -> bool:
    """A worker that still takes new connections: an old worker sets its title to `worker process
    is shutting down` and then closes its listening sockets (ngx_worker_process_cycle)."""
    try:
        return b"shutting down" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def reloaded(master: int, old_workers: set[int]) -> bool:
    """After SIGHUP: none of the workers from before still accepts connections."""
    return not any(accepting(pid) for pid in old_workers & worker_pids(master))


@dataclass
class NginxPod:
    namespace: str
    name: str
    process: subprocess.Popen
    runner: object
    state_dir: Path
    log_path: Path
    log_file: object
    checksum: str | None = None


@dataclass(frozen=True)
class Rendered:
    text: str
    model: RoutingModel
    gateway_status: dict          # (kind, namespace, name) -> status, from gateway.py
    excluded: tuple = ()          # Ingress keys whose current version breaks the configuration
    ingresses: dict = field(default_factory=dict)   # the Ingress objects it was rendered from


def spec_version(ingress: dict) -> tuple:
    """What changes an Ingress's configuration: its spec (generation) and annotations, not its
    status (which the controller itself writes)."""
    meta = ingress["metadata"]
    return meta.get("generation"), tuple(sorted((meta.get("annotations") or {}).items()))


def klog(level: str, message: str) -> str:
    """A log line in klog's shape, as the controller's Go code prints them."""
    now = datetime.now(timezone.utc)
    return f"{level}{now:%m%d %H:%M:%S.%f}       1 controller.py] {message}\n"


class IngressController(LoopComponent):
    name = "ingress-nginx"

    def __init__(self, ctx: ComponentContext):
        self.api = ctx.api
        self.conf_dir = ctx.nodes.directory("ingress-nginx", "etc-nginx")
        os.chmod(self.conf_dir, 0o755)      # the workers read the balancer's files through /etc/nginx
        (self.conf_dir / "ssl").mkdir(exist_ok=True)
        self.pods: dict[int, NginxPod] = {}
        self._lock = threading.RLock()
        self.applied: Rendered | None = None        # what every pod serves
        self.good_versions: dict[tuple[str, str], tuple] = {}   # Ingress -> spec_version in it
        self.reported: set[tuple] = set()
        self.seen_versions: dict[tuple[str, str], tuple] = {}
        self._tested: dict[str, str | None] = {}    # nginx -t results by configuration digest
        self.reload_seconds: list[float] = []      # nginx -t + reload + all pods serving, per change
        self.loop = SyncLoop(self.name, ctx.api.store, WATCHED | gateway_kinds(), self._sync)

    # -- component ----------------------------------------------------------------------------
    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()
        with self._lock:
            for pid in list(self.pods):
                self.stop_container(pid)

    # -- rendering (pure parts in model.py / nginx.py / gateway.py) -----------------------------
    def _objects(self) -> tuple[ClusterObjects, dict]:
        (ingresses, classes, services, slices, secrets, namespaces, *gateway) = self.api.snapshot(
            "Ingress", "IngressClass", "Service", "EndpointSlice", "Secret", "Namespace", *GATEWAY_KINDS)
        configmap = self.api.get("ConfigMap", NAMESPACE, CONFIGMAP)
        objects = ClusterObjects(ingresses, classes, services, slices, secrets, configmap)
        return objects, {**dict(zip(GATEWAY_KINDS, gateway)), "Namespace": namespaces}

    def _render(self, objects: ClusterObjects, gateway_objects: dict, excluded: tuple = ()) -> Rendered:
        """The configuration of the objects; an `excluded` Ingress is replaced by the version the
        serving configuration has (its last good one), or left out when it has none."""
        settings = settings_from_configmap((objects.configmap or {}).get("data"))
        kept = []
        for ingress in objects.ingresses:
            key = (ingress["metadata"]["namespace"], ingress["metadata"]["name"])
            if key not in excluded:
                kept.append(ingress)
            elif self.applied is not None and key in self.applied.ingresses:
                kept.append(self.applied.ingresses[key])
        model = build_model(ClusterObjects(kept, objects.ingress_classes, objects.services, objects.endpoint_slices,
                                           objects.secrets, objects.configmap), settings)
        from .gateway import gateway_servers
        extra, status, problems = gateway_servers(gateway_objects, objects, model, self._lb_ip(objects),
                                                  gateway_objects.get("Namespace"))
        model.problems.extend(problems)
        text = nginx.render(model, extra_servers=extra)
        return Rendered(text, model, status, tuple(excluded),
                        {(i["metadata"]["namespace"], i["metadata"]["name"]): i for i in kept})

    @staticmethod
    def _lb_ip(objects: ClusterObjects) -> str | None:
        for service in objects.services:
            if service["metadata"].get("namespace") == NAMESPACE and service["metadata"]["name"] == NAME:
                for entry in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                    if entry.get("ip"):
                        return entry["ip"]
        return None

    # -- the sync -------------------------------------------------------------------------------
    def _sync(self) -> None:
        objects, gateway_objects = self._objects()
        self._note_ingress_changes(objects)
        with self._lock:
            rendered = self._render(objects, gateway_objects)
            if self.applied is not None and rendered.text == self.applied.text:
                self.applied = rendered   # the same configuration, with the endpoints of now
            # Endpoints go to the balancer's files at once, whatever happens to the configuration.
            self._write_support(rendered.model)
            # Without a pod nothing serves yet: the first pod's start loads the configuration.
            if self.pods and (self.applied is None or rendered.text != self.applied.text):
                rendered = self._apply_or_isolate(rendered, objects, gateway_objects)
        self._report(rendered.model.problems, objects.configmap)
        self._write_status(objects, rendered)

    def _note_ingress_changes(self, objects: ClusterObjects) -> None:
        """ingress-nginx's store records `Sync: Scheduled for sync` on every Ingress it picks up."""
        current = {}
        classes = {c["metadata"]["name"]: c for c in objects.ingress_classes}
        from .model import is_our_class
        for ingress in objects.ingresses:
            key = (ingress["metadata"]["namespace"], ingress["metadata"]["name"])
            if not is_our_class(ingress, classes):
                continue
            current[key] = spec_version(ingress)
            if self.seen_versions.get(key) != current[key]:
                self.api.record_event(ingress, "Normal", "Sync", "Scheduled for sync")
        self.seen_versions = current

    def _apply_or_isolate(self, rendered: Rendered, objects: ClusterObjects, gateway_objects: dict) -> Rendered:
        error = self._apply(rendered)
        if error is None:
            return rendered
        log.warning("ingress-nginx: the new configuration does not pass nginx -t: %s", error)
        changed = [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in objects.ingresses
                   if self.good_versions.get((i["metadata"]["namespace"], i["metadata"]["name"])) != spec_version(i)]
        changed = [k for k in changed if k in rendered.model.ingresses]
        bad: list[tuple[str, tuple[str, str]]] = []

        def test(excluded: tuple) -> str | None:
            return self._test(self._render(objects, gateway_objects, excluded).text)

        base_error = test(tuple(changed))
        if changed and base_error is None:
            def search(group: list, others: tuple) -> None:
                message = test(others)
                if message is None:
                    return
                if len(group) == 1:
                    bad.append((message, group[0]))
                    return
                half = len(group) // 2
                search(group[:half], others + tuple(group[half:]))
                search(group[half:], others + tuple(group[:half]))

            search(changed, ())
        problems = []
        if bad:
            excluded = tuple(key for _, key in bad)
            kept = self._render(objects, gateway_objects, excluded)
            for message, (namespace, name) in bad:
                served = self.applied is not None and (namespace, name) in self.applied.ingresses
                what = "its last good version keeps serving" if served else "left out"
                problems.append(Problem("Ingress", namespace, name, "Warning", "RELOAD",
                                        f"Error reloading NGINX: this Ingress makes the configuration invalid, "
                                        f"{what}: {message}"))
            if self._apply(kept) is None:
                kept.model.problems.extend(problems)
                return kept
        # Nothing to isolate (the ConfigMap, say) or isolating did not help: keep the last good one.
        message = f"Error reloading NGINX: the last good configuration keeps serving: {error}"
        culprit = changed or []
        for namespace, name in culprit:
            problems.append(Problem("Ingress", namespace, name, "Warning", "RELOAD", message))
        if not culprit:
            problems.append(Problem("ConfigMap", NAMESPACE, CONFIGMAP, "Warning", "RELOAD", message))
        rendered.model.problems.extend(problems)
        return Rendered(self.applied.text if self.applied else "", rendered.model, rendered.gateway_status,
                        tuple(culprit), self.applied.ingresses if self.applied else {})

    # -- nginx in the pods ----------------------------------------------------------------------
    def _any_pod(self) -> NginxPod | None:
        return next(iter(self.pods.values()), None)

    def _write_support(self, model: RoutingModel) -> None:
        """The balancer and the endpoint files (nginx.support_files), each replaced atomically when
        it changed: an endpoint change reaches every pod's nginx without a reload. Files of the
        configuration that serves now stay until a new one replaces it (a rejected configuration
        must not take endpoints from the one that keeps serving)."""
        files = nginx.support_files(model)
        for relative, text in files.items():
            path = self.conf_dir / relative
            if path.exists() and path.read_text() == text:
                continue
            path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            os.chmod(tmp, 0o644)   # read by nginx's workers (user nobody), not only its master
            os.replace(tmp, path)
        keep = set(files) | (set(nginx.endpoint_files(self.applied.model)) if self.applied else set())
        for path in (self.conf_dir / "endpoints").glob("*"):
            # an upstream without endpoints (or gone): its file goes, the balancer answers 503
            if f"endpoints/{path.name}" not in keep and not path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)

    def _write_certificates(self, model: RoutingModel) -> None:
        for file, certificate in model.certificates.items():
            path = self.conf_dir / "ssl" / file
            if not path.exists() or path.read_text() != certificate.pem:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(certificate.pem)
                os.chmod(tmp, 0o600)
                os.replace(tmp, path)

    def _test(self, text: str, pod: NginxPod | None = None) -> str | None:
        """testTemplate: `nginx -t` on a temporary file inside a controller pod; None when it passes."""
        pod = pod or self._any_pod()
        if pod is None:
            return "no controller pod runs"
        digest = hashlib.sha1(text.encode()).hexdigest()
        if digest in self._tested:   # the same text passes or fails the same way: test it once
            return self._tested[digest]
        candidate = self.conf_dir / CANDIDATE
        candidate.write_text(text)
        try:
            result = pod.runner.run(["nginx", "-t", "-c", f"{nginx.CONF_DIR}/{CANDIDATE}"], check=False, timeout=scaled(60))
        finally:
            candidate.unlink(missing_ok=True)
        message = None
        if result.returncode != 0:
            lines = [re.sub(r"^(nginx: )?\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: ", r"\2 ", line)
                     for line in (result.stderr or result.stdout).splitlines() if "[emerg]" in line or "[alert]" in line]
            message = "; ".join(lines) or (result.stderr or result.stdout).strip()
        if len(self._tested) > 256:
            self._tested.clear()
        self._tested[digest] = message
        return message

    def _apply(self, rendered: Rendered) -> str | None:
        """Test, install and reload; None on success, else nginx -t's message (nothing changed)."""
        if self.applied is not None and rendered.text == self.applied.text:
            self.applied = rendered
            return None
        started = time.monotonic()
        self._write_certificates(rendered.model)
        self._write_support(rendered.model)
        error = self._test(rendered.text)
        if error is not None:
            return error
        target = self.conf_dir / "nginx.conf"
        tmp = self.conf_dir / "nginx.conf.tmp"
        tmp.write_text(rendered.text)
        os.replace(tmp, target)
        checksum = nginx.config_checksum(rendered.text)
        old_workers = {pid: worker_pids(pid) for pid in self.pods}
        for pod in list(self.pods.values()):
            pod.process.send_signal(signal.SIGHUP)
        for pid, pod in list(self.pods.items()):
            self._wait_serving(pod, checksum, old_workers.get(pid, set()))
            self._log(pod, "I", "Backend successfully reloaded")
        self.applied = rendered
        self.good_versions = {key: version for key, version in self._versions(rendered).items()}
        self.reload_seconds.append(time.monotonic() - started)
        self._remove_stale_certificates(rendered.model)
        for pod in list(self.pods.values()):
            self.api.record_event({"kind": "Pod", "metadata": {"namespace": pod.namespace, "name": pod.name}},
                                  "Normal", "RELOAD", "NGINX reload triggered due to a change in configuration")
        return None

    @staticmethod
    def _versions(rendered: Rendered) -> dict:
        """The spec versions of the Ingresses a configuration serves (a replaced one: its old one)."""
        return {key: spec_version(ingress) for key, ingress in rendered.ingresses.items()
                if key in rendered.model.ingresses}

    def _remove_stale_certificates(self, model: RoutingModel) -> None:
        for path in (self.conf_dir / "ssl").glob("*.pem"):
            if path.name not in model.certificates:
                path.unlink(missing_ok=True)

    def _served_checksum(self, pod: NginxPod) -> str:
        result = pod.runner.run(["curl", "-s", "-m", f"{scaled(1):g}",
                                 f"http://127.0.0.1:{nginx.STATUS_PORT}/configuration/checksum"],
                                check=False, timeout=scaled(10))
        return result.stdout.strip()

    def _wait_serving(self, pod: NginxPod, checksum: str | None, old_workers: set[int] = frozenset()) -> None:
        """Until new workers answer with the configuration's checksum and no old worker still
        accepts connections (so no new request meets the previous configuration)."""
        limit = scaled(RELOAD_TIMEOUT)
        deadline = time.monotonic() + limit
        while True:
            if pod.process.poll() is not None:
                raise RuntimeError(f"nginx in pod {pod.namespace}/{pod.name} exited {pod.process.returncode}: "
                                   f"{self._tail(pod)}")
            if reloaded(pod.process.pid, old_workers) and self._served_checksum(pod) == checksum:
                pod.checksum = checksum
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nginx in pod {pod.namespace}/{pod.name} did not serve configuration "
                                   f"{checksum} within {limit:.0f} s: {self._tail(pod)}")
            time.sleep(0.01)

    @staticmethod
    def _tail(pod: NginxPod) -> str:
        try:
            return pod.log_path.read_text(errors="replace")[-1500:].strip()
        except OSError:
            return ""

    def _log(self, pod: NginxPod, level: str, message: str) -> None:
        with open(pod.log_path, "a") as handle:
            handle.write(klog(level, message))

    # -- events, logs, status -------------------------------------------------------------------
    def _report(self, problems: list[Problem], configmap: dict | None) -> None:
        current = set()
        settings = settings_from_configmap((configmap or {}).get("data"))
        problems = list(problems) + [Problem("ConfigMap", NAMESPACE, CONFIGMAP, "Warning", "ConfigMapIgnored", w)
                                     for w in settings.warnings]
        for problem in problems:
            key = (problem.kind, problem.namespace, problem.name, problem.reason, problem.message)
            current.add(key)
            if key in self.reported:
                continue
            ref = {"kind": problem.kind, "metadata": {"namespace": problem.namespace, "name": problem.name}}
            self.api.record_event(ref, problem.type, problem.reason, problem.message)
            line = f"{problem.kind} {problem.namespace}/{problem.name}: {problem.message}"
            log.warning("ingress-nginx: %s", line)
            for pod in list(self.pods.values()):
                self._log(pod, "W" if problem.type == "Warning" else "I", line)
        self.reported = current

    def _write_status(self, objects: ClusterObjects, rendered: Rendered) -> None:
        ip = self._lb_ip(objects)
        if ip is None:
            return
        status = {"loadBalancer": {"ingress": [{"ip": ip}]}}
        by_key = {(i["metadata"]["namespace"], i["metadata"]["name"]): i for i in objects.ingresses}
        for key in rendered.model.ingresses:
            ingress = by_key.get(key)
            if ingress is not None and (ingress.get("status") or {}) != status:
                self.api.update_status("Ingress", key[0], key[1], status)
        for (kind, namespace, name), status in rendered.gateway_status.items():
            self.api.update_status(kind, namespace, name, status)

    # -- managed workload: the controller containers --------------------------------------------
    def start_container(self, container: ManagedContainer) -> int:
        if not HOST_STATE_MOUNTPOINT.is_dir():
            raise RuntimeError(f"{HOST_STATE_MOUNTPOINT} is missing: install Debian's nginx (make setup)")
        state = container.directory / "nginx"
        state.mkdir(parents=True, exist_ok=True)
        runner = container.runner
        runner.run(["mount", "--bind", str(self.conf_dir), nginx.CONF_DIR])
        runner.run(["mount", "--bind", str(state), nginx.STATE_DIR])
        log_path = container.directory / f"{container.container}.nginx.log"
        log_file = open(log_path, "a")
        with self._lock:
            if self.applied is None:
                # The first pod: the configuration of the moment, checked here before nginx starts.
                objects, gateway_objects = self._objects()
                rendered = self._render(objects, gateway_objects)
                self._write_support(rendered.model)
                self._write_certificates(rendered.model)
                probe = NginxPod(container.namespace, container.pod, None, runner, state, log_path, log_file)
                error = self._test(rendered.text, probe)
                if error is not None:
                    log_file.close()
                    raise RuntimeError(f"the initial nginx configuration does not pass nginx -t: {error}")
                (self.conf_dir / "nginx.conf").write_text(rendered.text)
                self.applied = rendered
                self.good_versions = self._versions(rendered)
            # nginx overwrites its environment with its process title, so `testbed clean` cannot find
            # it by the cluster marker: it dies with the thread that started it (a kubelet thread)
            # instead, also when the testbed process is killed.
            process = runner.popen(["setpriv", "--pdeathsig", "TERM", "nginx", "-c", f"{nginx.CONF_DIR}/nginx.conf"],
                                   stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
            pod = NginxPod(container.namespace, container.pod, process, runner, state, log_path, log_file)
            pod.log_file.write(klog("I", f"Starting NGINX Ingress controller (testbed) in {container.pod}, "
                                         f"configuration {nginx.config_checksum(self.applied.text)}"))
            pod.log_file.flush()
            try:
                self._wait_serving(pod, nginx.config_checksum(self.applied.text))
            except BaseException:
                self._terminate(pod)
                raise
            self.pods[process.pid] = pod
        self.loop.trigger()   # catch up with anything that changed meanwhile
        return process.pid

    def _terminate(self, pod: NginxPod) -> None:
        if pod.process.poll() is None:
            pod.process.terminate()
            try:
                pod.process.wait(timeout=scaled(5))
            except subprocess.TimeoutExpired:
                pod.process.kill()
                pod.process.wait()
        pod.log_file.close()

    def stop_container(self, pid: int) -> None:
        with self._lock:
            pod = self.pods.pop(pid, None)
        if pod is not None:
            self._terminate(pod)

    def container_logs(self, pid: int) -> str:
        pod = self.pods.get(pid)
        if pod is None:
            return ""
        return pod.log_path.read_text(errors="replace") if pod.log_path.exists() else ""


GATEWAY_KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant")


def gateway_kinds() -> set[str]:
    from ..kinds import KINDS
    return {k for k in GATEWAY_KINDS if k in KINDS}
