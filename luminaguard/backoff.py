"""How long to wait before trying again: one exponential backoff, jittered, for every retry."""

from __future__ import annotations

import random


def backoff(attempt: int, base: float, cap: float) -> float:
    """The wait in seconds before retry ``attempt`` (0 for the first retry).

    ``base * 2**attempt``, at most ``cap``, cut by a random part of up to half, so that
    clients that failed together do not retry together; never more than ``cap``.
    """
    return float(min(cap, base * 2**attempt)) * random.uniform(0.5, 1.0)
