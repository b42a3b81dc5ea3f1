"""The verbs that make new objects from flags: `run` and `create deployment|namespace`.

`run` is k8s.io/kubectl/pkg/cmd/run/run.go, today's (a Pod) or, when the command line names a
generator or uses `--replicas`, the one of kubectl 1.17 and before (generators.py says which).
`create deployment` is pkg/cmd/create/create_deployment.go, `create namespace` create_namespace.go;
`create -f` keeps working as `apply -f`. Everything a command makes is written in one
`Cluster.apply`, so `run --expose` creates both objects or neither.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ..controlplane.core import NotFound
from ..errors import ManifestError, TestbedError
from ..kinds import KINDS
from . import generators
from .common import (CHANGE_CAUSE, DRY_RUN, OUTPUT, RECORD, KubectlError, already_exists, change_cause, dry_run_of,
                     dry_run_suffix, invalid_message, lines, status_error_text)
from .flags import HELP, NAMESPACE, Flag, Parsed, parse_flags
from .format import dump_json, dump_yaml
from .patches import PATCH_TYPES, apply_patch

INTERACTIVE = ("stdin", "tty", "attach", "rm")
DEPRECATED_GENERATOR = ("kubectl run --generator={} is DEPRECATED and will be removed in a future version. "
                        "Use kubectl run --generator=run-pod/v1 or kubectl create instead.")
RUN_FLAGS = [NAMESPACE, HELP, DRY_RUN, OUTPUT, RECORD, Flag("image"), Flag("replicas", "r"), Flag("generator"),
             Flag("port"), Flag("labels", "l"), Flag("env", repeated=True), Flag("annotations", repeated=True),
             Flag("command", takes_value=False), Flag("restart"), Flag("image-pull-policy"),
             Flag("expose", takes_value=False), Flag("overrides"), Flag("override-type"),
             Flag("stdin", "i", takes_value=False), Flag("tty", "t", takes_value=False),
             Flag("attach", takes_value=False), Flag("rm", takes_value=False)]


class CreateCommands:
    """Mixed into Kubectl: uses its cluster, _namespace(), apply() and the update helpers."""

    # -- run ---------------------------------------------------------------------------------------
    def run_command(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, RUN_FLAGS)
        if not parsed.args:
            raise TestbedError("error: NAME is required for run")
        if any(parsed.get(flag) for flag in INTERACTIVE):
            raise TestbedError("error: -i/-t/--attach/--rm (an attached session) are not supported by the testbed: "
                               "run the pod, then use exec POD -- COMMAND or logs POD")
        spec = self._run_spec(parsed)
        generator = self._run_generator(parsed, spec)
        notes = [DEPRECATED_GENERATOR.format(generator)] if generator not in (None, generators.POD_GENERATOR) else []
        made = {None: generators.run_pod, generators.POD_GENERATOR: generators.run_pod,
                generators.DEPLOYMENT_GENERATOR: generators.run_deployment,
                generators.RC_GENERATOR: generators.run_replication_controller}[generator](spec)
        made = self._overridden(made, parsed)
        objects = [made]
        if parsed.get("expose"):
            service = generators.run_service(spec)
            # kubectl 1.17 created (and printed) the Service first; today's kubectl the Pod first.
            objects = [service, made] if generator not in (None, generators.POD_GENERATOR) else [made, service]
        if parsed.get("record"):   # createGeneratedObject records every object it creates
            for obj in objects:
                obj["metadata"].setdefault("annotations", {})[CHANGE_CAUSE] = change_cause(["run", *parsed.args], parsed)
        return lines(notes) + self._create(objects, parsed, wrap=None)

    def _run_spec(self, parsed: Parsed) -> generators.RunSpec:
        name = parsed.args[0]
        image = parsed.get("image") or ""
        generators.check_image(image)
        port = None
        if parsed.get("expose") and not parsed.get("port"):
            raise TestbedError("error: --port must be set when exposing a service")
        if parsed.get("port"):
            try:
                port = int(parsed.get("port"))
            except ValueError:
                raise TestbedError("error: --port must be a number") from None
        annotations = {}
        for pair in parsed.get("annotations") or []:
            key, equals, value = pair.partition("=")
            if not equals or not key:
                raise TestbedError(f"error: invalid annotation format: {pair}")
            annotations[key] = value
        return generators.RunSpec(
            name=name, image=image, labels=generators.parse_run_labels(parsed.get("labels") or ""),
            annotations=annotations, env=generators.parse_env(parsed.get("env") or []),
            arguments=parsed.args[1:] + parsed.command, command=bool(parsed.get("command")), port=port,
            image_pull_policy=generators.check_choice(parsed.get("image-pull-policy") or "", generators.PULL_POLICIES,
                                                      "image pull policy"),
            restart=generators.check_choice(parsed.get("restart") or "Always", generators.RESTART_POLICIES,
                                            "restart policy"))

    @staticmethod
    def _run_generator(parsed: Parsed, spec: generators.RunSpec) -> str | None:
        """None for today's kubectl; else the generator kubectl 1.17 would have used."""
        generator = parsed.get("generator")
        if generator is None and parsed.get("replicas") is None:
            return None
        if generator is not None and generator not in generators.RUN_GENERATORS:
            raise TestbedError(f'error: generator "{generator}" not found')
        replicas = 1
        if parsed.get("replicas") is not None:
            try:
                replicas = int(parsed.get("replicas"))
            except ValueError:
                raise TestbedError(f'error: invalid argument "{parsed.get("replicas")}" for "-r, --replicas" flag: '
                                   f'strconv.ParseInt: parsing "{parsed.get("replicas")}": invalid syntax') from None
        if spec.restart != "Always" and replicas != 1:
            raise TestbedError(f"error: --restart={spec.restart} requires that --replicas=1, found {replicas}")
        spec.replicas = replicas
        if generator is None:
            if spec.restart == "OnFailure":
                raise TestbedError("error: --restart=OnFailure makes a Job (generator job/v1), a kind the testbed "
                                   "does not serve")
            generator = generators.DEPLOYMENT_GENERATOR if spec.restart == "Always" else generators.POD_GENERATOR
        return generator

    @staticmethod
    def _overridden(obj: dict, parsed: Parsed) -> dict:
        """--overrides: a patch of the generated object, of --override-type (merge by default)."""
        if not parsed.get("overrides"):
            return obj
        override_type = parsed.get("override-type") or "merge"
        if override_type not in PATCH_TYPES:
            raise TestbedError(f'error: --override-type must be one of [{" ".join(PATCH_TYPES)}], not "{override_type}"')
        try:
            patch = yaml.safe_load(parsed.get("overrides"))
        except yaml.YAMLError as err:
            raise TestbedError(f"error: unable to parse --overrides: {' '.join(str(err).split())}") from None
        return apply_patch(obj, override_type, patch)

    # -- create ------------------------------------------------------------------------------------
    def create(self, argv: list[str]) -> str:
        """`create deployment|deploy`, `create namespace|ns`, or `create -f` (as apply)."""
        subcommands = {"deployment": self._create_deployment, "deploy": self._create_deployment,
                       "namespace": self._create_namespace, "ns": self._create_namespace,
                       "secret": self._create_secret}
        if argv and not argv[0].startswith("-"):
            if argv[0] not in subcommands:
                raise TestbedError(f'error: unknown command "{argv[0]}" for "kubectl create" (the testbed creates '
                                   "deployment, namespace, secret tls, or objects from -f FILENAME)")
            return subcommands[argv[0]](argv[1:])
        return self.apply(argv)

    def _create_deployment(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [NAMESPACE, HELP, DRY_RUN, OUTPUT, Flag("image", repeated=True),
                                    Flag("replicas", "r"), Flag("port")])
        name = _exactly_one_name(parsed)
        images = [i for value in parsed.get("image") or [] for i in value.split(",") if i]
        if not images:
            raise TestbedError('error: required flag(s) "image" not set')
        if len(images) > 1 and parsed.command:
            raise TestbedError("error: cannot specify multiple --image options and command")
        replicas, port = _int32(parsed, "replicas", 1), _int32(parsed, "port", -1)
        deployment = generators.create_deployment(name, images, replicas, None if port < 0 else port, parsed.command)
        return self._create([deployment], parsed, wrap="failed to create deployment")

    def _create_secret(self, argv: list[str]) -> str:
        """`create secret tls NAME --cert=FILE --key=FILE`: a kubernetes.io/tls Secret (the seed
        articles' Ingress workflow)."""
        if argv[:1] != ["tls"]:
            raise TestbedError(f'error: unknown command "secret {" ".join(argv[:1])}" for "kubectl create" '
                               '(the testbed supports "create secret tls")')
        parsed = parse_flags(argv[1:], [NAMESPACE, HELP, Flag("cert"), Flag("key")])
        if len(parsed.args) != 1:
            raise TestbedError("error: exactly one NAME is required, got " + str(len(parsed.args)))
        files = {}
        for flag in ("cert", "key"):
            path = parsed.get(flag)
            if not path:
                raise TestbedError(f"error: --{flag} is required")
            try:
                files[flag] = Path(path).read_bytes()
            except OSError as err:
                raise TestbedError(f"error: open {path}: {err.strerror.lower() if err.strerror else err}") from None
        import base64
        name, namespace = parsed.args[0], self._namespace(parsed)
        if any(s["metadata"]["name"] == name for s in self.cluster.get("Secret", None, namespace=namespace)):
            raise TestbedError(f'error: failed to create secret secrets "{name}" already exists')
        self.cluster.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                            "metadata": {"name": name, "namespace": namespace},
                            "data": {"tls.crt": base64.b64encode(files["cert"]).decode(),
                                     "tls.key": base64.b64encode(files["key"]).decode()}})
        return f"secret/{name} created\n"


    def _create_namespace(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [HELP, DRY_RUN, OUTPUT])
        return self._create([generators.create_namespace(_exactly_one_name(parsed))], parsed, wrap=None)

    def _create(self, objects: list[dict], parsed: Parsed, wrap: str | None) -> str:
        """Create new objects (never update): all or none, printed as kubectl prints them. `wrap` is
        the prefix a command puts before the server's error (create deployment's "failed to ...")."""
        namespace = self._namespace(parsed)
        output = parsed.get("output") or ""
        if output not in ("", "yaml", "json", "name"):
            raise TestbedError(f'error: unable to match a printer suitable for the output format "{output}", '
                               "allowed formats are: json,name,yaml")
        for obj in objects:
            # A generated object names its namespace only when -n was given (EnforceNamespace).
            if KINDS[obj["kind"]].namespaced and parsed.get("namespace"):
                obj["metadata"]["namespace"] = namespace
        if dry_run_of(parsed):
            return self._print_created([generators.as_printed(o) for o in objects], output, dry_run_suffix(parsed))
        for obj in objects:
            if KINDS[obj["kind"]].namespaced:
                obj["metadata"]["namespace"] = namespace
        for obj in objects:
            if self._exists(obj):
                message = already_exists(obj["kind"], obj["metadata"]["name"])
                raise TestbedError(f"error: {wrap}: {message}" if wrap else f"Error from server (AlreadyExists): {message}")
        try:
            self.cluster.apply([dict(o) for o in objects])
        except ManifestError as err:
            raise KubectlError(f"error: {wrap}: {status_error_text(err)}" if wrap else invalid_message(err)) from None
        stored = [self.cluster.get(o["kind"], o["metadata"]["name"], namespace=o["metadata"].get("namespace", namespace))
                  for o in objects]
        return self._print_created(stored, output, "")

    def _exists(self, obj: dict) -> bool:
        try:
            self.cluster.get(obj["kind"], obj["metadata"]["name"], namespace=obj["metadata"].get("namespace", "default"))
        except NotFound:
            return False
        return True

    @staticmethod
    def _print_created(objects: list[dict], output: str, suffix: str) -> str:
        if output == "yaml":
            return "---\n".join(dump_yaml(o) for o in objects)
        if output == "json":
            return "".join(dump_json(o) for o in objects)
        return lines([f"{KINDS[o['kind']].resource}/{o['metadata']['name']} created{suffix}" for o in objects])


def _exactly_one_name(parsed: Parsed) -> str:
    """create.go NameFromCommandArgs: one NAME before any `--`."""
    if len(parsed.args) != 1:
        raise TestbedError(f"error: exactly one NAME is required, got {len(parsed.args)}")
    return parsed.args[0]


def _int32(parsed: Parsed, name: str, default: int) -> int:
    value = parsed.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not -2**31 <= number < 2**31:
        raise TestbedError(f'error: invalid argument "{value}" for "--{name}" flag: strconv.ParseInt: parsing '
                           f'"{value}": invalid syntax')
    return number
