"""How much slower this machine runs than the one the testbed's timeouts were written for.

Under `testbed vm` without KVM (qemu's software emulation) everything takes 50-75 times longer;
the VM runner exports TESTBED_TIME_SCALE so that waits for convergence, probes and tests stretch
accordingly instead of failing. On a normal host the scale is 1.
"""
from __future__ import annotations

import os

TIME_SCALE_ENV = "TESTBED_TIME_SCALE"


def time_scale() -> float:
    try:
        return max(1.0, float(os.environ.get(TIME_SCALE_ENV, "1")))
    except ValueError:
        return 1.0


def scaled(seconds: float) -> float:
    return seconds * time_scale()
