"""The `testbed` command: validate, render, up, demo, experiment, report, probe, clean, vm.

Every user error ends as one line per problem on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import ManifestError, TestbedError, in_document_order



FIELD_VALIDATION = {"strict": "Strict", "warn": "Warn", "ignore": "Ignore"}   # kubectl's --validate


def _review(cluster, paths: list[str], field_validation: str):
    """Every file read (stdin as bytes, strictly UTF-8) and checked: one readable document's problems
    are reported even when another file does not parse. Warnings go to stderr as kubectl prints them."""
    from .manifests import read
    documents, problems = read(paths)
    review = cluster.control_plane.review(documents, field_validation)
    for warning in review.warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    if problems or review.errors:
        raise ManifestError(in_document_order(problems + review.errors))
    return documents


def _load_control_plane(paths: list[str], topo: str, seed: int | None = 1, field_validation: str = "Warn",
                        service_cidr: str | None = None):
    """A network-less cluster with the manifests applied (for validate and render)."""
    import warnings
    from .cluster import Cluster
    cluster = Cluster(topo=topo, network=False, seed=seed, service_cidr=service_cidr)
    if paths:
        documents = _review(cluster, paths, field_validation)
        with warnings.catch_warnings():   # printed by _review already
            warnings.simplefilter("ignore")
            cluster.control_plane.apply(documents, field_validation)
    return cluster


def cmd_validate(args) -> int:
    from .cluster import Cluster
    documents = _review(Cluster(topo=args.topo, network=False, service_cidr=args.service_cidr), args.filename,
                        FIELD_VALIDATION[args.validate])
    files = len({d.source.rsplit(":", 1)[0] for d in documents})
    print(f"{len(documents)} objects in {files} file(s): valid")
    return 0


def cmd_render(args) -> int:
    from .proxy.render import render
    cluster = _load_control_plane(args.filename, args.topo, field_validation=FIELD_VALIDATION[args.validate],
                                  service_cidr=args.service_cidr)
    print(render(args.mode, cluster, node=args.node, cluster_cidr=args.cluster_cidr), end="")
    return 0


def cmd_up(args) -> int:
    from .shell import run_interactive
    return run_interactive(args.filename, topo=args.topo, proxy_mode=args.proxy_mode, service_cidr=args.service_cidr,
                           options={**_backend_options(args), "switch": args.switch})


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(topo=args.topo, proxy_mode=args.proxy_mode, sweep=not args.no_sweep)


def cmd_clean(args) -> int:
    from .net.cleanup import clean
    for line in clean():
        print(line)
    return 0


def cmd_experiment(args) -> int:
    from .experiments import list_experiments, load_experiment, run_experiment, usage
    if args.action == "list":
        for name, description in list_experiments():
            print(f"{name:16} {description}")
            print(f"{'':16} {usage(load_experiment(name))}")
        return 0
    if not args.name:
        raise TestbedError("experiment run: which experiment? (see `testbed experiment list`)")
    out = run_experiment(args.name, args.options)
    print(f"results: {out}")
    print(f"report:  testbed report {out}")
    return 0


def cmd_report(args) -> int:
    from .reports import write_report
    report = write_report(args.results_dir)
    print(f"report: {report.html}")
    print(f"summary: {report.markdown}")
    return 0


SERVICE_CIDR_HELP = "kube-apiserver's --service-cluster-ip-range (default 10.96.0.0/12)"
SWITCH_KINDS = ("ovs", "linuxbridge")   # testbed/net/switches.py (not imported here: no Mininet for --help)
SWITCH_HELP = ("node and fabric switches: Open vSwitch (default; kernel datapath where the module exists, else "
               "userspace) or Linux bridges in their own namespaces (the kernel's datapath; not for sdn mode)")


def _add_backend_options(parser: argparse.ArgumentParser, backends) -> None:
    """Every backend's options as --flags (they apply when that mode is chosen)."""
    seen = set()
    for backend in backends.values():
        for option in backend.options:
            if option.name in seen:
                continue
            seen.add(option.name)
            parser.add_argument("--" + option.name.replace("_", "-"), dest=f"backend_{option.name}",
                                choices=option.choices, help=f"{backend.mode} mode: {option.help} (default {option.default})")


def _backend_options(args) -> dict:
    return {k[len("backend_"):]: v for k, v in vars(args).items() if k.startswith("backend_") and v is not None}


VM_UNAVAILABLE_EXIT = 3   # `testbed vm` cannot run here at all (make test-vm skips on it, and only on it)


