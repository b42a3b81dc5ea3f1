"""`TestbedCLI`: Mininet's interactive CLI plus kubectl.

Every Mininet command keeps working (`node1 ping -c1 node2`, `pingall`, `dump`); kubectl runs as
`kubectl get pods`, `k get pods`, or the verb alone (`get pods`, `apply -f x.yaml`). `client CMD`
and `external CMD` run CMD on the hosts the Python API calls `Cluster.client()` (a pod with cluster
DNS, created on first use) and `Cluster.external()` (outside the cluster; Mininet names it `ext`).
Errors print as one line, never a traceback, and never end the session.
"""
from __future__ import annotations

import sys

from mininet.cli import CLI
from mininet.log import error, output
from mininet.util import quietRun

from ..errors import TestbedError
from .commands import USAGE
from .dispatch import execute_line


class TestbedCLI(CLI):
    prompt = "testbed> "
    helpStr = CLI.helpStr + (
        "kubectl commands act on the emulated cluster:\n"
        "  testbed> kubectl get pods -o wide\n"
        "  testbed> k describe svc myapp-svc\n"
        "  testbed> get svc        (any kubectl verb works without the prefix)\n\n"
        "The client pod and the external host, as in the Python API:\n"
        "  testbed> client curl -s myapp-svc/hostname.html\n"
        "  testbed> external curl -s 172.18.0.10:32223/hostname.html\n\n"
        "Switch the Service data plane of the running cluster:\n"
        "  testbed> proxy-mode sdn\n\n"
    )

    def __init__(self, mininet, kubectl, stdin=sys.stdin, script=None, cluster=None, **kwargs):
        # Set first: Mininet's CLI starts its loop inside __init__.
        self.kubectl = kubectl
        self.cluster = cluster if cluster is not None else kubectl.cluster
        super().__init__(mininet, stdin=stdin, script=script, **kwargs)

    def run(self):
        """Mininet's loop prints "Interrupt" and goes on after Ctrl-C; here Ctrl-C at the prompt (or
        during a kubectl command) leaves the CLI, and `testbed up` then tears the cluster down.
        Ctrl-C during a command running in a node still only interrupts that command (Mininet
        sends it to the node)."""
        for node in self.mn.values():  # as Mininet does: no node may still be running a command
            while node.waiting:
                node.sendInt()
                node.waitOutput()
        if self.isatty():
            quietRun("stty echo sane intr ^C")
        try:
            self.cmdloop()
        except KeyboardInterrupt:
            output("\nInterrupted: leaving the CLI\n")

    def parseline(self, line):
        """Cmd splits a command at the first non-identifier character, which breaks `api-resources`
        and pod names such as `myapp-5d9f-x2kqz`; take the whole first word for those."""
        command, arg, line = super().parseline(line)
        words = line.split(None, 1)
        if words and words[0] != command and ("do_" + words[0] in self.get_names() or words[0] in self.mn):
            return words[0], (words[1] if len(words) > 1 else ""), line
        return command, arg, line

    def precmd(self, line: str) -> str:
        """Mininet cuts a line at any '#'; cut only at a comment (a '#' that starts a word outside
        quotes), so `k exec pod -- sh -c 'echo #1'` keeps its argument."""
        return strip_comment(line)

    def run_kubectl(self, line: str) -> None:
        try:
            result = execute_line(self.kubectl, line)
        except Exception as err:  # noqa: BLE001 - a bug must not end the session: one line, no traceback
            error(f"error: {type(err).__name__}: {err}\n")
            return
        if result.ok:
            if result.output:
                output(result.output if result.output.endswith("\n") else result.output + "\n")
        else:
            error(result.output.rstrip("\n") + "\n")

    def do_kubectl(self, line: str) -> None:
        """Run a kubectl command on the emulated cluster.
           Usage: kubectl VERB [ARGS...]   (e.g. kubectl get svc -o wide; kubectl help)"""
        self.run_kubectl(line)

    def do_k(self, line: str) -> None:
        """Short for kubectl.
           Usage: k VERB [ARGS...]"""
        self.run_kubectl(line)

    def do_client(self, line: str) -> None:
        """Run a command in the client pod (default namespace, cluster DNS, Service variables),
           created on first use as Cluster.client() does.
           Usage: client CMD [ARGS...]   (e.g. client curl -s myapp-svc)"""
        self.run_on_host("client", self.cluster.client, line)

    def do_external(self, line: str) -> None:
        """Run a command on the external host (outside the cluster, no cluster DNS; Mininet's `ext`),
           as Cluster.external() gives it.
           Usage: external CMD [ARGS...]   (e.g. external curl -s 172.18.0.10:32223)"""
        self.run_on_host("external", self.cluster.external, line)

    def do_proxy_mode(self, line: str) -> None:
        """Switch the cluster's Service data plane without restarting pods (the old mode's rules,
           sets, addresses, processes and flows are removed; established connections may break).
           Usage: proxy-mode MODE [--OPTION VALUE ...]   (e.g. proxy-mode sdn; proxy-mode iptables
           --iptables-backend legacy); without MODE: show the current mode and the modes offered"""
        from ..proxy.backend import all_backends
        words = line.split()
        if not words:
            modes = ", ".join(all_backends())
            output(f"proxy mode: {self.cluster.backend.label(self.cluster.proxy_options)} (modes: {modes})\n")
            return
        mode, rest = words[0], words[1:]
        options = {}
        while rest:
            flag = rest.pop(0)
            if not flag.startswith("--") or not rest:
                error(f"error: proxy-mode: expected --OPTION VALUE, got {flag!r}\n")
                return
            options[flag[2:].replace("-", "_")] = rest.pop(0)
        try:
            self.cluster.set_proxy_mode(mode, **options)
        except TestbedError as err:
            error(f"error: {err}\n")
            return
        output(f"proxy mode: {self.cluster.backend.label(self.cluster.proxy_options)}\n")

    def run_on_host(self, command: str, get_host, line: str) -> None:
        """Resolve the host through the Cluster API, then run the line as Mininet runs `NODE CMD`
        (node names in the arguments become IPs; output streams; Ctrl-C reaches the command)."""
        if not line.strip():
            error(f"*** Please enter a command for {command}: {command} <cmd>\n")
            return
        try:
            host = get_host()
        except Exception as err:  # noqa: BLE001 - one line, and the session goes on
            message = str(err) if isinstance(err, TestbedError) else f"{type(err).__name__}: {err}"
            error(f"error: {message.removeprefix('error: ')}\n")
            return
        self.default(f"{host.name} {line}")


def strip_comment(line: str) -> str:
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _verb_command(verb: str):
    def command(self: TestbedCLI, line: str) -> None:
        self.run_kubectl(f"{verb} {line}")
    summary, usage = USAGE[verb]
    command.__doc__ = f"kubectl {verb}: {summary}.\n           Usage: {usage}"
    command.__name__ = f"do_{verb}"
    return command


# One command per kubectl verb (`get pods`); `do_api-resources` is reachable through parseline above.
for _verb in USAGE:
    setattr(TestbedCLI, f"do_{_verb}", _verb_command(_verb))
setattr(TestbedCLI, "do_proxy-mode", TestbedCLI.do_proxy_mode)   # reachable through parseline above
