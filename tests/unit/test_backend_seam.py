"""The data-plane seam (testbed/proxy/backend.py): one declared interface, one registry, and
everything that lists modes derived from it. A toy backend defined in this module alone must show
up in the CLI's choices, `testbed render`, `Cluster(proxy_mode=...)` and the experiment grids."""
import re
from pathlib import Path

import pytest

from testbed import Cluster
from testbed.cli import build_parser, main
from testbed.errors import TestbedError
from testbed.experiments.common import algorithm_annotations, mode_labels
from testbed.net.runner import NamespaceRunner
from testbed.proxy import backend as registry
from testbed.proxy.backend import Backend, BackendOption, NodeContext, Proxier, SyncResult
from testbed.proxy.model import NodeInfo

README = Path(__file__).parents[2] / "README.md"
NODE = NodeInfo(name="node1", ip="172.18.0.10", pod_cidr="10.244.0.0/24", cluster_cidr="10.244.0.0/16")


class ToyProxier:
    """Remembers what it was told; a real proxier would write the node's kernel state."""

    def __init__(self, ctx: NodeContext):
        self.ctx = ctx
        self.calls = []

    def sync(self, ports, changed):
        self.calls.append((len(ports), changed))
        return SyncResult(0.0, 0.0, len(ports), tuple(sorted(f"{n}/{s}" for n, s in changed or ())), changed is None)

    def cleanup(self):
        self.calls.clear()

    def stop(self):
        pass


def toy_render(ports, node, layout=None):
    return "".join(f"toy {node.name} {p.cluster_ip}:{p.port} -> {len(p.endpoints)} endpoints\n" for p in ports)


@pytest.fixture
def toy():
    backend = registry.register(Backend(
        mode="toy", summary="a backend that exists only in this test", render=toy_render,
        make_proxier=ToyProxier, algorithms=("random", "coin"),
        options=(BackendOption("flavour", ("plain", "sweet"), "plain"),),
        variants={"toy": {"flavour": "plain"}, "toy-sweet": {"flavour": "sweet"}},
        describe=lambda options: f"toy ({options['flavour']})"))
    yield backend
    registry.unregister("toy")


def _choices(parser, command, dest):
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return next(a for a in sub._actions if a.dest == dest).choices


def test_a_toy_backend_appears_everywhere_modes_are_listed(toy, capsys):
    parser = build_parser()
    assert "toy" in _choices(parser, "up", "proxy_mode")
    assert "toy" in _choices(parser, "demo", "proxy_mode")
    assert "toy" in _choices(parser, "render", "mode")
    assert main(["render", "toy", "-f", "examples/myapp.yaml", "--node", "node2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("toy node2 ") and "-> 3 endpoints" in out
    assert {"toy", "toy-sweet"} <= set(mode_labels())
    assert algorithm_annotations("toy-sweet", "coin") == {"testbed.io/lb-algorithm": "coin"}
    cluster = Cluster(proxy_mode="toy", network=False, flavour="sweet")
    assert cluster.proxy_options == {"flavour": "sweet"} and toy.label(cluster.proxy_options) == "toy (sweet)"


def test_a_toy_backend_leaves_the_registry_when_unregistered(toy):
    registry.unregister("toy")
    assert "toy" not in registry.modes()
    with pytest.raises(TestbedError, match="unknown proxy mode 'toy'"):
        Cluster(proxy_mode="toy", network=False)


def test_backend_options_are_checked(toy):
    with pytest.raises(TestbedError, match="flavour: 'salty'"):
        Cluster(proxy_mode="toy", network=False, flavour="salty")
    with pytest.raises(TestbedError, match="unknown option 'iptables_backend'"):
        Cluster(proxy_mode="toy", network=False, iptables_backend="legacy")


def test_a_mode_this_kernel_cannot_run_stops_at_once_with_its_reason(capsys):
    registry.register(Backend(mode="nokernel", summary="needs what this kernel lacks", render=toy_render,
                              make_proxier=ToyProxier, unavailable=lambda: "this kernel has no frobnicator"))
    try:
        assert main(["up", "--proxy-mode", "nokernel"]) == 1
        err = capsys.readouterr().err
        assert err.strip().splitlines() == ["testbed: nokernel mode cannot run here: this kernel has no frobnicator"]
    finally:
        registry.unregister("nokernel")


@pytest.mark.parametrize("mode", registry.modes())
def test_every_registered_backend_keeps_the_interface(mode):
    backend = registry.get_backend(mode)
    assert backend.summary and backend.algorithms and backend.render_format
    assert (backend.make_proxier is None) != (backend.make_dataplane is None) or backend.make_proxier
    options = backend.resolve_options({})
    assert backend.label(options)
    assert isinstance(backend.tools(options), tuple)
    assert all(isinstance(c, str) for c in backend.node_setup(NODE, options))
    ports = Cluster(network=False, seed=1)
    ports.apply("examples/myapp.yaml")
    assert isinstance(backend.render(ports.service_ports(), NODE, None), str)
    if backend.make_proxier is not None:
        proxier = backend.make_proxier(NodeContext(NODE, NamespaceRunner(), Path("/nonexistent"), "test", options))
        assert isinstance(proxier, Proxier)


def test_the_readme_mode_table_lists_the_registered_modes():
    text = README.read_text()
    table = text[text.index("## Proxy modes"):]
    table = table[:table.index("\n\n", table.index("| mode"))]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", table, re.M)
    assert listed == list(registry.modes()), "README's mode table is out of step with the backend registry"
