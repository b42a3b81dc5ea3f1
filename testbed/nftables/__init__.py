"""kube-proxy's nftables mode, in parts: ruleset.py (the desired table, pure) and planner.py (the
transaction of each sync, pure). The backend, its applier and the layout's documentation are in
testbed/backends/nftables.py."""
