"""Cluster DNS served by a real Unbound process inside an emulated host's namespace.

Why Unbound: it is packaged by Debian, answers from in-memory `local-data` with no zone files, and
`unbound-control local_datas` / `local_datas_remove` change that data in bulk over a unix socket
without a restart, so a Service change costs one small control call, not a reload.

What the rendered configuration makes Unbound do:
- `<domain>` and the reverse zones of the service and cluster CIDRs are `static` local zones:
  names with data are answered from it (authoritative data only), other names get NXDOMAIN, or
  NOERROR/NODATA for names that only have data below them; negative answers carry the zone's SOA
  (negative TTL 5, as CoreDNS).
- Every other name is `refuse`d at once (local zone "."). There is no upstream, and nothing may
  leave the emulation: besides, the iterator may not query any address (`do-not-query-address`).
  A CNAME (ExternalName) is answered as is, without chasing its target, as local data in a
  static zone is never followed by Unbound.
- No DNSSEC modules (module-config "iterator"), no chroot, no privilege drop (runs as root), one
  thread, UDP and TCP, log in the work directory, control over a unix socket in it.

Unbound 1.17 facts this relies on (checked by tests/integration/test_unbound.py): several
`local-data` lines for one name and type form one RRset (several A or SRV answers); CNAME, SRV,
PTR and TXT are accepted as local data; `local_datas_remove NAME` drops all types of NAME, and a
`local_data` for a name that exists adds to its RRset rather than replacing it, hence the
remove-then-add order of `RecordDiff`.
"""
from __future__ import annotations

import ipaddress
import subprocess
import time
from pathlib import Path

from testbed.dns.records import DEFAULT_DOMAIN, DEFAULT_TTL, RecordDiff, RecordSet
from testbed.net.addressing import CLUSTER_CIDR, SERVICE_CIDR
from testbed.net.runner import NamespaceRunner

UNIX_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL


