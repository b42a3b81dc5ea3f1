"""The control plane: admission (validation + allocation, all or nothing), the object store, and the
controllers run to a fixed point after every change.

Controllers are driven the way kube-controller-manager drives them: store events put keys on a work
queue (deduplicated), and `_reconcile()` drains it. Indexes (pods by label, owner and node; Services by
selector) keep each step proportional to what changed, so 10,000 Services stay fast.
"""
from __future__ import annotations

import ipaddress
import operator
import random
import threading
import warnings
from collections import defaultdict, deque
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Callable, Iterable, Iterator

from .. import schema
from ..errors import ArgumentError, ManifestError, Problem, TestbedError, echo
from ..kinds import KINDS, WRITABLE_KINDS, apply_defaults, to_storage_version
from ..manifests import Document
from ..store import DELETED, ObjectStore, WatchEvent, copy_object, now_rfc3339
from ..validation import VALIDATORS, name_problem, selector_matches, validate_object
from . import endpoints as endpoint_controller
from . import scheduling, workloads
from .allocators import ClusterIPAllocator, LoadBalancerPool, PodIPAM, PortAllocator
from .config import PENDING_PODS, ClusterConfig, NodeSpec
from .naming import random_suffix
from .services import ServiceAdmission, release_service, sync_load_balancer

# (ingress-nginx, the IngressClass `nginx` and the controller come with the `ingress` add-on.)
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Fields `apply` compares to tell "configured" from "unchanged".
CONTENT_FIELDS = ("spec", "data", "stringData", "binaryData", "type", "subsets", "endpoints", "ports",
                  "addressType", "immutable")
QUEUE_PRIORITY = {"ReplicaSet": 1, "ReplicationController": 1, "Deployment": 2, "Service": 3}  # pods: 0 (first)
# The NamespaceLifecycle admission plugin's immortal namespaces (plugin/pkg/admission/namespace/lifecycle).
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
# The API server's fieldValidation parameter (kubectl --validate=strict|warn|ignore).
FIELD_VALIDATION = ("Strict", "Warn", "Ignore")
INT32_MAX = 2**31 - 1
SCALABLE_KINDS = ("Deployment", "ReplicaSet", "ReplicationController")


class ManifestWarning(UserWarning):
    """A problem that does not stop an apply (an unknown field under fieldValidation Warn)."""


@dataclass
class Review:
    """What admission says about a batch: errors refuse it, warnings do not."""
    errors: list[Problem] = dataclass_field(default_factory=list)
    warnings: list[Problem] = dataclass_field(default_factory=list)


class NotFound(TestbedError):
    pass


def _namespace_of(obj: dict) -> str:
    return obj["metadata"].get("namespace", "") if KINDS[obj["kind"]].namespaced else ""


