"""The verbs that change existing objects: `label`, `annotate`, `patch` and `edit`.

Each follows its kubectl command (k8s.io/kubectl/pkg/cmd/label/label.go, annotate/annotate.go,
patch/patch.go, util/editor/editoptions.go) for flags, checks and wording. Where kubectl sends one
request per object, the testbed computes every new object first and writes them in one batch
through the control plane's admission, so a command that fails for one object changes none.

Objects are written through `Cluster.apply` (validation, all or nothing); Nodes, which `apply`
refuses because they come from the topology, through `ControlPlane.update_node_metadata`, which
takes labels and annotations only.
"""
from __future__ import annotations

import copy
import json
import os
import re

import yaml

from ..errors import ManifestError, Problem, TestbedError
from ..kinds import KINDS, KindInfo
from ..manifests import load, parse_text
from . import editor
from .common import (ALL, ALL_NAMESPACES, CHANGE_CAUSE, DRY_RUN, FILENAME, OUTPUT, RECORD, SELECTOR, KubectlError,
                     change_cause, dry_run_of, dry_run_suffix, invalid_message, lines, problems_by_object, resource_of)
from .flags import HELP, NAMESPACE, Flag, Parsed, parse_flags
from .format import dump_json, dump_yaml
from .patches import PATCH_TYPES, apply_patch

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_VALUE_MESSAGE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                       "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                       "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
OVERWRITE = Flag("overwrite", takes_value=False)
LIST = Flag("list", takes_value=False)
IDENTITY = ("apiVersion", "kind")


def resources_and_pairs(args: list[str], pair_type: str) -> tuple[list[str], list[str]]:
    """cmdutil.GetResourcesAndPairs: resources first, then KEY=VALUE / KEY- pairs."""
    resources, pairs = [], []
    for arg in args:
        is_pair = ("=" in arg and not arg.startswith("=")) or (arg.endswith("-") and arg != "-")
        if is_pair:
            pairs.append(arg)
        elif pairs:
            raise TestbedError(f"error: all resources must be specified before {pair_type} changes: {arg}")
        else:
            resources.append(arg)
    return resources, pairs


def parse_label_changes(pairs: list[str]) -> tuple[dict[str, str], list[str]]:
    """label.go parseLabels: values checked here as kubectl checks them (keys by the server)."""
    labels, remove = {}, []
    for pair in pairs:
        if "=" in pair:
            parts = pair.split("=")
            if len(parts) != 2:
                raise TestbedError(f"error: invalid label spec: {pair}")
            problems = []
            if len(parts[1]) > 63:
                problems.append("must be no more than 63 characters")
            if not LABEL_VALUE.match(parts[1]):
                problems.append(LABEL_VALUE_MESSAGE)
            if problems:
                raise TestbedError(f'error: invalid label value: "{pair}": {";".join(problems)}')
            labels[parts[0]] = parts[1]
        elif pair.endswith("-"):
            remove.append(pair[:-1])
        else:
            raise TestbedError(f"error: unknown label spec: {pair}")
    if any(key in labels for key in remove):
        raise TestbedError("error: can not both modify and remove a label in the same command")
    return labels, remove


def parse_annotation_changes(pairs: list[str]) -> tuple[dict[str, str], list[str]]:
    """cmdutil.ParsePairs for annotations (a value may hold `=`), then validateAnnotations."""
    annotations, remove, invalid = {}, [], []
    for pair in pairs:
        if "=" in pair and not pair.startswith("="):
            key, _, value = pair.partition("=")
            annotations[key] = value
        elif pair.endswith("-") and pair != "-":
            remove.append(pair[:-1])
        else:
            invalid.append(pair)
    if invalid:
        raise TestbedError(f"error: invalid annotation format: {', '.join(invalid)}")
    both = [key for key in remove if key in annotations]
    if both:
        raise TestbedError("error: can not both modify and remove the following annotation(s) in the same command: "
                           + ", ".join(both))
    return annotations, remove