def cmd_vm(args) -> int:
    from .vm.kernel import VmUnavailable
    from .vm.launch import prepare, run
    command = args.command_line[1:] if args.command_line[:1] == ["--"] else args.command_line
    if not command and not args.check:
        raise TestbedError("vm: which command? (testbed vm [--memory M] [--cpus N] -- CMD ...)")
    try:
        config = prepare(memory=args.memory, cpus=args.cpus, log=lambda line: print(line, file=sys.stderr))
    except VmUnavailable as err:
        print(f"testbed vm: cannot run here: {err}", file=sys.stderr)
        return VM_UNAVAILABLE_EXIT
    print(config.summary(), file=sys.stderr, flush=True)
    if args.check:
        print(json.dumps(config.metadata(), indent=1))
        return 0
    return run(config, command)


def build_parser() -> argparse.ArgumentParser:
    from .proxy.backend import all_backends, render_formats
    backends = all_backends()
    parser = argparse.ArgumentParser(prog="testbed", description="Kubernetes Service networking testbed "
                                     "(Mininet + Open vSwitch)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check manifests as the API server would")
    p.add_argument("-f", "--filename", action="append", required=True, help="file, directory or - (stdin)")
    p.add_argument("--topo", default="default", help="topology (its nodes matter for some checks)")
    p.add_argument("--service-cidr", help=SERVICE_CIDR_HELP)
    p.add_argument("--validate", choices=FIELD_VALIDATION, default="warn",
                   help="unknown fields: warn (default), strict (an error) or ignore, as kubectl's --validate")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("render", help="print what a node's data plane gets (no root needed)")
    p.add_argument("mode", metavar="FORMAT", choices=list(render_formats()),
                   help="; ".join(f"{f}: {b.mode} mode" for f, b in render_formats().items()))
    p.add_argument("-f", "--filename", action="append", default=[], help="file, directory or - (stdin)")
    p.add_argument("--node", help="node to render for (default: the first node)")
    p.add_argument("--topo", default="default")
    p.add_argument("--cluster-cidr", help="kube-proxy's --cluster-cidr (default: the testbed's pod CIDR)")
    p.add_argument("--service-cidr", help=SERVICE_CIDR_HELP)
    p.add_argument("--validate", choices=FIELD_VALIDATION, default="warn", help="as for validate")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("up", help="bring a cluster up with an interactive CLI (needs root)")
    p.add_argument("-f", "--filename", action="append", default=[])
    p.add_argument("--topo", default="default")
    p.add_argument("--proxy-mode", default="iptables", choices=list(backends))
    p.add_argument("--service-cidr", help=SERVICE_CIDR_HELP)
    p.add_argument("--switch", choices=SWITCH_KINDS, default="ovs", help=SWITCH_HELP)
    _add_backend_options(p, backends)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("demo", help="bring up the default cluster with the example manifests and show them working")
    p.add_argument("--topo", default="default")
    p.add_argument("--proxy-mode", default="iptables", choices=list(backends))
    p.add_argument("--no-sweep", action="store_true", help="only the feature tour, without the quick proxy-scale sweep")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("experiment", help="list or run experiments",
                       description="testbed experiment run NAME [--modes a,b] [--services 1,100,...] [--repeat N] "
                                   "[--out DIR] [--quick] [--switch ovs|linuxbridge] (and the experiment's own "
                                   "grid options: `testbed experiment list`)")
    p.add_argument("action", choices=("list", "run"))
    p.add_argument("name", nargs="?")
    p.add_argument("options", nargs=argparse.REMAINDER, help="experiment options (see `run NAME --help`)")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("report", help="write an HTML report and a Markdown summary with plots for a results folder")
    p.add_argument("results_dir")
    p.set_defaults(func=cmd_report)

    from .probes.cli import add_probe_parser
    add_probe_parser(sub)

    p = sub.add_parser("clean", help="remove what a crashed run left (only what the testbed made)")
    p.set_defaults(func=cmd_clean)

    from .vm.launch import DEFAULT_CPUS, DEFAULT_MEMORY
    p = sub.add_parser("vm", help="run a command under Debian's kernel in a micro-VM (real IPVS, OVS kernel "
                       "datapath, netem), from the project folder")
    p.add_argument("--memory", default=DEFAULT_MEMORY, help=f"guest memory, qemu's -m syntax (default {DEFAULT_MEMORY})")
    p.add_argument("--cpus", type=int, help=f"guest CPUs (default {DEFAULT_CPUS['tcg']} under TCG, where one boots "
                   f"fastest, {DEFAULT_CPUS['kvm']} under KVM)")
    p.add_argument("--check", action="store_true",
                   help="only say what would run (kernel, accelerator, qemu) or why it cannot, and exit")
    p.add_argument("command_line", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    p.set_defaults(func=cmd_vm)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except ManifestError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return 1
    except TestbedError as err:
        print(f"testbed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("testbed: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
