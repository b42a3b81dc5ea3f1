"""`Kubectl`: kubectl's commands over a `Cluster`, returning what kubectl would print.

Each verb parses its flags (flags.py), calls the Cluster API, and formats with the pure printers in
tables.py and describe.py. User mistakes raise TestbedError worded as kubectl words them
(`error: ...`, `Error from server (NotFound): ...`); invalid manifests raise ManifestError, one line
per problem naming file, object and field.
"""
from __future__ import annotations

import os
import shlex
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Mapping, TextIO

from ..controlplane.core import NotFound
from ..errors import ManifestError, TestbedError
from ..kinds import KINDS, KindInfo, lookup_kind
from ..manifests import Document, load, parse_text
from .describe import DESCRIBERS, DescribeContext, PrefixWriter, describe_pod_template
from .common import ALL_NAMESPACES, FILENAME, OUTPUT, SELECTOR, KubectlError, change_cause, lines as _lines
from .create_commands import CreateCommands
from .flags import HELP, NAMESPACE, Flag, Parsed, int_option, parse_flags
from .format import (TabWriter, dump_json, dump_yaml, parse_selector, resource_selector_labels,
                     requirements_match, tabulate)
from .info_commands import InfoCommands
from .tables import render_table
from .update_commands import UpdateCommands

ALL_CATEGORY = ("Pod", "ReplicationController", "Service", "Deployment", "ReplicaSet")  # `kubectl get all`
SCALABLE = ("Deployment", "ReplicaSet", "ReplicationController")
OUTPUT_FORMATS = ("", "wide", "yaml", "json", "name")
REVISION = "deployment.kubernetes.io/revision"


USAGE = {
    "apply": ("Apply a configuration to a resource by file name or stdin", "apply -f FILENAME|DIR|- [-f ...] [-n NS]"),
    "create": ("Create resources from files or stdin (here: the same as apply), or a TLS secret",
               "create -f FILENAME|DIR|- | create secret tls NAME --cert=FILE --key=FILE [-n NS]"),
    "get": ("Display one or many resources",
            "get TYPE[,TYPE...] [NAME...] | TYPE/NAME... [-n NS | -A] [-o wide|yaml|json|name] [-l SELECTOR] "
            "[--show-labels] [--no-headers]"),
    "describe": ("Show details of a specific resource or group of resources",
                 "describe TYPE [NAME_PREFIX...] | TYPE/NAME [-n NS | -A] [-l SELECTOR] [--show-events=false]"),
    "delete": ("Delete resources by file names, stdin, resources and names, or by resources and label selector",
               "delete TYPE NAME... | TYPE/NAME | TYPE --all | TYPE -l SELECTOR | -f FILENAME [-n NS]"),
    "scale": ("Set a new size for a deployment, replica set or replication controller",
              "scale TYPE/NAME | TYPE NAME --replicas=N [--current-replicas=N]"),
    "expose": ("Take a deployment, replica set, replication controller, service or pod and expose it as a new Service",
               "expose TYPE NAME [--port=P] [--target-port=T] [--type=T] [--name=N] [--protocol=TCP] "
               "[--cluster-ip=IP] [--session-affinity=ClientIP] [--external-ip=IP] [--dry-run=client -o yaml]"),
    "set": ("Set specific features on objects (here: images)", "set image TYPE/NAME CONTAINER=IMAGE... [--record]"),
    "rollout": ("Manage the rollout of a deployment",
                "rollout history|undo|status deployment/NAME [--revision=N] [--to-revision=N] [--timeout=30s]"),
    "exec": ("Execute a command in a pod (its network namespace)", "exec POD|TYPE/NAME [-n NS] -- COMMAND [ARGS...]"),
    "logs": ("Print the logs of a pod's workload", "logs POD|TYPE/NAME [-n NS] [--tail=N]"),
    "api-resources": ("Print the supported API resources", "api-resources [-o name] [--namespaced=true|false]"),
    "run": ("Run a particular image on the cluster (a Pod; a Deployment with --replicas, as before kubectl 1.18)",
            "run NAME --image=IMAGE [--replicas=N] [--port=P] [-l k=v,...] [--env=K=V...] [--image-pull-policy=P] "
            "[--restart=Always|OnFailure|Never] [--expose] [--generator=G] [--dry-run=client -o yaml] "
            "[--command] [-- ARGS...]"),
    "edit": ("Edit a resource on the server in $KUBE_EDITOR or $EDITOR (vi by default)",
             "edit TYPE NAME... | TYPE/NAME | TYPE [-l SELECTOR] [-n NS] [--record]"),
    "label": ("Update the labels on a resource",
              "label [--overwrite] TYPE NAME | TYPE/NAME | TYPE -l SELECTOR | TYPE --all KEY=VALUE... KEY-... "
              "[--list] [--dry-run=client] [-o yaml]"),
    "annotate": ("Update the annotations on a resource",
                 "annotate [--overwrite] TYPE NAME | TYPE/NAME | TYPE -l SELECTOR | TYPE --all KEY=VALUE... KEY-... "
                 "[--list] [--dry-run=client] [-o yaml]"),
    "patch": ("Update fields of a resource (strategic merge patch, JSON merge patch or JSON patch)",
              "patch TYPE NAME | TYPE/NAME | -f FILE -p PATCH|--patch-file FILE [--type strategic|merge|json] "
              "[--dry-run=client] [-o yaml] [--record]"),
    "version": ("Print the client and server version information", "version [--client] [-o yaml|json]"),
    "cluster-info": ("Display the addresses of the control plane and the cluster services", "cluster-info"),
}
USAGE["create"] = ("Create resources from files or stdin (as apply), or a deployment, namespace or TLS secret",
                   "create -f FILENAME|DIR|- | create deployment NAME --image=IMAGE [--replicas=N] [--port=P] "
                   "[-- COMMAND...] | create namespace NAME | create secret tls NAME --cert=FILE --key=FILE [-n NS]")


