"""Start a container's process with exactly the container's environment, as a runtime does.

    python3 -I -S run_container.py ENV_FILE -- ARGV...

ENV_FILE is JSON: {"env": {...}, "workdir": "/"}. The process is exec'd in place (same pid), with
nothing of the caller's environment but the testbed's cluster marker (TESTBED_CLUSTER). An exec that
fails is reported the way runc reports it to containerd ("unable to start container process: exec:
...: argument list too long"), with exit code 128 (START_ERROR), which the kubelet turns into the
container state StartError: that is what a pod with too many Service variables shows in Kubernetes.
Standard library only: it runs with -I -S.
"""
import json
import os
import shutil
import sys

MARKER = "TESTBED_CLUSTER"
START_ERROR = 128
START_ERROR_PREFIX = ("failed to create containerd task: failed to create shim task: OCI runtime create failed: "
                      "runc create failed: unable to start container process")


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print("usage: run_container.py ENV_FILE -- ARGV...", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    env = dict(spec.get("env") or {})
    # The one variable of the testbed's own: its cluster marker, by which `testbed clean` finds
    # the processes a crashed run left.
    if MARKER in os.environ:
        env[MARKER] = os.environ[MARKER]
    argv = sys.argv[3:]
    path = shutil.which(argv[0], path=env.get("PATH", os.defpath)) or argv[0]
    try:
        os.chdir(spec.get("workdir") or "/")
        os.execve(path, argv, env)
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        if not os.path.exists(path):
            reason = "no such file or directory"
        print(f"{START_ERROR_PREFIX}: exec: {json.dumps(argv[0])}: {reason}: unknown", file=sys.stderr, flush=True)
        return START_ERROR


if __name__ == "__main__":
    sys.exit(main())
