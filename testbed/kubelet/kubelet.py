"""The kubelet of every emulated node: turns Pod objects into running pods and reports their status.

For each Pod bound to a node it creates the sandbox (a Mininet host on the node's bridge, with the
IP the control plane assigned), writes resolv.conf/hosts, exports the Service environment variables,
starts one process per container (image -> workload mapping in containers.py), and runs readiness
and liveness probes from the node's namespace. A pod is Ready only when it serves: with no
readinessProbe, the kubelet waits until the workload accepts connections on its declared TCP ports.
Deleting a pod stops its processes, removes its sandbox, then tells the control plane it is gone.

Work happens on two threads: one applies pod changes (Mininet is not thread-safe, so sandboxes are
made one at a time), one runs probes and watches processes. Store events only enqueue keys.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..addons import dns_service_ip
from ..components import ManagedContainer, ManagedImages, ManagedWorkload
from ..controlplane.scheduling import running_status
from ..net.hosts import CLUSTER_ENV
from ..net.runner import NamespaceRunner
from ..store import copy_object, now_rfc3339
from ..timescale import scaled
from . import podfiles
from .containers import Workload, workload_for
from .probes import ProbeResult, run_probe

log = logging.getLogger(__name__)
STARTUP_CHECK_TIMEOUT = 10.0   # seconds a workload may take to accept connections
RUN_CONTAINER = Path(__file__).resolve().parent.parent / "workloads" / "run_container.py"
START_ERROR = 128              # run_container.py: the container's process could not be exec'd
BACKOFF_INITIAL, BACKOFF_MAX = 10.0, 300.0   # kubelet's container restart back-off (seconds)
BACKOFF_RESET = 600.0          # a container that ran this long starts its back-off over


class KubeletAPI(Protocol):
    """What the kubelet uses of the API server (the ControlPlane provides it)."""
    lock: Any
    store: Any
    config: Any

    def assign_pod_ip(self, namespace: str, name: str) -> dict: ...
    def set_pod_status(self, namespace: str, name: str, status: dict) -> None: ...
    def finalize_pod_deletion(self, namespace: str, name: str) -> None: ...
    def record_event(self, obj: dict, type_: str, reason: str, message: str) -> None: ...


class PodSandboxes(Protocol):
    """What the kubelet uses of the emulated network: pod sandboxes (Mininet hosts on bridges)."""
    def pod_dir(self, pod: dict) -> Path: ...
    def create_pod_sandbox(self, pod: dict, hostname: str, etc: dict[str, Path]): ...
    def destroy_pod_sandbox(self, host, sandbox: dict) -> None: ...


@dataclass
class ContainerRuntime:
    name: str
    spec: dict
    workload: Workload
    pid: int | None = None
    started: float = 0.0
    restarts: int = 0
    ready: bool = False
    evaluated: bool = False         # readiness decided at least once since the last start
    next_probe: float = 0.0
    failures: int = 0               # consecutive liveness failures
    successes: int = 0              # consecutive readiness successes
    exit_file: Path | None = None
    log_file: Path | None = None
    exit_code: int | None = None
    finished_at: str | None = None
    crashes: int = 0                         # consecutive exits (CrashLoopBackOff)
    restart_at: float | None = None          # monotonic time of the next restart (back-off)
    managed: ManagedWorkload | None = None   # a component runs this container (components.py)
    start_error: str | None = None           # why the last start failed (StartError, config error)
    config_error: str | None = None          # CreateContainerConfigError (missing ConfigMap/Secret)
    env: dict[str, str] = field(default_factory=dict)   # the environment it was started with


@dataclass
class PodRuntime:
    namespace: str
    name: str
    uid: str
    node: str
    ip: str
    host: object                    # the pod's EmulatedHost
    sandbox: dict                   # what the emulation needs to tear it down
    dir: Path
    containers: dict[str, ContainerRuntime] = field(default_factory=dict)
    phase: str = "Running"
    reported: dict | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @property
    def ready(self) -> bool:
        return all(c.ready for c in self.containers.values())

    @property
    def evaluated(self) -> bool:
        return all(c.evaluated for c in self.containers.values())


class Kubelet:
    name = "kubelet"

    def __init__(self, api: KubeletAPI, sandboxes: PodSandboxes, nodes, managed: ManagedImages | None = None,
                 probe_tick: float = 0.05):
        self.cp = api
        self.sandboxes = sandboxes
        self.nodes = nodes
        self.managed = managed or ManagedImages()
        self.probe_tick = probe_tick
        self._progress = 0
        self._probing = False
        self.pods: dict[tuple[str, str], PodRuntime] = {}
        self._lock = threading.RLock()          # guards self.pods
        self._queue: "queue.Queue[tuple[str, str] | None]" = queue.Queue()
        self._busy = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._unwatch = None
        self.errors: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._unwatch = self.cp.store.watch(self._on_event)
        for target, name in ((self._work_loop, "kubelet-pods"), (self._probe_loop, "kubelet-probes")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        with self.cp.lock:
            for pod in self.cp.store.list("Pod"):
                self._queue.put((pod["metadata"]["namespace"], pod["metadata"]["name"]))

    def stop(self) -> None:
        if self._unwatch:
            self._unwatch()
            self._unwatch = None
        self._stopping.set()
        self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)
        with self._lock:
            for runtime in list(self.pods.values()):
                self._teardown(runtime)
            self.pods.clear()

    def _on_event(self, event) -> None:
        if event.kind == "Pod":
            self._queue.put((event.namespace, event.name))

    def idle(self) -> bool:
        return self._queue.empty() and self._busy == 0

    def all_evaluated(self) -> bool:
        with self._lock:
            return all(r.evaluated or r.phase != "Running" for r in self.pods.values())

    def _pending_pods(self) -> list[str]:
        """Pods bound to our nodes that are not running yet, or whose deletion is not done."""
        with self.cp.lock:
            return [p["metadata"]["name"] for p in self.cp.store.list("Pod")
                    if p["spec"].get("nodeName") in self.nodes.node_names
                    and (p["metadata"].get("deletionTimestamp")
                         or (p["metadata"]["namespace"], p["metadata"]["name"]) not in self.pods)]

    # -- component ---------------------------------------------------------------------------
    def synced(self) -> bool:
        return not self._probing and self.idle() and self.all_evaluated() and not self._pending_pods()

    def activity(self) -> str | None:
        pending = self._pending_pods()
        with self._lock:
            starting = [r.name for r in self.pods.values() if r.phase == "Running" and not r.evaluated]
        parts = []
        if pending:
            more = ", ..." if len(pending) > 3 else ""
            parts.append(f"{len(pending)} pods to start or remove ({', '.join(pending[:3])}{more})")
        if starting:
            parts.append(f"{len(starting)} pods starting")
        return "; ".join(parts) or None

    def progress(self) -> int:
        return self._progress

    def busy(self) -> bool:
        return self._busy > 0

    # -- pod changes -----------------------------------------------------------------------
    def _work_loop(self) -> None:
        while not self._stopping.is_set():
            key = self._queue.get()
            if key is None:
                break
            self._busy += 1
            try:
                self._sync_pod(key)
            except Exception as err:  # keep the kubelet alive; the error is reported
                log.exception("kubelet: pod %s/%s", *key)
                self.errors.append(f"{key[0]}/{key[1]}: {err}")
            finally:
                self._busy -= 1
                self._progress += 1

    def _sync_pod(self, key: tuple[str, str]) -> None:
        with self.cp.lock:
            stored = self.cp.store.get("Pod", *key)
            pod = copy_object(stored) if stored else None
        with self._lock:
            runtime = self.pods.get(key)
        if runtime is not None and (pod is None or pod["metadata"]["uid"] != runtime.uid):
            self._remove(runtime)
            runtime = None
        if pod is None or not pod["spec"].get("nodeName"):
            return
        if pod["spec"]["nodeName"] not in self.nodes.node_names:
            return
        if pod["metadata"].get("deletionTimestamp"):
            if runtime is not None:
                self._remove(runtime)
            self.cp.finalize_pod_deletion(*key)
            return
        if runtime is None:
            self._start_pod(pod)
        else:
            self._update_images(runtime, pod)

    def _start_pod(self, pod: dict) -> None:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        pod = self.cp.assign_pod_ip(namespace, name)
        if not (pod.get("status") or {}).get("podIP"):
            return   # no free pod IP on the node: Pending, with an event; retried when one is freed
        pod_dir = self.sandboxes.pod_dir(pod)
        pod_dir.mkdir(parents=True, exist_ok=True)
        domain = self.cp.config.cluster_domain
        files = {"/etc/resolv.conf": podfiles.resolv_conf(pod, dns_service_ip(self.cp.config.service_cidr), domain),
                 "/etc/hosts": podfiles.hosts_file(pod, domain),
                 "/etc/hostname": podfiles.pod_hostname(pod) + "\n"}
        etc = {}
        for target, content in files.items():
            path = pod_dir / Path(target).name
            path.write_text(content)
            etc[target] = path
        host, sandbox = self.sandboxes.create_pod_sandbox(pod, podfiles.pod_hostname(pod), etc)
        runtime = PodRuntime(namespace, name, pod["metadata"]["uid"], pod["spec"]["nodeName"],
                             pod["status"]["podIP"], host, sandbox, pod_dir)
        service_vars = self._service_vars(pod)
        for container in pod["spec"].get("containers") or []:
            c = ContainerRuntime(container["name"], container, workload_for(pod, container),
                                 managed=self.managed.workload_for(container.get("image", "")))
            c.log_file = pod_dir / f"{container['name']}.log"
            c.exit_file = pod_dir / f"{container['name']}.exit"
            runtime.containers[c.name] = c
            self._start_container(runtime, c, pod, service_vars)
        self._set_shell_environment(runtime)
        with self._lock:
            self.pods[runtime.key] = runtime
        self._report(runtime)

    def _set_shell_environment(self, runtime: PodRuntime) -> None:
        """The pod host's shell (`Cluster.pod(name).cmd()`) gets the first container's environment,
        so what runs there sees what the container sees. An environment too large to exec (tens of
        thousands of Service variables) is left out: bash would take minutes to load it and then
        fail every command; the container itself fails to start, as in Kubernetes."""
        first = next(iter(runtime.containers.values()), None)
        if first is not None and first.env and podfiles.fits_exec(first.env):
            runtime.host.export_env(first.env, runtime.dir / "shell.env")

    def _start_container(self, runtime: PodRuntime, c: ContainerRuntime, pod: dict, service_vars: dict) -> None:
        c.exit_file.unlink(missing_ok=True)
        c.exit_code = None
        c.start_error = None
        c.ready = c.evaluated = False
        c.successes = c.failures = 0
        c.started = time.monotonic()
        probe = c.spec.get("readinessProbe") or {}
        c.next_probe = c.started + float(probe.get("initialDelaySeconds", 0))
        try:
            c.env = podfiles.container_env(pod, c.spec, service_vars, self._lookup)
        except podfiles.ContainerConfigError as err:
            # The kubelet does not start it: CreateContainerConfigError, retried every second.
            if c.config_error != str(err):
                self.cp.record_event(self._pod_ref(runtime), "Warning", "Failed", f"Error: {err}")
            c.start_error = c.config_error = str(err)
            c.pid, c.evaluated, c.next_probe = None, True, time.monotonic() + 1.0
            return
        c.config_error = None
        if c.managed is not None:
            c.pid = c.managed.start_container(ManagedContainer(
                namespace=runtime.namespace, pod=runtime.name, container=c.name, spec=c.spec, node=runtime.node,
                ip=runtime.ip, directory=runtime.dir, cluster_id=runtime.host.cluster_id,
                runner=NamespaceRunner(pid=runtime.host.pid, env={CLUSTER_ENV: runtime.host.cluster_id})))
            return
        env_file = runtime.dir / f"{c.name}.env.json"
        env_file.write_text(json.dumps({"env": c.env, "workdir": c.spec.get("workingDir") or "/"}))
        c.pid = self._spawn(runtime.host, c.workload.argv, c.log_file, c.exit_file, env_file)

    @staticmethod
    def _spawn(host, argv, log_file: Path, exit_file: Path, env_file: Path) -> int:
        """Run argv in the pod's namespaces as its own process group with exactly the container's
        environment (workloads/run_container.py execs it in place); its exit code lands in
        exit_file. Too large an environment fails that exec with E2BIG, as runc's does for a real
        container: the log says "exec ...: argument list too long" and the container exits 1."""
        script = '"$@"; echo $? > "$0"'
        # The wrapper itself starts with nothing but the cluster marker (so that `testbed clean`
        # finds the process after a crash), whatever the pod's shell has.
        marker = f"{CLUSTER_ENV}={shlex.quote(host.cluster_id)}"
        launcher = [sys.executable, "-I", "-S", str(RUN_CONTAINER), str(env_file), "--", *argv]
        wrapped = (f"setsid env -i {marker} /bin/sh -c {shlex.quote(script)} {shlex.quote(str(exit_file))} "
                   + " ".join(shlex.quote(a) for a in launcher))
        output = host.cmd(f"{wrapped} >>{shlex.quote(str(log_file))} 2>&1 </dev/null & echo $!")
        return int(output.strip().splitlines()[-1])

    def _lookup(self, kind: str, namespace: str, name: str) -> dict | None:
        with self.cp.lock:
            obj = self.cp.store.get(kind, namespace, name)
            return copy_object(obj) if obj is not None else None

    def exec_command(self, namespace: str, name: str, command: str, container: str | None = None) -> str:
        """`kubectl exec`: run a shell command in the pod with the container's environment (and
        nothing of the host's), returning its output."""
        with self._lock:
            runtime = self.pods.get((namespace, name))
        if runtime is None:
            raise KeyError(f"{namespace}/{name}")
        c = runtime.containers.get(container) if container else next(iter(runtime.containers.values()), None)
        if c is None or (c.pid is None and c.managed is None):
            raise LookupError(f'container not found ("{container or (c.name if c else "")}")')
        env_file = runtime.dir / f"{c.name}.env.json"
        if c.managed is not None:
            env_file.write_text(json.dumps({"env": c.env, "workdir": "/"}))
        launcher = [sys.executable, "-I", "-S", str(RUN_CONTAINER), str(env_file), "--", "/bin/sh", "-c", command]
        marker = f"{CLUSTER_ENV}={shlex.quote(runtime.host.cluster_id)}"
        return runtime.host.cmd(f"env -i {marker} " + " ".join(shlex.quote(a) for a in launcher) + " </dev/null")

    def _update_images(self, runtime: PodRuntime, pod: dict) -> None:
        """An image change (allowed on a pod) restarts that container, as the kubelet does."""
        for container in pod["spec"].get("containers") or []:
            c = runtime.containers.get(container["name"])
            if c is not None and c.spec.get("image") != container.get("image"):
                self._kill(c)
                c.spec = container
                c.workload = workload_for(pod, container)
                c.restarts += 1
                self._start_container(runtime, c, pod, self._service_vars(pod))
        self._report(runtime)

    # -- teardown --------------------------------------------------------------------------
    def _kill(self, c: ContainerRuntime) -> None:
        if c.managed is not None:
            if c.pid is not None:
                c.managed.stop_container(c.pid)
            c.pid = None
            return
        if c.pid:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(c.pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline and _alive(c.pid):
                    time.sleep(0.02)
                if not _alive(c.pid):
                    break
        c.pid = None

    def _teardown(self, runtime: PodRuntime) -> None:
        for c in runtime.containers.values():
            self._kill(c)
        self.sandboxes.destroy_pod_sandbox(runtime.host, runtime.sandbox)

    def _remove(self, runtime: PodRuntime) -> None:
        with self._lock:
            self.pods.pop(runtime.key, None)
        self._teardown(runtime)

    # -- probes and process supervision ----------------------------------------------------
    def _probe_loop(self) -> None:
        while not self._stopping.wait(self.probe_tick):
            with self._lock:
                runtimes = list(self.pods.values())
            for runtime in runtimes:
                if self._stopping.is_set():
                    return
                # A container's new state and its report to the API are one step for synced():
                # between the two, settle() must not see "evaluated, nothing left to sync".
                self._probing = True
                try:
                    changed = any([self._check_container(runtime, c) for c in list(runtime.containers.values())])
                    if changed:
                        self._report(runtime)
                        self._progress += 1
                except Exception as err:
                    log.exception("kubelet probes: %s/%s", runtime.namespace, runtime.name)
                    self.errors.append(f"probe {runtime.namespace}/{runtime.name}: {err}")
                finally:
                    self._probing = False

    def _check_container(self, runtime: PodRuntime, c: ContainerRuntime) -> bool:
        """Returns True when the pod's reported status must change."""
        now = time.monotonic()
        if c.pid is not None and not _alive(c.pid):
            return self._container_exited(runtime, c)
        if c.pid is None and c.restart_at is not None and now >= c.restart_at:
            self._restart(runtime, c)
            return True
        if c.pid is None and c.config_error and now >= c.next_probe:
            # CreateContainerConfigError: the kubelet tries again on its next sync (the missing
            # ConfigMap or Secret may have been created meanwhile).
            self._restart(runtime, c)
            c.restarts -= 1   # never started: not a restart
            return c.pid is not None
        if runtime.phase != "Running" or c.pid is None:
            return False
        changed = False
        liveness = c.spec.get("livenessProbe")
        if liveness and now >= c.started + float(liveness.get("initialDelaySeconds", 0)) \
                and now >= getattr(c, "next_liveness", 0):
            c.next_liveness = now + float(liveness.get("periodSeconds", 10))
            result = self._probe(runtime, c, liveness)
            c.failures = 0 if result.success else c.failures + 1
            if c.failures >= int(liveness.get("failureThreshold", 3)):
                self.cp.record_event(self._pod_ref(runtime), "Warning", "Unhealthy",
                                     f"Liveness probe failed: {result.message}")
                self.cp.record_event(self._pod_ref(runtime), "Normal", "Killing",
                                     f"Container {c.name} failed liveness probe, will be restarted")
                # The kill is an exit like any other for the restart policy and the back-off: the
                # kubelet's doBackOff (kuberuntime_manager.go) finds the killed instance among the
                # pod's exited containers, so a container that keeps failing its probe goes into
                # CrashLoopBackOff (restarted at once the first time, then after 10 s, 20 s, ...)
                # instead of being restarted every failureThreshold x periodSeconds.
                self._kill(c)
                return self._container_exited(runtime, c)
        if now < c.next_probe:
            return False
        readiness = c.spec.get("readinessProbe")
        if readiness:
            c.next_probe = now + float(readiness.get("periodSeconds", 10))
            result = self._probe(runtime, c, readiness)
            ready = self._threshold(c, result, readiness)
            if not result.success and (c.ready or not c.evaluated):
                self.cp.record_event(self._pod_ref(runtime), "Warning", "Unhealthy",
                                     f"Readiness probe failed: {result.message}")
        else:
            ready = self._serves(runtime, c)
            c.next_probe = now + (1.0 if ready else 0.05)
            if not ready and now - c.started < scaled(STARTUP_CHECK_TIMEOUT):
                return False  # still starting: not evaluated yet
        if ready != c.ready or not c.evaluated:
            changed = ready != c.ready or not c.evaluated
            c.ready, c.evaluated = ready, True
        return changed

    @staticmethod
    def _threshold(c: ContainerRuntime, result: ProbeResult, probe: dict) -> bool:
        if result.success:
            c.successes += 1
            c.failures_ready = 0
            return c.ready or c.successes >= int(probe.get("successThreshold", 1))
        c.successes = 0
        c.failures_ready = getattr(c, "failures_ready", 0) + 1
        if not c.ready:
            return False
        return c.failures_ready < int(probe.get("failureThreshold", 3))

    def _serves(self, runtime: PodRuntime, c: ContainerRuntime) -> bool:
        """Without a readinessProbe: ready once every declared TCP port accepts connections and
        every declared UDP port has a socket bound in the pod (a UDP-only pod would otherwise be
        Ready before its server listens, and a client's first datagram would be lost)."""
        from .probes import tcp_check, udp_ports_bound
        netns = self.nodes.netns(runtime.node)
        if not all(tcp_check(netns, runtime.ip, port, 0.5).success for port in c.workload.tcp_ports):
            return False
        return not c.workload.udp_ports or set(c.workload.udp_ports) <= udp_ports_bound(runtime.host.pid)

    def _probe(self, runtime: PodRuntime, c: ContainerRuntime, probe: dict) -> ProbeResult:
        return run_probe(probe, c.spec, self.nodes.netns(runtime.node), runtime.ip,
                         getattr(runtime.host, "pid", None))

    def _container_exited(self, runtime: PodRuntime, c: ContainerRuntime) -> bool:
        try:
            c.exit_code = int(c.exit_file.read_text().strip())
        except (OSError, ValueError):
            c.exit_code = 137  # killed before it could report
        c.start_error = _start_error(c) if c.exit_code == START_ERROR else None
        c.finished_at = now_rfc3339()
        now = time.monotonic()
        if now - c.started > BACKOFF_RESET:
            c.crashes = 0
        c.crashes += 1
        c.pid = None
        c.ready = False
        c.evaluated = True
        policy = (self._pod_spec(runtime) or {}).get("restartPolicy", "Always")
        if policy == "Always" or (policy == "OnFailure" and c.exit_code != 0):
            # CrashLoopBackOff: the first restart at once, then 10 s, 20 s, ... up to 5 minutes.
            delay = 0.0 if c.crashes <= 1 else min(BACKOFF_INITIAL * 2 ** (c.crashes - 2), BACKOFF_MAX)
            c.restart_at = now + delay
            if delay == 0:
                self._restart(runtime, c)
        elif all(x.pid is None for x in runtime.containers.values()):
            failed = any(x.exit_code not in (0, None) for x in runtime.containers.values())
            runtime.phase = "Failed" if failed else "Succeeded"
        return True

    def _restart(self, runtime: PodRuntime, c: ContainerRuntime) -> None:
        self._kill(c)
        c.restarts += 1
        c.restart_at = None
        with self.cp.lock:
            stored = self.cp.store.get("Pod", runtime.namespace, runtime.name)
            pod = copy_object(stored) if stored else None
        if pod is None:
            return
        self._start_container(runtime, c, pod, self._service_vars(pod))

    def _service_vars(self, pod: dict) -> dict[str, str]:
        """The Service variables a container of `pod` starts with (computed at every container
        start, as the kubelet does; enableServiceLinks honoured). The Service list is a snapshot:
        stored objects are replaced, never changed in place, so no copies are needed."""
        with self.cp.lock:
            services = self.cp.store.list("Service")
        return podfiles.service_env(services, pod["metadata"]["namespace"],
                                    pod["spec"].get("enableServiceLinks", True))

    def _pod_spec(self, runtime: PodRuntime) -> dict | None:
        with self.cp.lock:
            pod = self.cp.store.get("Pod", runtime.namespace, runtime.name)
            return pod["spec"] if pod else None

    @staticmethod
    def _pod_ref(runtime: PodRuntime) -> dict:
        return {"kind": "Pod", "metadata": {"namespace": runtime.namespace, "name": runtime.name}}

    def _report(self, runtime: PodRuntime) -> None:
        with self.cp.lock:
            stored = self.cp.store.get("Pod", runtime.namespace, runtime.name)
            if stored is None or stored["metadata"]["uid"] != runtime.uid:
                return
            status = running_status(stored, ready=runtime.ready)
            status["phase"] = runtime.phase
            for entry in status["containerStatuses"]:
                c = runtime.containers.get(entry["name"])
                if c is None:
                    continue
                entry["ready"] = c.ready
                entry["restartCount"] = c.restarts
                entry.update(_container_state(c, runtime, entry))
            self.cp.set_pod_status(runtime.namespace, runtime.name, status)

    def logs(self, namespace: str, name: str, container: str | None = None) -> str:
        with self._lock:
            runtime = self.pods.get((namespace, name))
        if runtime is None:
            raise KeyError(f"{namespace}/{name}")
        chosen = [c for c in runtime.containers.values() if container in (None, c.name)]
        parts = []
        for c in chosen:
            if c.managed is not None:
                parts.append(c.managed.container_logs(c.pid) if c.pid is not None else "")
            elif c.log_file and c.log_file.exists():
                parts.append(c.log_file.read_text(errors="replace"))
        return "".join(parts)


def _start_error(c: ContainerRuntime) -> str | None:
    """The runtime's message when the container's process could not be started (its log's last line)."""
    try:
        lines = c.log_file.read_text(errors="replace").strip().splitlines()
    except OSError:
        return None
    return lines[-1] if lines and "unable to start container process" in lines[-1] else None


def _container_state(c: ContainerRuntime, runtime: PodRuntime, entry: dict) -> dict:
    """state / lastState / started of a containerStatuses entry, as the kubelet reports them."""
    if c.pid is None and c.config_error:
        return {"state": {"waiting": {"reason": "CreateContainerConfigError", "message": c.start_error}},
                "started": False}
    if c.exit_code is None:
        return {}
    terminated = {"exitCode": c.exit_code, "reason": "StartError" if c.start_error else
                  ("Completed" if c.exit_code == 0 else "Error"), "finishedAt": c.finished_at or now_rfc3339()}
    if c.start_error:
        terminated["message"] = c.start_error
    if c.pid is not None:   # running again after a restart: the exit is the last state
        return {"lastState": {"terminated": terminated}}
    if c.restart_at is not None:
        message = (f"back-off {_backoff_text(c)} restarting failed container={c.name} "
                   f"pod={runtime.name}_{runtime.namespace}({runtime.uid})")
        return {"state": {"waiting": {"reason": "CrashLoopBackOff", "message": message}},
                "lastState": {"terminated": terminated}, "started": False}
    return {"state": {"terminated": terminated}, "started": False}


def _backoff_text(c: ContainerRuntime) -> str:
    seconds = int(min(BACKOFF_INITIAL * 2 ** max(c.crashes - 2, 0), BACKOFF_MAX))
    return f"{seconds // 60}m{seconds % 60}s" if seconds >= 60 else f"{seconds}s"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists": it has exited.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False