def _parse_seconds(text: str) -> float:
    """A Go duration as kubectl flags take it (`30s`, `2m`, `1m30s`, plain seconds)."""
    total, number, units = 0.0, "", {"h": 3600, "m": 60, "s": 1}
    for char in text.strip():
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total, number = total + float(number) * units[char], ""
        else:
            raise TestbedError(f'error: invalid argument "{text}" for "--timeout" flag: time: invalid duration "{text}"')
    return total + (float(number) if number else 0.0)


class Kubectl(UpdateCommands, CreateCommands, InfoCommands):
    """kubectl's commands against a Cluster (with or without a network). `environ` is where `edit`
    finds $KUBE_EDITOR or $EDITOR (the process environment by default)."""

    def __init__(self, cluster, *, namespace: str = "default", stdin: TextIO | None = None,
                 clock: Callable[[], datetime] | None = None, sleep: Callable[[float], None] = time.sleep,
                 environ: Mapping[str, str] | None = None):
        self.cluster = cluster
        self.namespace = namespace
        self.stdin = stdin
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.sleep = sleep
        self.environ = os.environ if environ is None else environ
        self.verbs: dict[str, Callable[[list[str]], str]] = {
            "apply": self.apply, "create": self.create, "get": self.get, "describe": self.describe,
            "delete": self.delete, "scale": self.scale, "expose": self.expose, "set": self.set,
            "rollout": self.rollout, "exec": self.exec, "logs": self.logs, "api-resources": self.api_resources,
            "run": self.run_command, "edit": self.edit, "label": self.label, "annotate": self.annotate,
            "patch": self.patch, "version": self.version, "cluster-info": self.cluster_info,
        }

    # -- entry point ------------------------------------------------------------------------
    def run(self, argv: list[str]) -> str:
        """Execute one kubectl command (argv without the leading `kubectl`); returns its output."""
        argv = list(argv)
        leading: list[str] = []
        while argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
            token = argv.pop(0)
            if token in ("-n", "--namespace") and argv:
                leading += [token, argv.pop(0)]
            elif token.startswith(("--namespace=", "-n")):
                leading.append(token)
            else:
                raise TestbedError(f"error: unknown flag: {token}")
        if not argv or argv[0] in ("help", "-h", "--help"):
            return self.help(argv[1:] if argv else [])
        verb, rest = argv[0], leading + argv[1:]
        handler = self.verbs.get(verb)
        if handler is None:
            raise TestbedError(f'error: unknown command "{verb}" for "kubectl"{suggestions(verb, self.verbs)}')
        before_command = rest[: rest.index("--")] if "--" in rest else rest
        if "-h" in before_command or "--help" in before_command:
            return self.help([verb])
        try:
            return handler(rest)
        except (ManifestError, KubectlError):
            raise
        except NotFound as err:
            raise TestbedError(f"Error from server (NotFound): {err}") from None
        except TestbedError as err:
            message = str(err)
            if not message.startswith(("error", "Error from server", "No resources found")):
                message = f"error: {message}"
            raise TestbedError(message) from None

    def help(self, args: list[str]) -> str:
        if args and args[0] in USAGE:
            summary, usage = USAGE[args[0]]
            return f"{summary}.\n\nUsage:\n  kubectl {usage}\n"
        width = max(len(v) for v in USAGE)
        return ("kubectl controls the testbed's emulated cluster.\n\nCommands:\n" +
                _lines([f"  {verb.ljust(width)}  {summary}" for verb, (summary, _) in USAGE.items()]) +
                "\nUse \"kubectl help COMMAND\" or \"kubectl COMMAND --help\" for a command's usage.\n")

    # -- shared helpers ---------------------------------------------------------------------
    @staticmethod
    def kind(text: str) -> KindInfo:
        info = KINDS.get(text) or lookup_kind(text)
        if info is None:
            raise TestbedError(f'error: the server doesn\'t have a resource type "{text}"')
        return info

    def _namespace(self, parsed: Parsed) -> str:
        return parsed.get("namespace") or self.namespace

    def _targets(self, args: list[str], verb: str) -> list[tuple[KindInfo, list[str]]]:
        """TYPE[,TYPE] [NAME...] or TYPE/NAME... as (kind, names) in the order given."""
        if not args:
            raise TestbedError(f'error: you must specify the type of resource to {verb}. Use "kubectl '
                               'api-resources" for a complete list of supported resources.')
        targets: dict[str, tuple[KindInfo, list[str]]] = {}
        if "/" in args[0]:
            for arg in args:
                kind, slash, name = arg.partition("/")
                if not slash or not name:
                    raise TestbedError("error: there is no need to specify a resource type as a separate argument "
                                       "when passing arguments in resource/name form (e.g. 'kubectl get "
                                       "resource/<resource_name>' instead of 'kubectl get resource "
                                       "resource/<resource_name>'")
                info = self.kind(kind)
                targets.setdefault(info.kind, (info, []))[1].append(name)
            return list(targets.values())
        for part in args[0].split(","):
            kinds = [KINDS[k] for k in ALL_CATEGORY] if part == "all" else [self.kind(part)]
            for info in kinds:
                targets.setdefault(info.kind, (info, list(args[1:])))
        return list(targets.values())

    def _list(self, info: KindInfo, namespace: str | None, selector: str | None) -> list[dict]:
        objects = self.cluster.get(info.kind, None, namespace=namespace)
        if selector:
            requirements = parse_selector(selector)
            objects = [o for o in objects if requirements_match(requirements, o["metadata"].get("labels"))]
        return objects

    def _existing(self, info: KindInfo, name: str, namespace: str) -> dict:
        return self.cluster.get(info.kind, name, namespace=namespace)

    @staticmethod
    def _no_resources(namespace: str | None, namespaced: bool) -> str:
        return f"No resources found in {namespace} namespace.\n" if namespace and namespaced else "No resources found\n"

    # -- get --------------------------------------------------------------------------------
    def get(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [NAMESPACE, ALL_NAMESPACES, OUTPUT, SELECTOR, HELP,
                                    Flag("show-labels", takes_value=False), Flag("no-headers", takes_value=False)])
        output = parsed.get("output", "")
        if output not in OUTPUT_FORMATS:
            raise TestbedError(f'error: unable to match a printer suitable for the output format "{output}", '
                               f'allowed formats are: {",".join(f for f in OUTPUT_FORMATS if f)}')
        namespace, all_namespaces = self._namespace(parsed), bool(parsed.get("all-namespaces"))
        targets = self._targets(parsed.args, "get")
        by_name = any(names for _, names in targets)
        if by_name and parsed.get("selector"):
            raise TestbedError("error: name cannot be provided when a selector is specified")
        results, errors = [], []
        for info, names in targets:
            if names and all_namespaces and info.namespaced:
                raise TestbedError("error: a resource cannot be retrieved by name across all namespaces")
            objects = []
            for name in names:
                try:
                    objects.append(self._existing(info, name, namespace))
                except NotFound as err:
                    errors.append(f"Error from server (NotFound): {err}")
            if not names:
                objects = self._list(info, None if all_namespaces else namespace, parsed.get("selector"))
            results.append((info, objects))
        text = self._print(results, output, parsed, single=by_name and sum(len(n) for _, n in targets) == 1,
                           all_namespaces=all_namespaces)
        if errors:
            raise KubectlError(text + "\n".join(errors))
        if not text and not by_name:
            return self._no_resources(None if all_namespaces else namespace, targets[0][0].namespaced)
        return text

    def _print(self, results: list[tuple[KindInfo, list[dict]]], output: str, parsed: Parsed, *,
               single: bool, all_namespaces: bool) -> str:
        objects = [o for _, objs in results for o in objs]
        if output in ("yaml", "json"):
            if not objects and not single:
                document = {"apiVersion": "v1", "items": [], "kind": "List", "metadata": {"resourceVersion": ""}}
            elif single and len(objects) == 1:
                document = objects[0]
            elif not objects:
                return ""
            else:
                document = {"apiVersion": "v1", "items": objects, "kind": "List", "metadata": {"resourceVersion": ""}}
            return dump_yaml(document) if output == "yaml" else dump_json(document)
        if output == "name":
            return _lines([f"{info.resource}/{o['metadata']['name']}" for info, objs in results for o in objs])
        several_kinds = len(results) > 1
        now = self.clock()
        tables = []
        for info, objs in results:
            if not objs:
                continue
            table = render_table(info.kind, objs, now, wide=output == "wide",
                                 with_namespace=all_namespaces and info.namespaced,
                                 show_labels=bool(parsed.get("show-labels")),
                                 name_prefix=f"{info.resource}/" if several_kinds else "")
            if parsed.get("no-headers"):
                table = table.split("\n", 1)[1]
            tables.append(table)
        return "\n".join(tables)

    # -- describe ---------------------------------------------------------------------------
    def describe(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [NAMESPACE, ALL_NAMESPACES, SELECTOR, HELP, Flag("show-events", takes_value=False)])
        namespace, all_namespaces = self._namespace(parsed), bool(parsed.get("all-namespaces"))
        context = self._describe_context(show_events=parsed.get("show-events", True))
        texts, errors = [], []
        targets = self._targets(parsed.args, "describe")
        for info, names in targets:
            objects = []
            for name in names:
                try:
                    objects.append(self._existing(info, name, namespace))
                except NotFound as err:   # kubectl falls back to every object whose name starts so
                    prefixed = [o for o in self._list(info, namespace, None) if o["metadata"]["name"].startswith(name)]
                    if not prefixed:
                        errors.append(f"Error from server (NotFound): {err}")
                    objects += prefixed
            if not names:
                objects = self._list(info, None if all_namespaces else namespace, parsed.get("selector"))
            texts += [DESCRIBERS[info.kind](obj, context) for obj in objects]
        text = "\n\n".join(texts)
        if errors:
            raise KubectlError((text + "\n" if text else "") + "\n".join(errors))
        if not texts:
            return self._no_resources(None if all_namespaces else namespace, targets[0][0].namespaced)
        return text

    def _describe_context(self, show_events: bool = True) -> DescribeContext:
        control_plane = self.cluster.control_plane

        def events(obj: dict) -> list[dict] | None:
            if not show_events:
                return None
            key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            with control_plane.lock:
                return [dict(e) for e in control_plane.events.get(key, [])]

        return DescribeContext(now=self.clock(), events=events,
                               related=lambda kind, namespace: self.cluster.get(kind, None, namespace=namespace))

    # -- apply / create / delete --------------------------------------------------------------
    @staticmethod
    def _check_paths(files: list[str]) -> None:
        for file in files:
            if file != "-" and not Path(file).exists():
                raise KubectlError(f'error: the path "{file}" does not exist')

    def _stdin_text(self) -> str:
        return (self.stdin or sys.stdin).read()

    def _documents(self, files: list[str], namespace: str) -> list[Document]:
        """Load manifests and give namespaced objects without one the namespace of -n (kubectl refuses
        objects that name another namespace)."""
        documents = load([f for f in files if f != "-"])
        if "-" in files:
            documents += parse_text(self._stdin_text(), "<stdin>")
        for doc in documents:
            info = KINDS.get(doc.kind)
            meta = doc.obj.get("metadata")
            if info is None or not info.namespaced or not isinstance(meta, dict):
                continue
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise TestbedError(f'error: the namespace from the provided object "{meta["namespace"]}" does not '
                                   f'match the namespace "{namespace}". You must pass '
                                   f"'--namespace={meta['namespace']}' to perform this operation.")
            meta["namespace"] = namespace
        return documents

    def apply(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [FILENAME, NAMESPACE, HELP, Flag("recursive", "R", takes_value=False)])
        files = parsed.get("filename") or []
        if not files:
            raise TestbedError("error: must specify one of -f and -k")
        if parsed.args:
            raise TestbedError(f"error: Unexpected args: [{' '.join(parsed.args)}]")
        self._check_paths(files)
        if parsed.get("namespace"):   # objects lose their file names in errors, so only when asked
            return _lines(self.cluster.apply([doc.obj for doc in self._documents(files, parsed.get("namespace"))]))
        lines = []
        paths = [f for f in files if f != "-"]
        if paths:
            lines += self.cluster.apply([str(Path(p)) for p in paths])
        if "-" in files:
            lines += self.cluster.apply(self._stdin_text())
        return _lines(lines)

    def delete(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [FILENAME, NAMESPACE, SELECTOR, HELP, Flag("all", takes_value=False),
                                    Flag("ignore-not-found", takes_value=False)])
        namespace = self._namespace(parsed)
        requests: list[tuple[KindInfo, str, str]] = []
        if parsed.get("filename"):
            self._check_paths(parsed.get("filename"))
            for doc in load([f for f in parsed.get("filename") if f != "-"]) + \
                    (parse_text(self._stdin_text(), "<stdin>") if "-" in parsed.get("filename") else []):
                info = self.kind(doc.kind)
                meta = doc.obj.get("metadata") if isinstance(doc.obj.get("metadata"), dict) else {}
                requests.append((info, doc.name, meta.get("namespace") or namespace))
        else:
            for info, names in self._targets(parsed.args, "delete"):
                if not names and not (parsed.get("all") or parsed.get("selector")):
                    raise TestbedError("error: resource(s) were provided, but no name was specified")
                names = names or [o["metadata"]["name"] for o in self._list(info, namespace, parsed.get("selector"))]
                requests += [(info, name, namespace) for name in names]
        lines, errors = [], []
        for info, name, ns in requests:
            try:
                self._existing(info, name, ns)
                lines.append(self.cluster.delete(info.kind, name, namespace=ns))
            except NotFound as err:
                if not parsed.get("ignore-not-found"):
                    errors.append(f"Error from server (NotFound): {err}")
        if errors:
            raise KubectlError(_lines(lines) + "\n".join(errors))
        if not requests and not parsed.get("filename"):
            return "No resources found\n"
        return _lines(lines)

    # -- scale / expose / set image ---------------------------------------------------------------
    def _one_target(self, args: list[str], verb: str) -> tuple[KindInfo, str, list[str]]:
        """`TYPE/NAME rest...` or `TYPE NAME rest...`."""
        if not args:
            raise TestbedError(f"error: you must specify the type of resource to {verb}")
        if "/" in args[0]:
            kind, _, name = args[0].partition("/")
            return self.kind(kind), name, args[1:]
        if len(args) < 2:
            raise TestbedError(f"error: you must specify the name of the {args[0]} to {verb}")
        return self.kind(args[0]), args[1], args[2:]

    def scale(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [NAMESPACE, HELP, Flag("replicas"), Flag("current-replicas")])
        replicas = int_option(parsed, "replicas")
        if replicas is None or replicas < 0:
            raise TestbedError("error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
        namespace = self._namespace(parsed)
        lines = []
        for info, names in self._targets(parsed.args, "scale"):
            if info.kind not in SCALABLE:
                raise TestbedError(f"error: {info.plural} cannot be scaled: only deployments, replicasets and "
                                   "replicationcontrollers have a scale subresource")
            if not names:
                raise TestbedError("error: resource(s) were provided, but no name was specified")
            for name in names:
                current = int_option(parsed, "current-replicas")
                obj = self._existing(info, name, namespace)
                if current is not None and obj["spec"].get("replicas", 1) != current:
                    raise TestbedError(f"error: Expected replicas to be {current}, was {obj['spec'].get('replicas', 1)}")
                lines.append(self.cluster.scale(info.kind, name, replicas, namespace=namespace))
        return _lines(lines)

    def expose(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [NAMESPACE, HELP, OUTPUT, Flag("port"), Flag("target-port"), Flag("type"),
                                    Flag("name"), Flag("protocol"), Flag("cluster-ip"), Flag("session-affinity"),
                                    Flag("external-ip"), Flag("labels", "l"), Flag("selector"),
                                    Flag("dry-run", bare_value="client")])
        info, name, rest = self._one_target(parsed.args, "expose")
        if rest:
            raise TestbedError(f"error: unexpected arguments: {' '.join(rest)}")
        if info.kind not in ("Deployment", "ReplicaSet", "ReplicationController", "Service", "Pod"):
            raise TestbedError(f"error: cannot expose a {info.kind}")
        namespace = self._namespace(parsed)
        source = self._existing(info, name, namespace)
        service = self._exposed_service(source, parsed, namespace)
        if parsed.get("dry-run") not in (None, "none"):
            output = parsed.get("output", "")
            if output in ("yaml", "json"):
                return dump_yaml(service) if output == "yaml" else dump_json(service)
            return f"service/{service['metadata']['name']} exposed (dry run)\n"
        service_name = service["metadata"]["name"]
        if any(s["metadata"]["name"] == service_name for s in self.cluster.get("Service", None, namespace=namespace)):
            raise TestbedError(f'Error from server (AlreadyExists): services "{service_name}" already exists')
        self.cluster.apply(service)
        return f"service/{service_name} exposed\n"

    @staticmethod
    def _exposed_service(source: dict, parsed: Parsed, namespace: str) -> dict:
        """The Service `kubectl expose` generates (ServiceGeneratorV2): the source's selector and labels,
        its container ports unless --port is given, targetPort = port unless --target-port is given."""
        if parsed.get("selector"):
            selector = {k: v for k, _, v in (t.partition("=") for t in parsed.get("selector").split(","))}
        else:
            selector = resource_selector_labels(source)
        if not selector:
            raise TestbedError(f"error: couldn't retrieve selectors via --selector flag or introspection: the "
                               f"{source['kind'].lower()} {source['metadata']['name']} has no map selector")
        protocol = parsed.get("protocol")
        if parsed.get("port"):
            try:
                ports = [{"port": int(p), "protocol": protocol or "TCP"} for p in str(parsed.get("port")).split(",")]
            except ValueError:
                raise TestbedError(f'error: invalid argument "{parsed.get("port")}" for "--port" flag') from None
        else:
            spec = source.get("spec") or {}
            pod_spec = spec if source["kind"] == "Pod" else ((spec.get("template") or {}).get("spec") or {})
            if source["kind"] == "Service":
                ports = [{"port": p["port"], "protocol": protocol or p.get("protocol", "TCP")} for p in spec.get("ports") or []]
            else:
                ports = [{"port": p["containerPort"], "protocol": protocol or p.get("protocol", "TCP")}
                         for c in pod_spec.get("containers") or [] for p in c.get("ports") or []]
            if not ports:
                raise TestbedError("error: couldn't find port via --port flag or introspection")
        target = parsed.get("target-port")
        for i, port in enumerate(ports, 1):
            if len(ports) > 1:
                port["name"] = f"port-{i}"
            port["targetPort"] = (int(target) if target.isdigit() else target) if target else port["port"]
        spec_out: dict = {"ports": ports, "selector": selector}
        for flag, key in (("type", "type"), ("cluster-ip", "clusterIP"), ("session-affinity", "sessionAffinity")):
            if parsed.get(flag):
                spec_out[key] = parsed.get(flag)
        if parsed.get("external-ip"):
            spec_out["externalIPs"] = parsed.get("external-ip").split(",")
        labels = dict(t.partition("=")[::2] for t in parsed.get("labels").split(",")) if parsed.get("labels") \
            else dict(source["metadata"].get("labels") or {})
        metadata = {"name": parsed.get("name") or source["metadata"]["name"], "namespace": namespace}
        if labels:
            metadata["labels"] = labels
        return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec_out}

    def set(self, argv: list[str]) -> str:
        if not argv or argv[0] != "image":
            raise TestbedError(f'error: unknown command "{argv[0] if argv else ""}" for "kubectl set" '
                               '(the testbed supports "set image")')
        parsed = parse_flags(argv[1:], [NAMESPACE, HELP, Flag("record", takes_value=False)])
        info, name, pairs = self._one_target(parsed.args, "set image")
        images = {}
        for pair in pairs:
            container, equals, image = pair.partition("=")
            if not equals or not container or not image:
                raise TestbedError(f"error: invalid image update {pair!r}: expected CONTAINER_NAME=IMAGE")
            images[container] = image
        if not images:
            raise TestbedError("error: at least one image update is required")
        cause = change_cause(["set", "image", *parsed.args], parsed) if parsed.get("record") else None
        return self.cluster.set_image(info.kind, name, images, namespace=self._namespace(parsed),
                                      change_cause=cause) + "\n"

    # -- rollout --------------------------------------------------------------------------------
    def rollout(self, argv: list[str]) -> str:
        subcommands = {"history": self._rollout_history, "undo": self._rollout_undo, "status": self._rollout_status}
        if not argv or argv[0] not in subcommands:
            raise TestbedError(f'error: unknown command "{argv[0] if argv else ""}" for "kubectl rollout" '
                               '(the testbed supports history, undo and status)')
        parsed = parse_flags(argv[1:], [NAMESPACE, HELP, Flag("revision"), Flag("to-revision"), Flag("timeout"),
                                        Flag("watch", "w", takes_value=False)])
        info, name, rest = self._one_target(parsed.args, f"rollout {argv[0]}")
        if rest:
            raise TestbedError(f"error: unexpected arguments: {' '.join(rest)}")
        if info.kind != "Deployment":
            raise TestbedError(f'error: no {argv[0]} viewer has been implemented for "{info.kind}"')
        return subcommands[argv[0]](info, name, self._namespace(parsed), parsed)

    def _rollout_history(self, info: KindInfo, name: str, namespace: str, parsed: Parsed) -> str:
        deployment = self._existing(info, name, namespace)
        revision = int_option(parsed, "revision")
        if revision:
            uid = deployment["metadata"]["uid"]
            for rs in self.cluster.get("ReplicaSet", None, namespace=namespace):
                owned = any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or [])
                if owned and (rs["metadata"].get("annotations") or {}).get(REVISION) == str(revision):
                    writer = PrefixWriter()
                    describe_pod_template(writer, rs["spec"].get("template") or {})
                    return f"{info.resource}/{name} with revision #{revision}\n{writer.text()}"
            raise TestbedError("error: unable to find the specified revision")
        history = self.cluster.rollout_history(info.kind, name, namespace=namespace)
        if not history:
            return "No rollout history found.\n"
        writer = TabWriter(minwidth=0, padding=2)
        writer.write("REVISION\tCHANGE-CAUSE\n")
        for number, cause in history:
            writer.write(f"{number}\t{cause}\n")
        return f"{info.resource}/{name}\n{writer.getvalue()}"

    def _rollout_undo(self, info: KindInfo, name: str, namespace: str, parsed: Parsed) -> str:
        return self.cluster.rollout_undo(info.kind, name, namespace=namespace,
                                         to_revision=int_option(parsed, "to-revision")) + "\n"

    def _rollout_status(self, info: KindInfo, name: str, namespace: str, parsed: Parsed) -> str:
        """One report by default; with --timeout, poll until rolled out or the time is up."""
        timeout = _parse_seconds(parsed.get("timeout") or "0")
        deadline = self.clock() + timedelta(seconds=timeout)
        lines: list[str] = []
        while True:
            message, done = deployment_rollout_status(self._existing(info, name, namespace))
            if not lines or lines[-1] != message:
                lines.append(message)
            if done or self.clock() >= deadline:
                break
            self.sleep(0.2)
        if not done and timeout > 0:
            raise KubectlError(_lines(lines) + "error: timed out waiting for the condition")
        return _lines(lines)

    # -- exec / logs ----------------------------------------------------------------------------
    def _pod_name(self, ref: str, namespace: str) -> str:
        """A pod name, or the first ready pod of TYPE/NAME, as kubectl exec/logs choose it."""
        if "/" not in ref:
            return self._existing(KINDS["Pod"], ref, namespace)["metadata"]["name"]
        kind, _, name = ref.partition("/")
        info = self.kind(kind)
        source = self._existing(info, name, namespace)
        if info.kind == "Pod":
            return name
        selector = resource_selector_labels(source)
        pods = [p for p in self.cluster.get("Pod", None, namespace=namespace)
                if selector and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                and not p["metadata"].get("deletionTimestamp")]
        pods.sort(key=lambda p: ((p.get("status") or {}).get("phase") != "Running", p["metadata"]["name"]))
        if not pods:
            raise TestbedError(f"error: no pods found for {info.resource}/{name}")
        return pods[0]["metadata"]["name"]

    def exec(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [NAMESPACE, HELP, Flag("container", "c"), Flag("stdin", "i", takes_value=False),
                                    Flag("tty", "t", takes_value=False)])
        # -i/-t are accepted for the seed articles' `exec -it POD -- cat FILE`: the command runs to
        # completion without a terminal and its output is printed (no interactive session).
        if not parsed.args:
            raise TestbedError("error: expected 'exec POD_NAME COMMAND [ARG1] [ARG2] ... [ARGN]'. POD_NAME and "
                               "COMMAND are required arguments for the exec command")
        if len(parsed.args) > 1:
            raise TestbedError("error: exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- [COMMAND] instead")
        if not parsed.command:
            raise TestbedError("error: you must specify at least one command for the container")
        namespace = self._namespace(parsed)
        pod = self._pod_name(parsed.args[0], namespace)
        self._check_container(pod, namespace, parsed.get("container"))
        return self.cluster.exec(pod, shlex.join(parsed.command), namespace=namespace)

    def logs(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [NAMESPACE, HELP, Flag("container", "c"), Flag("tail"),
                                    Flag("follow", "f", takes_value=False)])
        if len(parsed.args) != 1:
            raise TestbedError("error: expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'. POD or "
                               "TYPE/NAME is a required argument for the logs command")
        if parsed.get("follow"):
            raise TestbedError("error: --follow is not supported by the testbed's CLI: logs are printed once")
        namespace = self._namespace(parsed)
        pod = self._pod_name(parsed.args[0], namespace)
        self._check_container(pod, namespace, parsed.get("container"))
        text = self.cluster.logs(pod, namespace=namespace)
        tail = int_option(parsed, "tail")
        if tail is not None and tail >= 0:
            text = "".join(text.splitlines(keepends=True)[-tail:] if tail else [])
        return text

    def _check_container(self, pod: str, namespace: str, container: str | None) -> None:
        if container is None:
            return
        names = [c.get("name") for c in self._existing(KINDS["Pod"], pod, namespace)["spec"].get("containers") or []]
        if container not in names:
            raise TestbedError(f"error: container {container} is not valid for pod {pod}")

    # -- api-resources --------------------------------------------------------------------------
    def api_resources(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [OUTPUT, HELP, Flag("namespaced"), Flag("no-headers", takes_value=False),
                                    Flag("api-group")])
        infos = sorted(KINDS.values(), key=lambda k: (k.group, k.plural))
        if parsed.get("namespaced") is not None:
            wanted = str(parsed.get("namespaced")).lower() in ("true", "1", "t")
            infos = [k for k in infos if k.namespaced == wanted]
        if parsed.get("api-group") is not None:
            infos = [k for k in infos if k.group == parsed.get("api-group")]
        if parsed.get("output") == "name":
            return _lines([k.plural + (f".{k.group}" if k.group else "") for k in infos])
        if parsed.get("output") not in (None, ""):
            raise TestbedError(f'error: --output {parsed.get("output")} is not available (use name)')
        rows = [] if parsed.get("no-headers") else [["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]]
        rows += [[k.plural, ",".join(k.short_names), k.api_version, str(k.namespaced).lower(), k.kind] for k in infos]
        return tabulate(rows)


def suggestions(typed: str, verbs) -> str:
    """cobra's findSuggestions: the verbs within Levenshtein distance 2 (ignoring case) or that start
    with what was typed, in name order."""
    typed = typed.lower()
    close = [v for v in sorted(verbs) if _levenshtein(typed, v.lower()) <= 2 or v.lower().startswith(typed)]
    return "\n\nDid you mean this?\n" + "".join(f"\t{v}\n" for v in close) if close else ""


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def deployment_rollout_status(deployment: dict) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer: the progress message and whether the rollout is done."""
    name, spec, status = deployment["metadata"]["name"], deployment.get("spec") or {}, deployment.get("status") or {}
    if deployment["metadata"].get("generation", 0) > status.get("observedGeneration", 0):
        return "Waiting for deployment spec update to be observed...", False
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            raise TestbedError(f'error: deployment "{name}" exceeded its progress deadline')
    replicas, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
    if updated < replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: {updated} out of {replicas} new replicas '
                "have been updated..."), False
    if status.get("replicas", 0) > updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {status["replicas"] - updated} old replicas '
                "are pending termination..."), False
    if status.get("availableReplicas", 0) < updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {status.get("availableReplicas", 0)} of '
                f"{updated} updated replicas are available..."), False
    return f'deployment "{name}" successfully rolled out', True
