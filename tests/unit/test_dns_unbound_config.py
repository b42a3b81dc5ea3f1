"""unbound.conf rendering (testbed.dns.unbound), without running unbound."""
from pathlib import Path

import pytest

from testbed.dns.unbound import UnboundServer, render_unbound_config, reverse_zones
from testbed.net.runner import NamespaceRunner


def server_lines(text):
    return [line.strip() for line in text.splitlines()]


def test_reverse_zones_at_octet_boundaries():
    assert reverse_zones("10.244.0.0/16") == ["244.10.in-addr.arpa."]
    assert reverse_zones("10.96.0.0/12") == [f"{n}.10.in-addr.arpa." for n in range(96, 112)]
    assert reverse_zones("192.168.5.0/24") == ["5.168.192.in-addr.arpa."]
    assert reverse_zones("172.16.0.0/23") == ["0.16.172.in-addr.arpa.", "1.16.172.in-addr.arpa."]
    assert reverse_zones("10.0.0.0/8") == ["10.in-addr.arpa."]


def test_config_is_authoritative_only_and_refuses_everything_else():
    lines = server_lines(render_unbound_config("/run/tb/dns", domain="cluster.local",
                                               service_cidr="10.96.0.0/12", cluster_cidr="10.244.0.0/16",
                                               control_socket="/run/tb/dns/ctl.sock"))
    assert 'local-zone: "." refuse' in lines
    assert 'local-zone: "cluster.local." static' in lines
    assert 'local-zone: "244.10.in-addr.arpa." static' in lines
    assert sum(1 for line in lines if line.endswith('.10.in-addr.arpa." static')) == 17
    assert ('local-data: "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. '
            '1 7200 1800 86400 5"') in lines
    # No recursion anywhere, no DNSSEC, no chroot, runs as root.
    assert 'module-config: "iterator"' in lines
    assert "do-not-query-address: 0.0.0.0/0" in lines and "do-not-query-address: ::/0" in lines
    assert not [line for line in lines if "validator" in line or "forward-zone" in line or "trust-anchor" in line]
    assert 'chroot: ""' in lines and 'username: ""' in lines
    # UDP and TCP on port 53 of every address; log and control under the work directory.
    assert "do-udp: yes" in lines and "do-tcp: yes" in lines
    assert "interface-automatic: yes" in lines and "port: 53" in lines
    assert 'logfile: "/run/tb/dns/unbound.log"' in lines
    assert 'control-interface: "/run/tb/dns/ctl.sock"' in lines
    assert "control-use-cert: no" in lines
    assert lines.index("server:") < lines.index("remote-control:")


def test_explicit_listen_address_and_port():
    lines = server_lines(render_unbound_config(Path("/tmp/x"), listen="127.0.0.1", port=5353,
                                               control_socket="/tmp/x/c.sock"))
    assert "interface: 127.0.0.1@5353" in lines
    assert "interface-automatic: no" in lines


def test_custom_domain_and_shared_reverse_zone_listed_once():
    text = render_unbound_config("/w", domain="corp.internal.", service_cidr="10.0.0.0/16",
                                 cluster_cidr="10.0.0.0/16", control_socket="/w/c")
    assert text.count('local-zone: "0.10.in-addr.arpa." static') == 1
    assert 'local-zone: "corp.internal." static' in text
    assert "hostmaster.corp.internal." in text


def test_control_socket_must_fit_a_unix_socket_path():
    with pytest.raises(ValueError):
        render_unbound_config("/w", control_socket="/" + "d" * 120)
    with pytest.raises(ValueError):
        render_unbound_config("/w", control_socket="relative.sock")


def test_server_renders_its_config_without_starting(tmp_path):
    server = UnboundServer(tmp_path, NamespaceRunner(netns_path="/run/netns/none"), listen="127.0.0.1")
    assert server.pid is None and len(server.records) == 0
    assert f'control-interface: "{tmp_path}/control.sock"' in server.config_text
    with pytest.raises(RuntimeError):
        server.sync(server.records)
    server.stop()  # stopping a server that never ran is harmless