class ControlPlane:
    def __init__(self, config: ClusterConfig, hollow_kubelet: bool = True, addons=None):
        """`addons`: the cluster add-ons whose objects bootstrap creates (components.Addon); None:
        the default ones, without DNS when `config.cluster_dns` is off."""
        self.config = config
        if addons is None:
            from ..components import resolve_addons
            addons = tuple(a for a in resolve_addons(None) if config.cluster_dns or a.name != "dns")
        self.addons = tuple(addons)
        self.hollow_kubelet = hollow_kubelet
        self.lock = threading.RLock()
        self.rng = random.Random(config.seed)
        self.store = ObjectStore()
        self.cluster_ips = ClusterIPAllocator(config.service_cidr, self.rng)
        self.node_ports = PortAllocator(*config.node_port_range, self.rng)
        self.lb_pool = LoadBalancerPool(*config.lb_pool, self.rng)
        self.pod_ipam = PodIPAM({n.name: n.pod_cidr for n in config.nodes}, self.rng)
        self.max_pods = config.max_pods if config.max_pods is not None else \
            sum(r.size for r in self.pod_ipam.ranges.values()) + PENDING_PODS
        self.events: dict[tuple, list[dict]] = defaultdict(list)
        self._events_undo: dict[tuple, list[dict]] | None = None   # inside an atomic change
        # Work queues by priority: pods (scheduling, kubelet) act on a change before their ReplicaSets
        # count them (so a ReplicaSet of 10,000 pods syncs once, not once per pod), ReplicaSets before
        # Deployments look at the result, and Service endpoint syncs come last, so a Service syncs
        # once for a batch of pods and a rollout never sees pods its ReplicaSets have not made yet.
        self._queues: tuple[deque, ...] = (deque(), deque(), deque(), deque())
        self._queued: set[tuple[str, tuple]] = set()
        # indexes
        # pod -> (labels, controller ownerReference or None, node): what its index entries were
        self._pod_info: dict[tuple[str, str], tuple[dict, dict | None, str | None]] = {}
        self._pods_by_label: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        self.pods_by_owner: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self.pods_by_node: dict[str, set[tuple[str, str]]] = defaultdict(set)
        # (controller uid, node) -> how many of its pods are there: the scheduler's spreading score
        # in O(1), so 25,000 replicas schedule in linear time.
        self.owned_on_node: dict[tuple[str, str], int] = defaultdict(int)
        self._rs_by_owner: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._service_selectors: dict[tuple[str, str], dict] = {}
        self._services_by_label: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        self._slices_by_service: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._slice_owner: dict[tuple[str, str], str] = {}
        self._ip_waiters: dict[str, set[tuple[str, str]]] = defaultdict(set)   # node -> pods that found no IP
        self.store.watch(self._index_and_enqueue, immediate=True)
        self._bootstrap()

    # ------------------------------------------------------------------------------------
    # Bootstrap: what every cluster has before the user applies anything
    # ------------------------------------------------------------------------------------
    def _bootstrap(self) -> None:
        with self.lock:
            for name in SYSTEM_NAMESPACES:
                self.store.create({"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
            for node in self.config.nodes:
                self.store.create(self._node_object(node))
            builtin = [{
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": self.cluster_ips.nth(1),
                         "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
            }]
            for addon in self.addons:
                builtin += [copy_object(o) for o in addon.objects(self.config)]
            self.apply([Document("<bootstrap>:%d" % i, o) for i, o in enumerate(builtin, 1)])

    def _node_object(self, node: NodeSpec) -> dict:
        labels = {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", **dict(node.labels)}
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node.name, "labels": labels},
                "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]},
                "status": {"addresses": [{"type": "InternalIP", "address": node.internal_ip},
                                         {"type": "Hostname", "address": node.name}],
                           "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                           "nodeInfo": {"kubeletVersion": "v1.31.0-testbed", "osImage": "Mininet namespace",
                                        "containerRuntimeVersion": "testbed://processes"}}}

    # ------------------------------------------------------------------------------------
    # Queries used by the controllers
    # ------------------------------------------------------------------------------------
    def node_spec(self, name: str) -> NodeSpec:
        for node in self.config.nodes:
            if node.name == name:
                return node
        raise NotFound(f'nodes "{name}" not found')

    def node_labels(self, name: str) -> dict:
        node = self.store.get("Node", "", name)
        return (node["metadata"].get("labels") or {}) if node else {}


    def pods_owned_by(self, uid: str) -> list[dict]:
        return [p for p in (self.store.get("Pod", ns, n) for ns, n in self.pods_by_owner.get(uid, ())) if p]

    def replica_sets_owned_by(self, uid: str) -> list[dict]:
        return [r for r in (self.store.get("ReplicaSet", ns, n) for ns, n in self._rs_by_owner.get(uid, ())) if r]

    def pod_count_on(self, node: str) -> int:
        return len(self.pods_by_node.get(node, ()))

    def pods_on_node_owned(self, node: str, owner_uid: str) -> int:
        return self.owned_on_node.get((owner_uid, node), 0)

    def pods_selected(self, namespace: str, selector: dict) -> list[dict]:
        """Pods in `namespace` whose labels match a map selector (via the label index)."""
        sets = [self._pods_by_label.get((namespace, k, v), set()) for k, v in selector.items()]
        if not sets:
            return []
        names = set.intersection(*sets) if len(sets) > 1 else sets[0]
        return [p for p in (self.store.get("Pod", namespace, n) for n in names) if p]

    def pods_matching(self, namespace: str, selector: dict) -> list[dict]:
        """Pods in `namespace` matching a LabelSelector or a map selector: the label index narrows by
        the equality terms, then every term is checked."""
        equal = selector.get("matchLabels") or {} if ("matchLabels" in selector or "matchExpressions" in selector) \
            else selector
        candidates = self.pods_selected(namespace, equal) if equal else self.store.list("Pod", namespace)
        return [p for p in candidates if selector_matches(selector, p["metadata"].get("labels") or {})]

    def slices_of(self, namespace: str, service: str) -> list[dict]:
        names = self._slices_by_service.get((namespace, service), ())
        return [s for s in (self.store.get("EndpointSlice", namespace, n) for n in names) if s]

    def record_event(self, obj: dict, type_: str, reason: str, message: str) -> None:
        key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if self._events_undo is not None and key not in self._events_undo:
            self._events_undo[key] = list(self.events.get(key, ()))
        events = self.events[key]
        events.append({"type": type_, "reason": reason, "message": message, "time": now_rfc3339()})
        del events[:-20]

    # ------------------------------------------------------------------------------------
    # Indexes and the work queue
    # ------------------------------------------------------------------------------------
    def _enqueue(self, handler: str, key: tuple) -> None:
        item = (handler, key)
        if item not in self._queued:
            self._queued.add(item)
            self._queues[QUEUE_PRIORITY.get(handler, 0)].append(item)

    def _index_and_enqueue(self, event: WatchEvent) -> None:
        kind, ns, name, obj = event.kind, event.namespace, event.name, event.obj
        deleted = event.type == DELETED
        if kind == "Pod":
            self._index_pod(ns, name, None if deleted else obj)
        elif kind == "ReplicaSet":
            owner = workloads.controller_of(obj)
            if owner:
                (self._rs_by_owner[owner["uid"]].discard if deleted else self._rs_by_owner[owner["uid"]].add)((ns, name))
                self._enqueue("Deployment", (ns, owner["name"]))
            if not deleted:
                self._enqueue("ReplicaSet", (ns, name))
        elif kind == "ReplicationController" and not deleted:
            self._enqueue("ReplicationController", (ns, name))
        elif kind == "Deployment" and not deleted:
            self._enqueue("Deployment", (ns, name))
        elif kind == "Service":
            self._index_service(ns, name, None if deleted else obj)
            if not deleted:
                self._enqueue("Service", (ns, name))
        elif kind == "Endpoints":
            # Endpoints the endpoints controller wrote itself need no further sync; user-written ones
            # are mirrored into EndpointSlices (or, deleted, unmirrored).
            ours = endpoint_controller.TRIGGER_TIME_ANNOTATION in (obj["metadata"].get("annotations") or {})
            if deleted or not ours:
                self._enqueue("Service", (ns, name))
        elif kind == "EndpointSlice":
            owner = (obj["metadata"].get("labels") or {}).get(endpoint_controller.SERVICE_NAME_LABEL)
            previous = self._slice_owner.pop((ns, name), None)
            if previous:
                self._slices_by_service[(ns, previous)].discard(name)
            if owner and not deleted:
                self._slices_by_service[(ns, owner)].add(name)
                self._slice_owner[(ns, name)] = owner

    def _index_pod(self, ns: str, name: str, pod: dict | None) -> None:
        key = (ns, name)
        old = self._pod_info.pop(key, None)
        new_labels = (pod["metadata"].get("labels") or {}) if pod is not None else None
        if old:
            old_labels, old_owner, old_node = old
            for k, v in old_labels.items():
                self._pods_by_label[(ns, k, v)].discard(name)
            if old_owner:
                self.pods_by_owner[old_owner["uid"]].discard(key)
                if old_node:
                    self.owned_on_node[(old_owner["uid"], old_node)] -= 1
            if old_node:
                self.pods_by_node[old_node].discard(key)
            if old_labels != new_labels:  # Services that selected the pod before, and no longer
                self._enqueue_services_for(ns, old_labels)
        if pod is None:
            if old and old[1]:  # its controller must replace it
                self._enqueue(old[1]["kind"], (ns, old[1]["name"]))
            return
        labels = dict(pod["metadata"].get("labels") or {})
        owner = workloads.controller_of(pod)
        node = pod["spec"].get("nodeName")
        self._pod_info[key] = (labels, owner, node)
        for k, v in labels.items():
            self._pods_by_label[(ns, k, v)].add(name)
        if owner:
            self.pods_by_owner[owner["uid"]].add(key)
            self._enqueue(owner["kind"], (ns, owner["name"]))
            if node:
                self.owned_on_node[(owner["uid"], node)] += 1
        elif not pod["metadata"].get("deletionTimestamp"):
            self._enqueue_adopters(ns, labels)
        if node:
            self.pods_by_node[node].add(key)
        else:
            self._enqueue("schedule", key)
        if self.hollow_kubelet:
            self._enqueue("kubelet", key)
        self._enqueue_services_for(ns, labels)

    def _enqueue_adopters(self, ns: str, labels: dict) -> None:
        """An orphan pod: the ReplicaSets and ReplicationControllers whose selector matches it may
        adopt it (the ReplicaSet controller's addPod / getPodReplicaSets)."""
        for kind in ("ReplicaSet", "ReplicationController"):
            for rs in self.store.list(kind, ns):
                if selector_matches(rs["spec"].get("selector") or {}, labels):
                    self._enqueue(kind, (ns, rs["metadata"]["name"]))

    def _enqueue_services_for(self, ns: str, labels: dict) -> None:
        candidates: set[str] = set()
        for k, v in labels.items():
            candidates |= self._services_by_label.get((ns, k, v), set())
        for service in candidates:
            if selector_matches(self._service_selectors[(ns, service)], labels):
                self._enqueue("Service", (ns, service))

    def _index_service(self, ns: str, name: str, service: dict | None) -> None:
        old = self._service_selectors.pop((ns, name), None)
        for k, v in (old or {}).items():
            self._services_by_label[(ns, k, v)].discard(name)
        selector = ((service or {}).get("spec") or {}).get("selector") or {}
        if service is not None and selector:
            self._service_selectors[(ns, name)] = dict(selector)
            for k, v in selector.items():
                self._services_by_label[(ns, k, v)].add(name)

    def _reconcile(self) -> None:
        handlers: dict[str, Callable] = {
            "Deployment": lambda o: workloads.sync_deployment(self, o),
            "ReplicaSet": lambda o: workloads.sync_replica_set(self, o),
            "ReplicationController": lambda o: workloads.sync_replica_set(self, o),
            "Service": self._sync_service,
            "schedule": lambda o: scheduling.schedule(self, o),
            "kubelet": lambda o: scheduling.hollow_kubelet_sync(self, o),
        }
        kind_of = {"schedule": "Pod", "kubelet": "Pod"}
        steps = 0
        while any(self._queues):
            handler, (ns, name) = item = next(q for q in self._queues if q).popleft()
            self._queued.discard(item)
            obj = self.store.get(kind_of.get(handler, handler), ns, name)
            if obj is not None:
                handlers[handler](obj)
            steps += 1
            if steps > 10_000_000:  # a controller bug would otherwise loop forever
                raise RuntimeError("control plane did not converge")

    def _sync_service(self, service: dict) -> None:
        sync_load_balancer(self, service)
        service = self.store.get("Service", service["metadata"]["namespace"], service["metadata"]["name"])
        endpoint_controller.sync_service_endpoints(self, service)

    # ------------------------------------------------------------------------------------
    # Admission and apply
    # ------------------------------------------------------------------------------------
    def _prepare(self, doc: Document, review: Review, field_validation: str) -> dict | None:
        """Recognise, decode (types, as the API server's decoder does), convert, default and
        validate one document; None when it has problems."""
        obj = doc.obj
        kind, name = doc.kind, doc.name
        errors_before = len(review.errors)

        def problem(field_path: str, reason: str, warning: bool = False) -> None:
            (review.warnings if warning else review.errors).append(Problem(doc.source, kind, name, field_path, reason))

        api_version = obj.get("apiVersion")
        for key, value in (("kind", obj.get("kind")), ("apiVersion", api_version)):
            if value in (None, ""):
                problem(key, f"Required value: every object needs {'a kind' if key == 'kind' else 'an apiVersion'}")
                return None
            if not isinstance(value, str):
                problem(key, f"Invalid value: {echo(value)}: must be a string")
                return None
        info = KINDS.get(kind)
        if info is None or kind not in WRITABLE_KINDS:
            problem("kind", f'Unsupported value: "{kind}": no matches for kind "{kind}" in version "{api_version}"'
                    + ("" if info is None else " (this kind is managed by the testbed)"))
            return None
        if api_version not in info.group_versions:
            problem("apiVersion", f'Unsupported value: "{api_version}": no matches for kind "{kind}" in version '
                    f'"{api_version}" (supported: {", ".join(info.group_versions)})')
            return None
        if obj.get("metadata") is None:
            problem("metadata", "Required value")
            return None
        decoded = schema.decode(obj, api_version, kind, doc.duplicates)
        if field_validation != "Ignore":
            for path, reason in decoded.duplicates:   # kubectl's strict YAML decoding refuses them
                problem(path, reason)
            for path in decoded.unknown:
                problem(path, f'unknown field "{path}"', warning=field_validation == "Warn")
        for path, reason in decoded.errors:
            problem(path, reason)
        if len(review.errors) > errors_before:
            return None   # the decoder refuses the object before any validation rule runs
        converted = decoded.obj
        if not info.namespaced:
            converted["metadata"].pop("namespace", None)   # the API server clears it on cluster-scoped kinds
        converted = apply_defaults(to_storage_version(converted))
        self._generate_name(converted, problem)
        for field_path, reason in validate_object(converted, namespaced=info.namespaced,
                                                  service_cidr=self.config.service_cidr,
                                                  node_port_range=self.config.node_port_range):
            problem(field_path, reason)
        converted["metadata"].pop("resourceVersion", None)
        converted.pop("status", None)  # status belongs to controllers, as in the API server
        return None if len(review.errors) > errors_before else converted

    def _generate_name(self, obj: dict, problem: Callable[[str, str], None]) -> None:
        """generateName: the API server appends 5 random characters (names.SimpleNameGenerator cuts the
        prefix to 58 characters) before it validates the name."""
        meta = obj["metadata"]
        prefix = meta.get("generateName")
        if meta.get("name") or not prefix:
            return
        # ValidateObjectMeta checks generateName as a name prefix: a trailing '-' is allowed.
        message = name_problem(prefix[:-1] + "a" if prefix.endswith("-") else prefix, VALIDATORS[obj["kind"]][1])
        if message:
            problem("metadata.generateName", f"Invalid value: {echo(prefix)}: {message}")
            return
        namespace = meta.get("namespace", "") if KINDS[obj["kind"]].namespaced else ""
        while True:
            candidate = prefix[:58] + random_suffix(self.rng)
            if self.store.get(obj["kind"], namespace, candidate) is None:
                meta["name"] = candidate
                return

    def review(self, documents: Iterable[Document], field_validation: str = "Warn") -> Review:
        """Every error the batch would be refused for, and every warning; changes nothing."""
        with self.lock:
            review, _ = self._admit(list(documents), field_validation)
            return review

    def validate(self, documents: Iterable[Document], field_validation: str = "Warn") -> list[Problem]:
        """Every problem the batch would be rejected for; changes nothing."""
        return self.review(documents, field_validation).errors

    def _admit(self, documents: list[Document], field_validation: str = "Warn") \
            -> tuple[Review, list[tuple[Document, dict, dict | None]]]:
        if field_validation not in FIELD_VALIDATION:
            raise ArgumentError(f"field validation must be one of {', '.join(FIELD_VALIDATION)}, "
                                f"not {echo(field_validation)}")
        review = Review()
        problems = review.errors
        admitted: list[tuple[Document, dict, dict | None]] = []
        new_namespaces: set[str] = set()
        seen: dict[tuple, str] = {}
        admission = ServiceAdmission(self)
        new_pods = 0
        for doc in documents:
            if not isinstance(doc, Document) or not isinstance(doc.obj, dict):
                raise ArgumentError(f"cannot admit a {type(doc).__name__}: give Documents (testbed.manifests)")
            obj = self._prepare(doc, review, field_validation)
            if obj is None:
                continue
            kind, meta = obj["kind"], obj["metadata"]
            namespace = _namespace_of(obj)
            key = (kind, namespace, meta["name"])
            if key in seen:
                problems.append(Problem(doc.source, kind, meta["name"], "metadata.name",
                                        f"Duplicate value: {echo(meta['name'])}: also defined at {seen[key]}"))
                continue
            seen[key] = doc.source
            if kind == "Namespace":
                new_namespaces.add(meta["name"])
            elif namespace and namespace not in new_namespaces and self.store.get("Namespace", "", namespace) is None:
                problems.append(Problem(doc.source, kind, meta["name"], "metadata.namespace",
                                        f'Not found: namespaces "{namespace}" not found'))
                continue
            old = self.store.get(kind, namespace, meta["name"])
            if kind == "Pod" and old is None:
                new_pods += 1
                if self.store.count("Pod") + new_pods > self.max_pods:
                    problems.append(Problem(doc.source, kind, meta["name"], "", self.pod_quota_message()))
                    continue
            for field_path, reason in self._immutable_problems(obj, old):
                problems.append(Problem(doc.source, kind, meta["name"], field_path, reason))
            if kind == "Service":
                for field_path, reason in admission.plan(obj, old):
                    problems.append(Problem(doc.source, kind, meta["name"], field_path, reason))
            admitted.append((doc, obj, old))
        if not problems:
            self._pending_admission = admission
        return review, admitted

    def pod_quota_message(self) -> str:
        return (f"Forbidden: the cluster holds at most {self.max_pods} pods (ClusterConfig.max_pods, the "
                "testbed's stand-in for etcd's storage quota)")

    @staticmethod
    def _immutable_problems(obj: dict, old: dict | None) -> list[tuple[str, str]]:
        if old is None:
            return []
        kind = obj["kind"]
        if kind in ("Deployment", "ReplicaSet") and obj["spec"].get("selector") != old["spec"].get("selector"):
            return [("spec.selector", f"Invalid value: {echo(obj['spec'].get('selector'))}: field is immutable")]
        if kind == "Pod":
            strip = lambda spec: {**spec, "nodeName": None,  # noqa: E731 - local helper
                                  "containers": [{**c, "image": None} for c in spec.get("containers") or []]}
            if strip(obj["spec"]) != strip(old["spec"]):
                return [("spec", "Forbidden: pod updates may not change fields other than `spec.containers[*].image`")]
        if kind == "Secret" and old.get("immutable") and (obj.get("data") != old.get("data")):
            return [("data", "Forbidden: field is immutable when `immutable` is set")]
        return []

    def apply(self, documents: Iterable[Document], field_validation: str = "Warn") -> list[str]:
        """Create or update every object, or none: returns kubectl's lines (`service/x created`).

        All or nothing includes what the controllers do in reaction (ReplicaSets, pods, pod IPs,
        endpoints, LoadBalancer IPs): if any of it fails, the store, the allocators and the events are
        as they were. Warnings (unknown fields) are issued as ManifestWarning."""
        documents = list(documents)
        with self.lock:
            review, admitted = self._admit(documents, field_validation)
            if review.errors:
                raise ManifestError(review.errors)
            for warning in review.warnings:
                warnings.warn(ManifestWarning(str(warning)), stacklevel=2)
            admission = self._pending_admission
            results: list[str] = []
            with self._atomic():
                for _doc, obj, old in admitted:
                    results.append(self._write(obj, old))
                admission.commit()
            return results

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """A change and the controllers' reactions to it commit together, or not at all: a failure
        rolls back the store, the allocators and the events, and is reported as an internal error."""
        if self.store.in_transaction:   # nested: the outer change decides
            yield
            return
        self._events_undo = {}
        try:
            with self.store.transaction():
                yield
                self._reconcile()
        except BaseException as err:
            for queue in self._queues:
                queue.clear()
            self._queued.clear()
            for key, events in self._events_undo.items():
                if events:
                    self.events[key] = events
                else:
                    self.events.pop(key, None)
            self._rebuild_allocators()
            if isinstance(err, (TestbedError, KeyboardInterrupt, SystemExit)):
                raise
            raise TestbedError(f"internal error, nothing was changed: {type(err).__name__}: {err}") from err
        finally:
            self._events_undo = None

    def _write(self, obj: dict, old: dict | None) -> str:
        info = KINDS[obj["kind"]]
        label = f"{info.resource}/{obj['metadata']['name']}"
        if old is None:
            if obj["kind"] == "Pod":
                obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            elif obj["kind"] == "Namespace":
                obj["status"] = {"phase": "Active"}
            self.store.create(obj)
            return f"{label} created"
        unchanged = all(obj.get(f) == old.get(f) for f in CONTENT_FIELDS) and \
            all(obj["metadata"].get(f) == old["metadata"].get(f) for f in ("labels", "annotations"))
        if unchanged:
            return f"{label} unchanged"
        merged = copy_object(old)
        for field in CONTENT_FIELDS:
            if field in obj:
                merged[field] = obj[field]
            else:
                merged.pop(field, None)
        for field in ("labels", "annotations"):
            if obj["metadata"].get(field) is not None:
                merged["metadata"][field] = obj["metadata"][field]
            else:
                merged["metadata"].pop(field, None)
        if obj["kind"] == "Pod":  # only images may change; the kubelet restarts those containers
            merged["spec"] = {**old["spec"], "containers": obj["spec"]["containers"]}
        self.store.update(merged, bump_generation=old.get("spec") != merged.get("spec"))
        return f"{label} configured"

    def _rebuild_allocators(self) -> None:
        """After a failed batch: allocations are exactly what the (rolled back) store holds."""
        self.cluster_ips.used.clear()
        self.node_ports.used.clear()
        self.lb_pool.used.clear()
        for ip_range in self.pod_ipam.ranges.values():
            ip_range.used.clear()
        self._ip_waiters.clear()
        for pod in self.store.list("Pod"):
            node, ip = pod["spec"].get("nodeName"), (pod.get("status") or {}).get("podIP")
            if ip and not pod["spec"].get("hostNetwork"):
                self.pod_ipam.reserve(node, ip)
            elif node in self.pod_ipam.ranges and not ip and not pod["spec"].get("hostNetwork"):
                self._ip_waiters[node].add((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        for service in self.store.list("Service"):
            spec = service.get("spec") or {}
            if spec.get("clusterIP") not in (None, "", "None"):
                self.cluster_ips.reserve(spec["clusterIP"])
            for port in spec.get("ports") or []:
                if port.get("nodePort"):
                    self.node_ports.reserve(port["nodePort"])
            if spec.get("healthCheckNodePort"):
                self.node_ports.reserve(spec["healthCheckNodePort"])
            for ingress in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                if ingress.get("ip") and self.lb_pool.contains(ingress["ip"]):
                    self.lb_pool.reserve(ingress["ip"])

    # ------------------------------------------------------------------------------------
    # Deletion (with garbage collection of dependents)
    # ------------------------------------------------------------------------------------
    def delete(self, kind: str, name: str, namespace: str = "default") -> str:
        if not isinstance(name, str) or not isinstance(namespace, (str, type(None))):
            raise ArgumentError(f"delete: the name and namespace are strings, not {echo(name)} and {echo(namespace)}")
        with self.lock:
            info = KINDS[kind]
            obj = self._existing(kind, name, namespace)
            if kind == "Node":
                raise TestbedError("nodes come from the topology and cannot be deleted")
            if kind == "Namespace" and name in IMMORTAL_NAMESPACES:
                raise TestbedError(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
            with self._atomic():
                self._delete_tree(obj)
            return f'{info.resource} "{name}" deleted'

    def _delete_tree(self, obj: dict) -> None:
        kind, meta = obj["kind"], obj["metadata"]
        ns = meta.get("namespace", "")
        if kind == "Namespace":
            for other_kind in list(self.store.kinds()):
                if KINDS[other_kind].namespaced:
                    for child in self.store.list(other_kind, meta["name"]):
                        if self.store.get(other_kind, meta["name"], child["metadata"]["name"]) is not None:
                            self._delete_tree(child)
            self.store.delete("Namespace", "", meta["name"])
            return
        if kind == "Pod":
            self.delete_pod(ns, meta["name"])
            return
        uid = meta["uid"]
        if kind == "Deployment":
            for rs in self.replica_sets_owned_by(uid):
                self._delete_tree(rs)
        elif kind in ("ReplicaSet", "ReplicationController"):
            for pod in self.pods_owned_by(uid):
                self.delete_pod(ns, pod["metadata"]["name"])
        elif kind == "Service":
            release_service(self, obj)
            # A freed LoadBalancer IP goes to a Service still waiting for one (as MetalLB does).
            for other in self.store.list("Service"):
                if other["spec"].get("type") == "LoadBalancer" and other is not obj \
                        and not ((other.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
                    self._enqueue("Service", (other["metadata"]["namespace"], other["metadata"]["name"]))
            for endpoint_slice in self.slices_of(ns, meta["name"]):
                if any(ref.get("uid") == uid for ref in endpoint_slice["metadata"].get("ownerReferences") or []):
                    self.store.delete("EndpointSlice", ns, endpoint_slice["metadata"]["name"])
            endpoints = self.store.get("Endpoints", ns, meta["name"])
            if endpoints and endpoint_controller.TRIGGER_TIME_ANNOTATION in (endpoints["metadata"].get("annotations") or {}):
                self.store.delete("Endpoints", ns, meta["name"])
        self.store.delete(kind, ns, meta["name"])

    def delete_pod(self, namespace: str, name: str) -> None:
        """Graceful deletion: mark the pod terminating; its kubelet finishes the deletion once the
        processes are gone (at once for the hollow kubelet)."""
        pod = self.store.get("Pod", namespace, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        if not pod["spec"].get("nodeName"):
            self.finalize_pod_deletion(namespace, name)
            return
        updated = copy_object(pod)
        updated["metadata"]["deletionTimestamp"] = now_rfc3339()
        updated["metadata"]["deletionGracePeriodSeconds"] = pod["spec"].get("terminationGracePeriodSeconds", 30)
        self.store.update(updated)

    def finalize_pod_deletion(self, namespace: str, name: str) -> None:
        with self.lock, self._atomic():
            pod = self.store.delete("Pod", namespace, name)
            if pod is None:
                return
            node, ip = pod["spec"].get("nodeName"), (pod.get("status") or {}).get("podIP")
            waiters = self._ip_waiters.get(node)
            if waiters:
                waiters.discard((namespace, name))
            if ip and not pod["spec"].get("hostNetwork"):
                self.pod_ipam.release(node, ip)
                self._retry_a_pod_waiting_for_an_ip(node)

    def _retry_a_pod_waiting_for_an_ip(self, node: str) -> None:
        """An IP was freed on `node`: the oldest pod there that found none tries again (a kubelet
        retries a sandbox whose CNI ADD failed). Touching it sends every kubelet a pod event."""
        waiters = self._ip_waiters.get(node)
        while waiters:
            pods = [p for p in (self.store.get("Pod", *key) for key in waiters) if p is not None]
            waiters.intersection_update((p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods)
            if not pods:
                return
            oldest = min(pods, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))
            waiters.discard((oldest["metadata"]["namespace"], oldest["metadata"]["name"]))
            if not (oldest.get("status") or {}).get("podIP") and not oldest["metadata"].get("deletionTimestamp"):
                self.store.update(copy_object(oldest))
                return

    def no_pod_ip(self, pod: dict) -> None:
        """IPAM found no free pod IP for `pod`: it stays Pending with the event a kubelet records when
        its CNI plugin fails, and is retried when an IP is freed on its node."""
        node = pod["spec"].get("nodeName")
        self._ip_waiters[node].add((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        ip_range = self.pod_ipam.ranges.get(node)
        span = f"{ipaddress.IPv4Address(ip_range.first)}-{ipaddress.IPv4Address(ip_range.last)}" if ip_range else "none"
        self.record_event(pod, "Warning", "FailedCreatePodSandBox",
                          'Failed to create pod sandbox: plugin type="host-local" failed (add): failed to allocate '
                          f"for range 0: no IP addresses available in range set: {span}")

    # ------------------------------------------------------------------------------------
    # Kubelet reports and kubectl verbs
    # ------------------------------------------------------------------------------------
    def assign_pod_ip(self, namespace: str, name: str) -> dict:
        """Called by a kubelet when it creates the pod's sandbox: returns the pod with its IP."""
        with self.lock:
            pod = self.store.get("Pod", namespace, name)
            if pod is None:
                raise NotFound(f'pods "{name}" not found')
            if (pod.get("status") or {}).get("podIP"):
                return copy_object(pod)
            with self._atomic():
                updated = scheduling.assign_pod_ip(self, copy_object(pod))
                if updated is None:
                    self.no_pod_ip(pod)
                    return copy_object(pod)
                self.store.update(updated)
            return copy_object(updated)

    def set_pod_status(self, namespace: str, name: str, status: dict) -> None:
        self.update_status("Pod", namespace, name, status)

    def update_status(self, kind: str, namespace: str, name: str, status: dict) -> bool:
        """Replace an object's status (the status subresource controllers write); False when the
        object is gone or the status is unchanged."""
        with self.lock:
            obj = self.store.get(kind, namespace, name)
            if obj is None or obj.get("status") == status:
                return False
            updated = copy_object(obj)
            updated["status"] = copy_object(status)
            with self._atomic():
                self.store.update(updated)
            return True

    def api_view(self):
        """What components get instead of the control plane (controlplane/view.py)."""
        from .view import ApiView
        return ApiView(self.store, self.lock, self.config, self.record_event, self.update_status)

    def scale(self, kind: str, name: str, replicas: int, namespace: str = "default") -> str:
        """The scale subresource: spec.replicas of a Deployment, ReplicaSet or ReplicationController."""
        try:
            if isinstance(replicas, bool):
                raise TypeError
            replicas = operator.index(replicas)   # int, numpy integers, ...; not "3", not 3.0
        except TypeError:
            raise ArgumentError(f"--replicas: Invalid value: {echo(replicas)}: must be an integer") from None
        if not 0 <= replicas <= INT32_MAX:
            raise TestbedError(f"--replicas: Invalid value: {replicas}: must be between 0 and {INT32_MAX} "
                               "(an int32), inclusive")
        if kind not in SCALABLE_KINDS:
            raise TestbedError(f'{KINDS[kind].plural} "{name}" cannot be scaled: only Deployments, ReplicaSets '
                               "and ReplicationControllers have replicas")
        with self.lock:
            obj = self._existing(kind, name, namespace)
            updated = copy_object(obj)
            updated["spec"]["replicas"] = replicas
            with self._atomic():
                self.store.update(updated, bump_generation=True)
            return f"{KINDS[kind].resource}/{name} scaled"

    def set_image(self, kind: str, name: str, images: dict[str, str], namespace: str = "default",
                  change_cause: str | None = None) -> str:
        with self.lock:
            obj = self._existing(kind, name, namespace)
            updated = copy_object(obj)
            spec = updated["spec"] if kind == "Pod" else updated["spec"]["template"]["spec"]
            known = {c["name"] for c in spec["containers"]}
            for container in images:
                if container != "*" and container not in known:
                    raise TestbedError(f'unable to find container named "{container}"')
            for container in spec["containers"]:
                image = images.get(container["name"], images.get("*"))
                if image:
                    container["image"] = image
            if change_cause:
                updated["metadata"].setdefault("annotations", {})[workloads.CHANGE_CAUSE] = change_cause
            with self._atomic():
                self.store.update(updated, bump_generation=True)
            return f"{KINDS[kind].resource}/{name} image updated"

    def rollout_history(self, kind: str, name: str, namespace: str = "default") -> list[tuple[int, str]]:
        with self.lock:
            return workloads.rollout_history(self, self._existing(kind, name, namespace))

    def rollout_undo(self, kind: str, name: str, namespace: str = "default", to_revision: int | None = None) -> str:
        with self.lock:
            deployment = self._existing(kind, name, namespace)
            try:
                template = workloads.rollback_template(self, deployment, to_revision)
            except LookupError as err:
                raise TestbedError(str(err)) from None
            if template == deployment["spec"]["template"]:
                return f"{KINDS[kind].resource}/{name} skipped rollback (current template already matches revision)"
            updated = copy_object(deployment)
            updated["spec"]["template"] = template
            annotations = updated["metadata"].get("annotations") or {}
            annotations.pop(workloads.CHANGE_CAUSE, None)
            with self._atomic():
                self.store.update(updated, bump_generation=True)
            return f"{KINDS[kind].resource}/{name} rolled back"

    # ------------------------------------------------------------------------------------
    # Node metadata: `kubectl label|annotate|patch|edit node ...`
    # ------------------------------------------------------------------------------------
    def update_node_metadata(self, changes: dict[str, tuple[dict, dict]]) -> list[str]:
        """Set the labels and annotations of Nodes: {name: (labels, annotations)}, all or none.

        Nodes come from the topology, so `apply` refuses them, but their labels and annotations are
        the user's, as on a real cluster (`kubectl label node node1 disktype=ssd` for a nodeSelector).
        They are validated as the API server validates metadata; then unscheduled pods are queued
        for the scheduler again, as a node update does in kube-scheduler. Returns kubectl's
        `node/NAME configured|unchanged` lines."""
        from ..validation import FieldErrors, check_annotations, check_labels
        with self.lock:
            problems, updates, lines = [], [], []
            for name, (labels, annotations) in changes.items():
                node = self._existing("Node", name, "")
                errors = FieldErrors()
                check_labels(errors, "metadata.labels", labels)
                check_annotations(errors, "metadata.annotations", annotations)
                problems += [Problem("<kubectl>", "Node", name, field, reason) for field, reason in errors.items]
                meta = node["metadata"]
                if (meta.get("labels") or {}) == labels and (meta.get("annotations") or {}) == annotations:
                    lines.append(f"node/{name} unchanged")
                    continue
                updated = copy_object(node)
                for key, value in (("labels", labels), ("annotations", annotations)):
                    if value:
                        updated["metadata"][key] = dict(value)
                    else:
                        updated["metadata"].pop(key, None)
                updates.append(updated)
                lines.append(f"node/{name} configured")
            if problems:
                raise ManifestError(problems)
            for updated in updates:
                self.store.update(updated)
            if updates:
                for pod in self.store.list("Pod"):
                    if not pod["spec"].get("nodeName"):
                        self._enqueue("schedule", (pod["metadata"]["namespace"], pod["metadata"]["name"]))
                self._reconcile()
            return lines

    def _existing(self, kind: str, name: str, namespace: str) -> dict:
        info = KINDS[kind]
        obj = self.store.get(kind, namespace if info.namespaced else "", name)
        if obj is None:
            raise NotFound(f'{info.plural}{"." + info.group if info.group else ""} "{name}" not found')
        return obj

    def get(self, kind: str, name: str | None = None, namespace: str | None = "default"):
        """Copies of stored objects: one by name, or a list (all namespaces when namespace is None)."""
        with self.lock:
            info = KINDS[kind]
            ns = namespace if info.namespaced else ""
            if name is not None:
                return copy_object(self._existing(kind, name, ns or "default"))
            items = self.store.list(kind, ns if info.namespaced and namespace is not None else None)
            return [copy_object(o) for o in sorted(items, key=lambda o: (o["metadata"].get("namespace", ""),
                                                                         o["metadata"]["name"]))]
