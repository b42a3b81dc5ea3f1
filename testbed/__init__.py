"""k8s-service-testbed: emulate and measure Kubernetes Service networking on one Linux machine."""
from .cluster import Cluster
from .errors import ManifestError, Problem, TestbedError

__all__ = ["Cluster", "ManifestError", "Problem", "TestbedError"]
__version__ = "0.1.0"
