"""Names as kubectl users see them: `myapp-5d9b8c4f7-x2k9p` (Deployment, pod-template-hash, suffix)."""
from __future__ import annotations

import json
import random

# k8s.io/apimachinery/pkg/util/rand: no vowels (no words), no confusable characters.
ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: map each byte onto the alphabet."""
    return "".join(ALPHANUMS[b % len(ALPHANUMS)] for b in text.encode())


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def pod_template_hash(template: dict, collision_count: int = 0) -> str:
    """controller.ComputeHash: FNV-32a of the pod template, SafeEncoded. The hashed bytes are the
    canonical JSON of the template (Kubernetes hashes its Go struct dump), so values differ from a real
    cluster's but have the same form and stability: same template -> same hash."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    if collision_count:
        canonical += str(collision_count)
    return safe_encode(str(fnv32a(canonical.encode())))


def random_suffix(rng: random.Random, length: int = 5) -> str:
    """The generateName suffix the API server appends."""
    return "".join(rng.choice(ALPHANUMS) for _ in range(length))
