"""A generated corpus of bad and edge-case manifests (issue 8), with hypothesis.

Three generators: objects drawn from the schema of the kinds (testbed/api_schema.json: every field,
any value of its type or of a wrong one), valid manifests mutated one place at a time (a value
replaced, removed, nulled, wrapped, an unknown field added), and YAML text mutated byte-wise and
run through the CLI's validate and render. For every case: no exception other than the testbed's
own one-line errors, at most 5 s and 512 MB, and a refused apply changes nothing (store, allocators,
events); an accepted one leaves allocators that match the store exactly.

Derandomized and bounded (max_examples), so the corpus is the same on every run and stays fast.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed import Cluster
from testbed.cli import main
from testbed.errors import ManifestError, TestbedError
from testbed.schema import ROOTS, Struct
from tests.support.robustness import bounded, snapshot

CORPUS = settings(max_examples=150, derandomize=True, deadline=None, database=None, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.function_scoped_fixture])

STRINGS = ["web", "db-1", "a", "", "TCP", "UDP", "SCTP", "ClusterIP", "NodePort", "LoadBalancer", "ExternalName",
           "None", "10.96.0.50", "10.96.0.0", "10.244.1.5", "127.0.0.1", "0.0.0.0", "169.254.0.1", "fe80::1",
           "192.0.2.1", "Local", "Cluster", "ClientIP", "http", "8080", "80", "example.com", "RollingUpdate",
           "Recreate", "Always", "Never", "25%", "150%", "IPv4", "IPv6", "SingleStack", "RequireDualStack", "Prefix",
           "Exact", "/", "/api", "nginx", " nginx", "In", "NotIn", "Exists", "1Gi", "100m", "-1", "a" * 70,
           "Bad_Name", "node1", "nowhere", "kubernetes.io/tls", "kubernetes.io/dockerconfigjson", "dGVzdA==",
           "not base64!", "\u00e9t\u00e9", "10.0.0.0/8", "app", "k8s.io/ingress-nginx"]
NAMES = ["web", "db", "svc-1", "a", "api", "cache"]


def scalar(kind: str):
    base = {
        "string": st.sampled_from(STRINGS) | st.text(max_size=12),
        "int32": st.sampled_from([0, 1, 2, 3, 80, 443, 8080, 30080, 30081, 32767, 65536, -1, 2**31 - 1, 2**31])
        | st.integers(-5, 70_000),
        "int64": st.sampled_from([0, 1, 30, 86_400, -1, 2**63]) | st.integers(-5, 10**6),
        "bool": st.booleans(),
        "float64": st.floats(allow_nan=False, allow_infinity=False, width=32),
        "bytes": st.sampled_from(["dGVzdA==", "aGVs\nbG8=", "!!", ""]),
        "intorstring": st.sampled_from([0, 80, 8080, 70_000, "http", "8080", "", "Bad_Name"]),
        "quantity": st.sampled_from(["100m", "1Gi", "0.5", 1, "-1", "1x", "12Qi", 2.5]),
        "time": st.sampled_from(["2024-01-01T00:00:00Z", "yesterday", ""]),
        "any": st.none() | st.integers(0, 9) | st.sampled_from(STRINGS[:5]),
    }[kind]
    return base


# fresh copies: a drawn value must not be shared between cases (hypothesis replays its draws)
WRONG = st.sampled_from([None, [], {}, [1], {"a": 1}, "x", 7, 80.5, True, "", 2**40]).map(lambda v: json.loads(json.dumps(v)))


def of_type(t, depth: int):
    """Values of schema type `t` (sometimes of a wrong type), nested at most 4 structs deep."""
    if isinstance(t, Struct):
        if depth > 4:
            return st.just({})
        return st.deferred(lambda: st.fixed_dictionaries(
            {}, optional={name: of_type(field_type, depth + 1) for name, field_type in t.fields.items()}))
    if isinstance(t, tuple):
        element = of_type(t[1], depth + 1)
        if t[0] == "list":
            return st.lists(element, max_size=2)
        return st.dictionaries(st.sampled_from(["app", "a", "k8s-app", "tier", "Bad Key"]), element, max_size=2)
    return scalar(t)


def with_wrong(strategy):
    return st.one_of(strategy, strategy, strategy, WRONG)


@st.composite
def schema_objects(draw):
    key = draw(st.sampled_from(sorted(ROOTS)))
    api_version, _, kind = key.rpartition("/")
    root = ROOTS[key]
    obj = draw(st.fixed_dictionaries({}, optional={name: with_wrong(of_type(t, 1)) for name, t in root.fields.items()
                                                   if name not in ("apiVersion", "kind")}))
    obj["apiVersion"], obj["kind"] = api_version, kind
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    if draw(st.booleans()):
        metadata["name"] = draw(st.sampled_from(NAMES))
        metadata.pop("namespace", None)
    obj["metadata"] = metadata
    return obj


BASES = [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"app": "web"}},
     "spec": {"type": "NodePort", "selector": {"app": "web"}, "externalIPs": ["192.0.2.10"],
              "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                        {"name": "dns", "port": 53, "protocol": "UDP"}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
     "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "sessionAffinity": "ClientIP",
              "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}, "ports": [{"port": 443}]}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
     "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"},
                                          "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]},
              "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
              "template": {"metadata": {"labels": {"app": "web"}},
                           "spec": {"containers": [{"name": "web", "image": "nginx",
                                                    "ports": [{"name": "http", "containerPort": 8080}],
                                                    "resources": {"requests": {"cpu": "100m"}},
                                                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}}}]}}}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "web"}},
     "spec": {"nodeName": "node2", "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"]}]}},
    {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext"},
     "subsets": [{"addresses": [{"ip": "192.0.2.5"}], "ports": [{"port": 6379}]}]},
    {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
     "metadata": {"name": "ext-1", "labels": {"kubernetes.io/service-name": "ext"}}, "addressType": "IPv4",
     "endpoints": [{"addresses": ["192.0.2.6"], "conditions": {"ready": True}}], "ports": [{"port": 6379}]},
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "ing"},
     "spec": {"rules": [{"host": "example.com", "http": {"paths": [
         {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
    {"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "old"},
     "spec": {"backend": {"serviceName": "web", "servicePort": 80}}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "dGVzdA=="}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}},
]


def paths_of(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths_of(item, path + (index,))


@st.composite
def mutated_objects(draw):
    obj = json.loads(json.dumps(draw(st.sampled_from(BASES))))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in paths_of(obj) if p]
        path = draw(st.sampled_from(paths))
        parent = obj
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        operation = draw(st.sampled_from(["replace", "remove", "null", "wrap", "unknown", "stringify"]))
        if operation == "replace":
            parent[last] = draw(WRONG | scalar("string") | scalar("int32"))
        elif operation == "remove":
            del parent[last]
        elif operation == "null":
            parent[last] = None
        elif operation == "wrap":
            parent[last] = [parent[last]]
        elif operation == "stringify":
            parent[last] = json.dumps(parent[last]) if not isinstance(parent[last], str) else parent[last] + " "
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["bogus", "Ports", "spec", "metadata"]))] = draw(WRONG)
    return obj


def exercise(cluster: Cluster, source) -> None:
    """One case: a clean verdict, in bounded time and memory, and never half applied."""
    before = snapshot(cluster)
    with bounded(seconds=5, memory=512 * 2**20), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cluster.apply(source)
        except (ManifestError, TestbedError) as err:
            assert "internal error" not in str(err), str(err)
            assert all(line.strip() for line in str(err).splitlines())
            assert snapshot(cluster) == before, "a refused apply changed the cluster"
            return
    # accepted: the allocators hold exactly what the store says
    cp = cluster.control_plane
    allocations = snapshot(cluster)[1]
    cp._rebuild_allocators()
    assert snapshot(cluster)[1] == allocations, "an allocation leaked or was lost"


@CORPUS
@given(schema_objects())
def test_objects_generated_from_the_schema(obj):
    exercise(Cluster(network=False, seed=1, cluster_dns=False), obj)


SHARED = {}


@CORPUS
@given(st.lists(mutated_objects(), min_size=1, max_size=3))
def test_valid_manifests_mutated(objects):
    # one cluster for the whole run: later cases meet what earlier ones left (updates, collisions)
    cluster = SHARED.setdefault("cluster", Cluster(network=False, seed=1))
    exercise(cluster, objects)


@settings(CORPUS, max_examples=60)
@given(st.sampled_from(BASES), st.integers(0, 10_000), st.sampled_from(
    ["", "\x00", "\t", ": ", "- ", "{", "]", "&a ", "*a ", "<<: ", "\n---\n", "\xe9", "'", "\"", "!!int ", "\n  x: 1\n",
     "key: value\nkey: again\n", "? [a]\n: b\n"]), st.booleans())
def test_yaml_text_mutated_through_validate_and_render(tmp_path, base, position, insert, as_json):
    text = json.dumps(base) if as_json else yaml.safe_dump(base, sort_keys=False)
    position %= len(text) + 1
    data = (text[:position] + insert + text[position:]).encode("utf-8", "surrogateescape")
    path = tmp_path / "case.yaml"
    path.write_bytes(data if insert != "\xe9" else data.replace("\xe9".encode(), b"\xe9"))
    for argv in (["validate", "-f", str(path)], ["render", "iptables", "-f", str(path)]):
        out, err = io.StringIO(), io.StringIO()
        with bounded(seconds=5, memory=512 * 2**20), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        assert code in (0, 1), (code, err.getvalue())
        assert "Traceback" not in err.getvalue()
        assert code == 0 or err.getvalue().strip(), "a refusal says why"
