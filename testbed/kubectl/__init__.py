"""kubectl for the testbed: `Kubectl(cluster).run(["get", "svc"])` returns what kubectl prints, and
`TestbedCLI` (shell.py) adds those commands to Mininet's interactive CLI.

Layout: flags.py (pflag-style parsing), format.py (Go tabwriter, AGE, selectors), tables.py (`get`
columns per kind), describe.py (`describe` layouts), strategicpatch.py and patches.py (the three
patch types), generators.py (what `run` and `create` make), commands.py (the verbs over the Cluster
API, with update_commands.py: label/annotate/patch/edit, create_commands.py: run/create,
info_commands.py: version/cluster-info, common.py: what they share), editor.py (edit's file and
editor), shell.py (line dispatch and the Mininet CLI, with `client` and `external`). Pure: all but
the command modules, editor.py and shell.py.
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
