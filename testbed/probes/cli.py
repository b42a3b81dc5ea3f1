"""`testbed probe syn|nodeport|arp|dns|trace`: bring a cluster up per mode, probe it, print what was seen.

    testbed probe syn --service myapp-svc --modes iptables,sdn
    testbed probe trace --service myapp-svc --modes iptables,iptables-legacy,sdn
    testbed probe nodeport --service myapp-svc
    testbed probe arp
    testbed probe dns --names myapp-svc.default.svc.cluster.local,kubernetes.default.svc.cluster.local --count 20
    ... --out DIR     also add the records as tidy samples to a results folder (`testbed report DIR`)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..errors import TestbedError

PROBES = ("syn", "nodeport", "arp", "dns", "trace")
DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "examples" / "myapp.yaml"


def add_probe_parser(sub) -> None:
    p = sub.add_parser("probe", help="scapy probes in an emulated cluster: syn, nodeport, arp, dns, trace (needs root)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("probe", choices=PROBES)
    p.add_argument("-f", "--filename", action="append", help=f"manifests to apply first (default {DEFAULT_MANIFEST.name})")
    p.add_argument("--modes", default="iptables", help="mode labels, comma-separated (`testbed experiment list` shows them)")
    p.add_argument("--service", default="myapp-svc", help="syn, nodeport, trace: the Service to probe")
    p.add_argument("--namespace", default="default")
    p.add_argument("--port", help="the Service port (number or name; default: its first)")
    p.add_argument("--names", help="dns: names to query, comma-separated (default: the Service's FQDN)")
    p.add_argument("--qtype", default="A", help="dns: query type (A, SRV, PTR, ...)")
    p.add_argument("--count", type=int, default=5, help="dns: queries per name")
    p.add_argument("--source", choices=("external", "client"), default="external", help="arp: who asks")
    p.add_argument("--topo", default="default")
    p.add_argument("--switch", choices=("ovs", "linuxbridge"), help="default: ovs")
    p.add_argument("--json", action="store_true", help="print the records as JSON lines")
    p.add_argument("--out", help="add the records as tidy samples to this results folder")
    p.set_defaults(func=run_probe_command)


def run_probe(cluster, args) -> list[dict]:
    from . import arp, dns, nodeport, syn, trace
    port = int(args.port) if args.port and args.port.isdigit() else args.port
    if args.probe == "syn":
        return [syn(cluster, args.service, args.namespace, port)]
    if args.probe == "nodeport":
        return nodeport(cluster, args.service, args.namespace, port)
    if args.probe == "arp":
        return arp(cluster, source=args.source)
    if args.probe == "dns":
        names = args.names.split(",") if args.names else [f"{args.service}.{args.namespace}.svc.cluster.local"]
        return dns(cluster, names, args.qtype, args.count)
    return [trace(cluster, args.service, args.namespace, port)]


def describe(probe: str, record: dict) -> list[str]:
    """Readable lines for one record (pure)."""
    if probe in ("syn", "nodeport"):
        head = f"{record.get('entry', 'ClusterIP')}: SYN {record['client']} {record['client_ip']}:{record['client_port']} " \
               f"-> {record['vip']}:{record['port']}"
        if record["served_by"]:
            seen = f"  at {record['served_by']}: {record['endpoint_src']} -> {record['endpoint_dst']}"
            if record["endpoint_dst"] != f"{record['vip']}:{record['port']}":
                seen += " (destination rewritten to the endpoint)"
            seen += "" if record["source_preserved"] else " (source rewritten: masquerade)"
        else:
            seen = "  no endpoint saw it"
        if record["answered"]:
            back = f"  reply at the client from {record['reply_src']} after {record['rtt_us']:.0f} µs" + (
                " (source rewritten back to the VIP)" if record["reply_src_is_vip"] else "")
        else:
            back = "  refused (RST or ICMP)" if record["rejected"] else "  no reply"
        return [head, seen, back]
    if probe == "arp":
        who = ", ".join(f"{a['node'] or '?'} ({a['mac']})" for a in record["answers"]) or "nobody"
        return [f"who-has {record['ip']} ({record['what']}) from {record['source']}: {who}"]
    if probe == "dns":
        rtt = f"{record['rtt_us']:.0f} µs" if record["rtt_us"] is not None else "timeout"
        return [f"{record['name']} {record['qtype']} #{record['seq']}: {record['rcode']} {rtt} {'; '.join(record['answers'])}"]
    lines = [f"{record['method']} on {record['node']} for {record['client']} -> {record['target']}:"]
    return lines + [f"  {i + 1}. {step}" for i, step in enumerate(record["matched"])] + (
        [] if record["matched"] else ["  (nothing matched)"])


def run_probe_command(args) -> int:
    from ..experiments.common import cluster_for, data_plane_label, not_runnable_reason
    from ..results import ResultsFolder, RunRecord, environment, new_run_id
    from . import to_samples
    manifests = args.filename or [str(DEFAULT_MANIFEST)]
    rows, record = [], RunRecord(run=new_run_id(), started=time.strftime("%Y-%m-%dT%H:%M:%S%z"), grid={"mode": args.modes},
                                 options={"argv": [args.probe, "--service", args.service]})
    status = 0
    for mode in args.modes.split(","):
        reason = not_runnable_reason(mode, args.switch)
        if reason:
            print(f"{mode}: not run: {reason}")
            record.not_run.append({"mode": mode, "point": {"probe": args.probe}, "reason": reason})
            continue
        options = {"switch": args.switch} if args.switch else {}
        try:
            with cluster_for(mode, topo=args.topo, **options) as cluster:
                for path in manifests:
                    cluster.apply(path)
                records = run_probe(cluster, args)
                label = data_plane_label(cluster, mode)
                record.modes[mode] = label
                print(f"== {mode}: {label['backend']} on {label['datapath']}")
                for item in records:
                    if args.json:
                        print(json.dumps({**label, **item}))
                    else:
                        print("\n".join(describe(args.probe, item)))
                rows += [{**row, "probe": args.probe} for row in to_samples(records, cluster, args.probe, mode)]
        except TestbedError as err:
            print(f"{mode}: failed: {err}")
            record.failures.append({"mode": mode, "point": {"probe": args.probe}, "error": str(err)})
            status = 1
    if args.out:
        ResultsFolder(args.out, f"probe-{args.probe}", environment()).add_run(record, rows)
        print(f"samples: {args.out}")
    return status


def _standalone() -> argparse.ArgumentParser:   # for tests of the parser without the whole CLI
    parser = argparse.ArgumentParser(prog="testbed")
    add_probe_parser(parser.add_subparsers(dest="command", required=True))
    return parser
