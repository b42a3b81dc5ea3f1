"""Cluster DNS: records computed purely from API objects (records.py), served by a real Unbound
process in an emulated host (unbound.py), queried from inside emulated hosts (probe.py)."""
from testbed.dns.probe import dns_query
from testbed.dns.records import Record, RecordDiff, RecordSet, cluster_records
from testbed.dns.unbound import UnboundServer, render_unbound_config

__all__ = ["Record", "RecordDiff", "RecordSet", "cluster_records", "UnboundServer", "render_unbound_config",
           "dns_query"]
