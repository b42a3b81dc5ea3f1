"""The emulation's kubelet: runs pods as Mininet hosts with real processes, probes them, reports status."""
