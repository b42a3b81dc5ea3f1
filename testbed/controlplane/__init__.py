"""The in-memory control plane: object store, allocators and controllers (pure Python, no root)."""
from .config import ClusterConfig, NodeSpec
from .core import ControlPlane, NotFound

__all__ = ["ClusterConfig", "ControlPlane", "NodeSpec", "NotFound"]