class UpdateCommands:
    """Mixed into Kubectl: uses its cluster, kind(), _namespace(), _targets(), _list(),
    _existing(), _check_paths(), _stdin_text() and environ."""

    # -- selecting and storing ------------------------------------------------------------------
    def _objects_to_update(self, resources: list[str], parsed: Parsed, namespace: str, verb: str,
                           every_when_unnamed: bool = False) -> list[tuple[KindInfo, dict]]:
        """The objects named by -f files, TYPE NAME..., TYPE/NAME..., or TYPE with -l / --all (or
        TYPE alone, for `edit`)."""
        selected: list[tuple[KindInfo, dict]] = []
        files = parsed.get("filename") or []
        if files:
            self._check_paths(files)
            documents = load([f for f in files if f != "-"])
            if "-" in files:
                documents += parse_text(self._stdin_text(), "<stdin>")
            for doc in documents:
                info = self.kind(doc.kind)
                meta = doc.obj.get("metadata") if isinstance(doc.obj.get("metadata"), dict) else {}
                selected.append((info, self._existing(info, doc.name, meta.get("namespace") or namespace)))
        if resources:
            everywhere = bool(parsed.get("all-namespaces"))
            for info, names in self._targets(resources, verb):
                if names:
                    selected += [(info, self._existing(info, name, namespace)) for name in names]
                elif parsed.get("all") or parsed.get("selector") or every_when_unnamed:
                    found = self._list(info, None if everywhere else namespace, parsed.get("selector"))
                    selected += [(info, obj) for obj in found]
                else:
                    raise TestbedError("error: resource(s) were provided, but no name was specified")
        return selected

    def _store(self, objects: list[dict]) -> list[str]:
        """Write new versions of existing objects, all or none; returns each one's verdict
        (`configured` or `unchanged`), in order."""
        others = [o for o in objects if o["kind"] != "Node"]
        nodes = [o for o in objects if o["kind"] == "Node"]
        if others and nodes:    # check the batch before the Nodes change, so a failure changes nothing
            problems = self.cluster.validate(copy.deepcopy(others))
            if problems:
                raise ManifestError(problems)
        verdicts: dict[int, str] = {}
        if nodes:
            changes = {}
            for node in nodes:
                self._check_node_change(node)
                meta = node["metadata"]
                changes[meta["name"]] = (dict(meta.get("labels") or {}), dict(meta.get("annotations") or {}))
            results = {}
            for line in self.cluster.control_plane.update_node_metadata(changes):
                reference, verdict = line.split()
                results[reference.split("/", 1)[1]] = verdict
            for index, obj in enumerate(objects):
                if obj["kind"] == "Node":
                    verdicts[index] = results[obj["metadata"]["name"]]
        if others:
            results = iter(self.cluster.apply(copy.deepcopy(others)))
            for index, obj in enumerate(objects):
                if obj["kind"] != "Node":
                    verdicts[index] = next(results).rsplit(" ", 1)[1]
        return [verdicts[i] for i in range(len(objects))]

    def _check_node_change(self, node: dict) -> None:
        def outside_metadata(obj: dict) -> dict:
            return {k: v for k, v in obj.items() if k not in ("metadata", "status")}
        stored = self._existing(KINDS["Node"], node["metadata"]["name"], "")
        if outside_metadata(node) != outside_metadata(stored):
            raise ManifestError([Problem("<kubectl>", "Node", node["metadata"]["name"], "spec",
                                         "Forbidden: nodes come from the topology: only their labels and "
                                         "annotations can change")])

    def _store_or_invalid(self, objects: list[dict]) -> list[str]:
        try:
            return self._store(objects)
        except ManifestError as err:
            raise KubectlError(invalid_message(err)) from None

    @staticmethod
    def _check_output(parsed: Parsed) -> None:
        """Refuse an unknown -o before anything is stored."""
        output = parsed.get("output") or ""
        if output not in ("", "name", "yaml", "json"):
            raise TestbedError(f'error: unable to match a printer suitable for the output format "{output}", '
                               "allowed formats are: json,name,yaml")

    def _printed(self, info: KindInfo, obj: dict, operation: str, parsed: Parsed, dry_run: bool) -> str:
        """The name printer (`deployment.apps/web labeled`) or -o yaml|json of the object."""
        output = parsed.get("output") or ""
        if output in ("yaml", "json"):
            return dump_yaml(obj) if output == "yaml" else dump_json(obj)
        suffix = dry_run_suffix(parsed) if dry_run else ""
        return f"{info.resource}/{obj['metadata']['name']} {operation}{suffix}\n"

    def _current(self, info: KindInfo, obj: dict) -> dict:
        meta = obj["metadata"]
        return self._existing(info, meta["name"], meta.get("namespace", ""))

    def _join_printed(self, texts: list[str], parsed: Parsed) -> str:
        return ("---\n" if (parsed.get("output") or "") == "yaml" else "").join(texts)

    # -- label / annotate --------------------------------------------------------------------------
    def label(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [NAMESPACE, HELP, ALL_NAMESPACES, SELECTOR, FILENAME, OUTPUT, DRY_RUN, RECORD, ALL,
                                    OVERWRITE, LIST])
        resources, pairs = resources_and_pairs(parsed.args, "label")
        labels, remove = parse_label_changes(pairs)
        self._check_metadata_command(parsed, resources, bool(labels or remove), "label")
        return self._update_metadata(parsed, resources, "labels", labels, remove, ["label", *parsed.args])

    def annotate(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [NAMESPACE, HELP, ALL_NAMESPACES, SELECTOR, FILENAME, OUTPUT, DRY_RUN, RECORD, ALL,
                                    OVERWRITE, LIST])
        resources, pairs = resources_and_pairs(parsed.args, "annotate")
        annotations, remove = parse_annotation_changes(pairs)
        self._check_metadata_command(parsed, resources, bool(annotations or remove), "annotation")
        return self._update_metadata(parsed, resources, "annotations", annotations, remove, ["annotate", *parsed.args])

    @staticmethod
    def _check_metadata_command(parsed: Parsed, resources: list[str], has_changes: bool, what: str) -> None:
        if parsed.get("all") and parsed.get("selector"):
            raise TestbedError("error: cannot set --all and --selector at the same time")
        if not resources and not parsed.get("filename"):
            raise TestbedError("error: one or more resources must be specified as <resource> <name> or "
                               "<resource>/<name>")
        if not has_changes and not parsed.get("list"):
            raise TestbedError(f"error: at least one {what} update is required")
        if parsed.get("list") and parsed.get("output"):
            raise TestbedError("error: --list and --output may not be specified together")
        UpdateCommands._check_output(parsed)
        dry_run_of(parsed)

    def _update_metadata(self, parsed: Parsed, resources: list[str], field: str, new: dict[str, str],
                         remove: list[str], words: list[str]) -> str:
        """label.go labelFunc and annotate.go updateAnnotations over every selected object."""
        namespace = self._namespace(parsed)
        selected = self._objects_to_update(resources, parsed, namespace, words[0])
        if parsed.get("list"):
            return self._list_metadata(selected, field)
        dry_run = dry_run_of(parsed)
        cause = change_cause(words, parsed) if parsed.get("record") else None
        notes: list[list[str]] = []
        updated, operations, changed = [], [], []
        for _info, obj in selected:
            current = dict(obj["metadata"].get(field) or {})
            if not parsed.get("overwrite"):
                self._refuse_overwrites(field, current, new)
            after = {**current, **new}
            for key in remove:
                after.pop(key, None)
            added = [k for k, v in new.items() if current.get(k) != v]
            removed = [k for k in remove if k in current]
            notes.append([f'label "{key}" not found.' for key in remove if key not in current]
                         if field == "labels" and not dry_run else [])
            new_obj = copy.deepcopy(obj)
            if after:
                new_obj["metadata"][field] = after
            else:
                new_obj["metadata"].pop(field, None)
            if cause:
                new_obj["metadata"].setdefault("annotations", {})[CHANGE_CAUSE] = cause
            updated.append(new_obj)
            operations.append(_label_operation(added, removed) if field == "labels" else "annotated")
            # kubectl label sends nothing when no label changes; annotate always sends its patch.
            changed.append(field == "annotations" or bool(added or removed))
        if not dry_run:
            self._store_or_invalid([o for o, c in zip(updated, changed) if c])
        texts = []
        for (info, _), new_obj, operation, note in zip(selected, updated, operations, notes):
            shown = new_obj if dry_run else self._current(info, new_obj)
            texts.append(lines(note) + self._printed(info, shown, operation, parsed, dry_run))
        return self._join_printed(texts, parsed)

    @staticmethod
    def _refuse_overwrites(field: str, current: dict, new: dict) -> None:
        clashes = sorted((k, current[k]) for k, v in new.items() if k in current and current[k] != v
                         and not (field == "annotations" and k == CHANGE_CAUSE))
        if not clashes:
            return
        if field == "labels":
            raise TestbedError("\n".join(f"error: '{k}' already has a value ({v}), and --overwrite is false"
                                         for k, v in clashes))
        raise TestbedError("error: --overwrite is false but found the following declared annotation(s): "
                           + "; ".join(f"'{k}' already has a value ({v})" for k, v in clashes))

    @staticmethod
    def _list_metadata(selected: list[tuple[KindInfo, dict]], field: str) -> str:
        """--list: KEY=VALUE lines (sorted; kubectl walks a Go map), a heading per object when several."""
        out = []
        for info, obj in selected:
            indent = ""
            if len(selected) > 1:
                indent = " "
                out.append(f"Listing {field} for {info.kind}.{info.group}/{obj['metadata']['name']}:")
            out += [f"{indent}{k}={v}" for k, v in sorted((obj["metadata"].get(field) or {}).items())]
        return lines(out)

    # -- patch -------------------------------------------------------------------------------------
    def patch(self, argv: list[str]) -> str:
        parsed = parse_flags(argv, [NAMESPACE, HELP, FILENAME, OUTPUT, DRY_RUN, RECORD, Flag("patch", "p"),
                                    Flag("patch-file"), Flag("type")])
        text, patch_type = self._patch_text(parsed)
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as err:   # Go's %q of the -p text
            quoted = json.dumps(parsed.get("patch") or "")
            raise TestbedError(f"error: unable to parse {quoted}: {yaml_error_text(err)}") from None
        _require_resources(parsed)
        self._check_output(parsed)
        dry_run = dry_run_of(parsed)
        selected = self._objects_to_update(parsed.args, parsed, self._namespace(parsed), "patch")
        if not selected:
            raise TestbedError("error: no objects passed to patch")
        patched = []
        for _info, obj in selected:
            result = apply_patch(obj, patch_type, document)
            self._check_patched_identity(obj, result)
            patched.append(result)
        if dry_run:
            return self._join_printed([self._printed(info, new, "patched" if new != obj else "patched (no change)",
                                                     parsed, True) for (info, obj), new in zip(selected, patched)], parsed)
        verdicts = self._store_or_invalid(patched)
        if parsed.get("record"):   # kubectl's second request: a merge patch with the change cause
            cause = change_cause(["patch", *parsed.args], parsed)
            recorded = []
            for (info, _), new in zip(selected, patched):
                current = self._current(info, new)
                if (current["metadata"].get("annotations") or {}).get(CHANGE_CAUSE) != cause:
                    current["metadata"].setdefault("annotations", {})[CHANGE_CAUSE] = cause
                    recorded.append(current)
            if recorded:
                self._store_or_invalid(recorded)
        return self._join_printed([
            self._printed(info, self._current(info, new), "patched" if verdict == "configured" else "patched (no change)",
                          parsed, False)
            for (info, _), new, verdict in zip(selected, patched, verdicts)], parsed)

    @staticmethod
    def _patch_text(parsed: Parsed) -> tuple[str, str]:
        if parsed.get("patch") and parsed.get("patch-file"):
            raise TestbedError("error: cannot specify --patch and --patch-file together")
        if not parsed.get("patch") and not parsed.get("patch-file"):
            raise TestbedError("error: must specify --patch or --patch-file containing the contents of the patch")
        patch_type = (parsed.get("type") or "strategic").lower()
        if patch_type not in PATCH_TYPES:
            raise TestbedError(f'error: --type must be one of [{" ".join(PATCH_TYPES)}], not "{parsed.get("type")}"')
        if parsed.get("patch-file"):
            try:
                with open(parsed.get("patch-file")) as stream:
                    return stream.read(), patch_type
            except OSError as err:
                raise TestbedError(f"error: unable to read patch file: open {parsed.get('patch-file')}: "
                                   f"{err.strerror.lower() if err.strerror else err}") from None
        return parsed.get("patch"), patch_type

    @staticmethod
    def _check_patched_identity(obj: dict, result: dict) -> None:
        """What the API server refuses in a patched object (400 Bad Request)."""
        meta, new_meta = obj["metadata"], result.get("metadata") if isinstance(result.get("metadata"), dict) else {}
        if new_meta.get("name") != meta["name"]:
            raise TestbedError(f"Error from server (BadRequest): the name of the object ({new_meta.get('name')}) "
                               f"does not match the name on the URL ({meta['name']})")
        if new_meta.get("namespace", meta.get("namespace")) != meta.get("namespace"):
            raise TestbedError("Error from server (BadRequest): the namespace of the provided object does not match "
                               "the namespace sent on the request")
        for key in IDENTITY:
            if result.get(key) != obj.get(key):
                raise TestbedError(f"Error from server (BadRequest): the {key} of the patched object "
                                   f"({result.get(key)}) does not match the object's ({obj.get(key)})")

    # -- edit --------------------------------------------------------------------------------------
    def edit(self, argv: list[str]) -> str:
        """The normal edit mode of editoptions.go: one file with the object (a List for several),
        reopened with the failures in its header until it is saved valid or unchanged."""
        parsed = parse_flags(argv, [NAMESPACE, HELP, FILENAME, RECORD, SELECTOR])
        _require_resources(parsed)
        namespace = self._namespace(parsed)
        selected = self._objects_to_update(parsed.args, parsed, namespace, "edit", every_when_unnamed=True)
        if not selected:
            raise TestbedError("error: edit cancelled, no objects found")
        originals = [obj for _, obj in selected]
        document = originals[0] if len(originals) == 1 else \
            {"apiVersion": "v1", "items": originals, "kind": "List", "metadata": {}}
        original_text = dump_yaml(document)
        cause = change_cause(["edit", *parsed.args], parsed) if parsed.get("record") else None
        messages: list[str] = []
        reasons: list[editor.EditReason] = []
        edited_text, contains_error, previous_file = "", False, None
        while True:
            # After an error the file holds the user's own text again, under the new header.
            body = editor.manual_strip(edited_text) if contains_error else original_text
            path = editor.write_temp_file(editor.header(reasons) + body)
            previous_edit = edited_text
            try:
                edited_text = editor.launch(self.environ, path)
            except TestbedError as err:
                raise KubectlError(lines(messages) + _preserved(previous_file) + str(err)) from None
            if contains_error and editor.strip_comments(previous_edit) == editor.strip_comments(edited_text):
                if previous_file:   # the copy kept is this pass's file, which holds the same text
                    _remove(previous_file)
                raise KubectlError(lines(messages) + _preserved(path) + "error: Edit cancelled, no valid changes were saved.")
            if previous_file:
                _remove(previous_file)
            if editor.strip_comments(original_text) == editor.strip_comments(edited_text):
                _remove(path)
                return lines(messages) + "Edit cancelled, no changes made.\n"
            if not editor.has_lines(edited_text):
                _remove(path)
                return lines(messages) + "Edit cancelled, saved file was empty.\n"
            previous_file, reasons = path, []
            try:
                edited = _edited_objects(edited_text)
            except (yaml.YAMLError, ValueError) as err:
                contains_error = True
                detail = f"error converting YAML to JSON: {yaml_error_text(err)}" if isinstance(err, yaml.YAMLError) else err
                reasons.append(editor.EditReason(f"The edited file had a syntax error: {detail}"))
                continue
            contains_error = False
            try:
                changed = self._edited_changes(originals, edited, namespace, cause)
            except TestbedError as err:
                raise KubectlError(lines(messages) + _preserved(path) + str(err)) from None
            outcome = [f"{KINDS[o['kind']].resource}/{o['metadata']['name']} skipped"
                       for o, new in changed if new is None]
            to_store = [new for _, new in changed if new is not None]
            try:
                if to_store:
                    self._store(to_store)
            except ManifestError as err:   # invalid: reopen with the causes in the header
                for (kind, name), problems in problems_by_object(err).items():
                    resource = resource_of(kind) if kind in KINDS else kind
                    messages.append(f'error: {resource} "{name}" is invalid')
                    reasons.append(editor.EditReason(f'{resource} "{name}" was not valid',
                                                     [f"{p.field}: {p.reason}" if p.field else p.reason for p in problems]))
                contains_error = True
                continue
            except TestbedError as err:
                raise KubectlError(lines(messages) + _preserved(path) + str(err)) from None
            _remove(path)
            outcome += [f"{KINDS[new['kind']].resource}/{new['metadata']['name']} edited" for new in to_store]
            return lines(messages + outcome)

    def _edited_changes(self, originals: list[dict], edited: list[dict], namespace: str,
                        cause: str | None) -> list[tuple[dict, dict | None]]:
        """(original, new version or None when it is unchanged) for each edited object, after the
        checks of visitToPatch: the same uid, apiVersion, kind and name; the command's namespace."""
        by_uid = {o["metadata"].get("uid"): o for o in originals}
        changes = []
        for obj in edited:
            meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            original = by_uid.get(meta.get("uid"))
            if original is None:
                raise TestbedError(f"error: no original object found for {obj.get('kind')} {meta.get('name')}")
            info = KINDS[original["kind"]]
            if info.namespaced:
                if meta.get("namespace") and meta["namespace"] != namespace:
                    raise TestbedError(f'error: the namespace from the provided object "{meta["namespace"]}" does not '
                                       f'match the namespace "{namespace}". You must pass '
                                       f"'--namespace={meta['namespace']}' to perform this operation.")
                meta["namespace"] = namespace
            if any(obj.get(k) != original.get(k) for k in IDENTITY) or meta.get("name") != original["metadata"]["name"]:
                raise TestbedError("error: At least one of apiVersion, kind and name was changed")
            if cause:
                meta.setdefault("annotations", {})[CHANGE_CAUSE] = cause
            changes.append((original, None if obj == original else obj))
        return changes


