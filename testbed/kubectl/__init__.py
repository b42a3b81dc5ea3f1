"""kubectl for the testbed: `Kubectl(cluster).run(["get", "svc"])` returns what kubectl prints, and
`TestbedCLI` (shell.py) adds those commands to Mininet's interactive CLI.

Layout: flags.py (pflag-style parsing), format.py (Go tabwriter, AGE, selectors), tables.py (`get`
columns per kind), describe.py (`describe` layouts), commands.py (the verbs over the Cluster API),
shell.py (line dispatch and the Mininet CLI). Everything except commands.py and shell.py is pure.
"""
from .commands import Kubectl, KubectlError, deployment_rollout_status
from .dispatch import CommandResult, execute_line

__all__ = ["CommandResult", "Kubectl", "KubectlError", "TestbedCLI", "deployment_rollout_status", "execute_line"]


def __getattr__(name: str):
    # TestbedCLI subclasses Mininet's CLI; import it on first use so that Kubectl needs no mininet.
    if name == "TestbedCLI":
        from .shell import TestbedCLI
        return TestbedCLI
    raise AttributeError(name)
