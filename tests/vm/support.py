"""Helpers for the tests that run inside `testbed vm`: commands with scaled timeouts, scratch namespaces."""
import shlex
import subprocess
import uuid

from testbed.vm import scaled


def sh(command: str, timeout: float = 20, check: bool = True) -> str:
    """Run a shell command in the guest's root namespace; its stdout. The timeout is the native one,
    scaled for the accelerator (TCG is 50-75x slower)."""
    proc = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=scaled(timeout))
    if check and proc.returncode != 0:
        raise AssertionError(f"{command}: exit {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


class Namespaces:
    """Named network namespaces for one test (`ip netns`), linked by veth pairs; all deleted after."""

    def __init__(self):
        self.prefix = "tbvm" + uuid.uuid4().hex[:4]
        self.names: list[str] = []
        self.processes: list[subprocess.Popen] = []

    def add(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        sh(f"ip netns add {name}")
        self.names.append(name)
        sh(f"ip netns exec {name} ip link set lo up")
        return name

    def run(self, namespace: str, command: str, timeout: float = 20, check: bool = True) -> str:
        return sh(f"ip netns exec {namespace} {command}", timeout=timeout, check=check)

    def link(self, a: str, a_addr: str, b: str, b_addr: str) -> tuple[str, str]:
        """A veth pair between namespaces a and b with the given addresses (CIDR); the two names."""
        tag = uuid.uuid4().hex[:4]
        end_a, end_b = f"va{tag}", f"vb{tag}"
        sh(f"ip link add {end_a} netns {a} type veth peer name {end_b} netns {b}")
        for ns, end, addr in ((a, end_a, a_addr), (b, end_b, b_addr)):
            self.run(ns, f"ip addr add {addr} dev {end}")
            self.run(ns, f"ip link set {end} up")
        return end_a, end_b

    def spawn(self, namespace: str, command: str) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", namespace, *shlex.split(command)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.processes:
            proc.kill()
            proc.wait()
        for name in reversed(self.names):
            # Processes still in the namespace (servers) go first, or the namespace outlives its name.
            subprocess.run(f"ip netns pids {name} | xargs -r kill -9", shell=True, capture_output=True)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