def _require_resources(parsed: Parsed) -> None:
    """The resource builder's complaint when neither arguments nor files name anything."""
    if not parsed.args and not parsed.get("filename"):
        raise TestbedError("error: You must provide one or more resources by argument or filename.\n"
                           "Example resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n"
                           "   '<resource> <name>'\n   '<resource>'")


def _edited_objects(text: str) -> list[dict]:
    """The object (or the items of the List) in the saved file."""
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise ValueError("the file must hold one object or one List")
    document = documents[0]
    if document.get("kind") == "List":
        items = document.get("items") or []
        if not all(isinstance(i, dict) for i in items):
            raise ValueError("every item of the List must be an object")
        return items
    return [document]


def _label_operation(added: list[str], removed: list[str]) -> str:
    """label.go updateDataChangeMsg."""
    if added and removed:
        return "modified"
    if added:
        return "labeled"
    return "unlabeled" if removed else "not labeled"


def _preserved(path: str | None) -> str:
    return f'A copy of your changes has been stored to "{path}"\n' if path and os.path.exists(path) else ""


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def yaml_error_text(err: yaml.YAMLError) -> str:
    """A YAML error as Go's yaml package words it: `yaml: line 3: did not find expected key`."""
    mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
    if mark is None or not problem:
        return "yaml: " + " ".join(str(err).split())
    return f"yaml: line {mark.line + 1}: {problem}"