def reverse_zones(cidr: str) -> list[str]:
    """The in-addr.arpa zones that cover an IPv4 CIDR, at octet boundaries: 10.96.0.0/12 gives
    96.10.in-addr.arpa. ... 111.10.in-addr.arpa."""
    network = ipaddress.IPv4Network(cidr, strict=False)
    octets = -(-network.prefixlen // 8)  # round up to whole octets
    zones = []
    for subnet in network.subnets(new_prefix=octets * 8):
        labels = str(subnet.network_address).split(".")[:octets]
        zones.append(".".join([*reversed(labels), "in-addr.arpa."]))
    return zones


def _soa(zone: str, domain: str) -> str:
    """CoreDNS's SOA shape; the last field is the negative-caching TTL."""
    return (f"{zone} {DEFAULT_TTL} IN SOA ns.dns.{domain}. hostmaster.{domain}. "
            f"1 7200 1800 86400 {DEFAULT_TTL}")


def _quoted(value: str | Path) -> str:
    text = str(value)
    if any(c in text for c in '"\n\r'):
        raise ValueError(f"cannot quote {text!r} in an unbound configuration")
    return f'"{text}"'


def render_unbound_config(workdir: str | Path, *, listen: str = "0.0.0.0", port: int = 53,
                          domain: str = DEFAULT_DOMAIN, service_cidr: str = str(SERVICE_CIDR),
                          cluster_cidr: str = str(CLUSTER_CIDR),
                          control_socket: str | Path | None = None) -> str:
    """unbound.conf text for an authoritative-only cluster DNS server (see the module docstring)."""
    workdir = Path(workdir)
    control_socket = Path(control_socket) if control_socket else workdir / "control.sock"
    if not control_socket.is_absolute() or len(str(control_socket)) > UNIX_SOCKET_PATH_MAX:
        raise ValueError(f"control socket {control_socket} must be an absolute path of at most "
                         f"{UNIX_SOCKET_PATH_MAX} characters")
    listen_address = ipaddress.IPv4Address(listen)
    domain = domain.strip(".").lower()
    zones = [f"{domain}."] + [z for cidr in (service_cidr, cluster_cidr) for z in reverse_zones(cidr)]
    zones = list(dict.fromkeys(zones))  # the two CIDRs may share reverse zones
    if listen_address.is_unspecified:
        # Reply from the address each query came to, whatever the host's addresses are.
        listening = ["interface-automatic: yes", f"port: {port}"]
    else:
        listening = ["interface-automatic: no", f"interface: {listen_address}@{port}"]
    server = [
        "verbosity: 1",
        *listening,
        "do-ip4: yes", "do-ip6: no", "do-udp: yes", "do-tcp: yes",
        "access-control: 0.0.0.0/0 allow",  # only emulated hosts can reach it
        'username: ""', 'chroot: ""',
        f"directory: {_quoted(workdir)}",
        f"pidfile: {_quoted(workdir / 'unbound.pid')}",
        f"logfile: {_quoted(workdir / 'unbound.log')}",
        "use-syslog: no", "log-time-ascii: yes",
        "num-threads: 1", "so-reuseport: no",
        'module-config: "iterator"',
        "do-not-query-address: 0.0.0.0/0", "do-not-query-address: ::/0",
        "hide-identity: yes", "hide-version: yes",
        'local-zone: "." refuse',
    ]
    for zone in zones:
        server += [f'local-zone: "{zone}" static', f'local-data: "{_soa(zone, domain)}"']
    control = ["control-enable: yes", f"control-interface: {_quoted(control_socket)}",
               "control-use-cert: no"]
    return "\n".join([
        f"# Cluster DNS for {domain}: local data only, every other name refused, no recursion.",
        "server:", *(f"    {line}" for line in server),
        "remote-control:", *(f"    {line}" for line in control), ""])


class UnboundServer:
    """One `unbound -d` process in an emulated host's network namespace, fed by unbound-control.

    The server remembers the RecordSet it holds, so `sync()` sends only the difference."""

    def __init__(self, workdir: Path, runner: NamespaceRunner, *, listen: str = "0.0.0.0",
                 port: int = 53, domain: str = DEFAULT_DOMAIN, service_cidr: str = str(SERVICE_CIDR),
                 cluster_cidr: str = str(CLUSTER_CIDR), start_timeout: float = 10.0):
        self.workdir = Path(workdir).absolute()
        self.runner = runner
        self.config_path = self.workdir / "unbound.conf"
        self.control_socket = self.workdir / "control.sock"
        self.log_path = self.workdir / "unbound.log"
        self.start_timeout = start_timeout
        self.config_text = render_unbound_config(
            self.workdir, listen=listen, port=port, domain=domain, service_cidr=service_cidr,
            cluster_cidr=cluster_cidr, control_socket=self.control_socket)
        self._process: subprocess.Popen | None = None
        self._stderr = None
        self._records = RecordSet()

    @property
    def pid(self) -> int | None:
        """The unbound process's pid (nsenter execs it, so it is unbound itself), None when stopped."""
        return self._process.pid if self._process is not None else None

    @property
    def records(self) -> RecordSet:
        """What the server answers from now."""
        return self._records

    def start(self, records: RecordSet) -> float:
        """Launch unbound, wait until it answers control requests, load `records` in one bulk
        call. Returns the seconds the load took."""
        if self._process is not None:
            raise RuntimeError(f"unbound already running (pid {self.pid})")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text)
        self.control_socket.unlink(missing_ok=True)
        self._stderr = open(self.workdir / "unbound.stderr", "w")
        self._process = self.runner.popen(["unbound", "-d", "-c", str(self.config_path)],
                                          stdin=subprocess.DEVNULL, stdout=self._stderr,
                                          stderr=subprocess.STDOUT)
        try:
            self._wait_until_answering()
            self._records = RecordSet(ttl=records.ttl)
            return self.sync(records)
        except BaseException:
            self.stop()
            raise

    def sync(self, records: RecordSet) -> float:
        """Make the server answer from `records`, touching only the names that changed.
        Returns the seconds the control calls took (0 when nothing changed)."""
        if self._process is None:
            raise RuntimeError("unbound is not running")
        diff = RecordDiff.between(self._records, records)
        started = time.perf_counter()
        if diff.removed_names:
            self._control("local_datas_remove", input="".join(f"{n}\n" for n in sorted(diff.removed_names)))
        if diff.added:
            self._control("local_datas", input="".join(f"{line}\n" for line in diff.added_lines()))
        elapsed = time.perf_counter() - started if diff else 0.0
        self._records = records
        return elapsed

    def stop(self) -> None:
        """Terminate unbound and wait for it; safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._records = RecordSet()

    def __enter__(self) -> "UnboundServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _control(self, *args: str, input: str | None = None, check: bool = True):
        return self.runner.run(["unbound-control", "-c", str(self.config_path), *args],
                               input=input, check=check, timeout=300)

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"unbound exited {self._process.returncode}: {self._diagnostics()}")
            if self._control("status", check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"unbound did not answer within {self.start_timeout}s: {self._diagnostics()}")
            time.sleep(0.02)

    def _diagnostics(self) -> str:
        texts = []
        for path in (self.workdir / "unbound.stderr", self.log_path):
            if path.exists():
                texts.append(path.read_text()[-2000:].strip())
        return " | ".join(t for t in texts if t) or "no output"
