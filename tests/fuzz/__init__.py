"""Property-based fuzzing of the loader, compiler, policy engine, shell parser and API.

Bounded for the test command; set ``LUMINAGUARD_FUZZ_SCALE`` (a multiplier of every
test's examples, e.g. 100) for a longer run.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("LUMINAGUARD_FUZZ_SCALE", "1")))


def examples(count: int) -> int:
    """``count`` examples, times ``LUMINAGUARD_FUZZ_SCALE``."""
    return count * SCALE


def fuzz(count: int) -> settings:
    """Settings of a fuzz test: ``examples(count)``, no deadline (the tests time themselves)."""
    return settings(
        max_examples=examples(count),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
