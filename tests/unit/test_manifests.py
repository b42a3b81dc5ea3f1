import io

import pytest

from testbed.errors import ManifestError
from testbed.manifests import from_source, load, parse_text

EXAMPLES = "examples"


def test_multi_document_with_anchors_and_aliases():
    text = """
base: &labels {app: web}
---
apiVersion: v1
kind: Service
metadata: {name: a, labels: &l {tier: x}}
spec: {selector: *l, ports: [{port: 80}]}
---
---
apiVersion: v1
kind: Service
metadata: {name: b, labels: &m {tier: x}}
spec: {selector: *m, ports: [{port: 81}]}
"""
    docs = parse_text(text, "f.yaml")
    assert [d.source for d in docs] == ["f.yaml:1", "f.yaml:2", "f.yaml:4"]
    service_a = docs[1].obj
    assert service_a["spec"]["selector"] == {"tier": "x"}
    # aliased nodes are copied: changing one place does not change the other
    service_a["metadata"]["labels"]["tier"] = "changed"
    assert service_a["spec"]["selector"] == {"tier": "x"}


def test_alias_across_documents_is_an_error_naming_the_document():
    with pytest.raises(ManifestError, match=r"^f.yaml:2 .*undefined alias"):
        parse_text("a: &x 1\n---\nb: *x\n", "f.yaml")


def test_list_kind_is_expanded():
    docs = parse_text('{"kind": "List", "items": [{"kind": "Service", "metadata": {"name": "a"}}, '
                      '{"kind": "Pod", "metadata": {"name": "b"}}]}', "x.json")
    assert [d.kind for d in docs] == ["Service", "Pod"]


def test_bad_yaml_names_file_document_and_line():
    with pytest.raises(ManifestError) as err:
        parse_text("a: 1\n---\nkind: Service\n  bad: [\n", "m.yaml")
    line = str(err.value)
    assert line.startswith("m.yaml:2 ") and "invalid YAML" in line and "line" in line


def test_document_must_be_a_mapping():
    with pytest.raises(ManifestError, match="m.yaml:1 .*must be a mapping"):
        parse_text("- a\n- b\n", "m.yaml")


def test_directory_and_stdin(tmp_path):
    (tmp_path / "a.yaml").write_text("kind: Namespace\napiVersion: v1\nmetadata: {name: one}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text("kind: Namespace\napiVersion: v1\nmetadata: {name: two}\n")
    (tmp_path / "notes.txt").write_text("ignored")
    stdin = io.StringIO("kind: Namespace\napiVersion: v1\nmetadata: {name: three}\n")
    docs = load([tmp_path, "-"], stdin=stdin)
    assert [d.name for d in docs] == ["one", "two", "three"]
    assert docs[2].source == "<stdin>:1"


def test_missing_file_is_a_problem_not_a_traceback(tmp_path):
    with pytest.raises(ManifestError, match="no such file"):
        load([tmp_path / "nope.yaml"])


def test_examples_load():
    docs = load([EXAMPLES])
    assert len(docs) == 19
    assert {d.kind for d in docs} >= {"Service", "Endpoints", "Deployment", "Ingress", "ConfigMap", "Namespace"}


def test_from_source_accepts_text_paths_and_objects():
    assert from_source("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")[0].name == "x"
    assert from_source(f"{EXAMPLES}/myapp.yaml")[0].kind == "Deployment"
    assert from_source({"kind": "Namespace", "metadata": {"name": "y"}})[0].name == "y"
