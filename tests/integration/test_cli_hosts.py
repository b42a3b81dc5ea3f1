"""Inside `testbed up`: `client CMD` and `external CMD` reach the cluster as the README says (issue 7,
bug 4), and a seed article's `kubectl run --replicas ... ` serves traffic (bug 8). One real
`testbed up` process, driven line by line through its standard input."""
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testbed.net import addressing

pytestmark = pytest.mark.usefixtures("require_root")
ROOT = Path(__file__).resolve().parents[2]
POD_NAME = r"myapp-[a-z0-9]+-[a-z0-9]{5}"


class Session:
    """`testbed up` with a pipe for its input. Lines go one at a time, each after the previous
    command's answer: while a host command runs, Mininet forwards typed input to it."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-m", "testbed.cli", "up", "-f", "examples/myapp.yaml"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        cwd=ROOT)
        self.output = ""

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match:
        deadline = time.monotonic() + timeout
        start = len(self.output)
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output[start:])
            if match:
                return match
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    break
                self.output += chunk.decode(errors="replace")
        raise AssertionError(f"no {pattern!r} within {timeout} s; output:\n{self.output}")

    def send(self, line: str, answer: str, timeout: float = 60) -> None:
        """Send a line; wait for its answer and then for the next prompt (the command is over)."""
        start = len(self.output)
        self.process.stdin.write((line + "\n").encode())
        self.process.stdin.flush()
        self.wait_for(f"{answer}[\\s\\S]*testbed> ", timeout)
        assert "Traceback" not in self.output[start:], self.output[start:]

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.write(b"exit\n")
            self.process.stdin.flush()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGINT)
                self.process.wait(timeout=60)


@pytest.fixture
def session():
    up = Session()
    try:
        up.wait_for("cluster ready[\\s\\S]*testbed> ")
        yield up
    finally:
        up.close()


def test_client_external_and_kubectl_run_inside_testbed_up(session):
    # The README's line: the client pod is created on first use and resolves the Service by name.
    session.send("client curl -s -m 5 myapp-svc/hostname.html", POD_NAME)
    # The external host reaches the NodePort, as Cluster.external() does.
    node_ip = addressing.node_ip(0)
    session.send(f"external curl -s -m 5 {node_ip}:32223/hostname.html", POD_NAME)
    # An article's command makes a Deployment that serves; expose it and reach it from the client.
    session.send("kubectl run nginx --image=nginx:latest --replicas=2 --image-pull-policy=IfNotPresent --port=80",
                 r"deployment\.apps/nginx created")
    session.send("expose deployment nginx", r"service/nginx exposed")
    session.send("client curl -s -m 5 nginx/hostname.html", r"nginx-[a-z0-9]+-[a-z0-9]{5}")
    # The client is a pod of the cluster: kubectl sees it.
    session.send("get pod client", r"client\s+1/1\s+Running")
