"""The one backoff every retry waits by: exponential, capped, jittered downwards."""

from __future__ import annotations

import pytest

from luminaguard import backoff as module
from luminaguard.backoff import backoff
from luminaguard.transport.mcp_http import RetryPolicy


@pytest.mark.parametrize("jitter", [0.5, 1.0])
def test_the_wait_doubles_per_attempt_up_to_the_cap(
    jitter: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module.random, "uniform", lambda low, high: jitter)
    waits = [backoff(attempt, base=0.25, cap=30.0) for attempt in range(10)]
    assert waits[:4] == [0.25 * jitter, 0.5 * jitter, 1.0 * jitter, 2.0 * jitter]
    assert waits[-1] == 30.0 * jitter  # 0.25 * 2**9 = 128 is capped


def test_the_jitter_only_shortens_the_wait() -> None:
    waits = [backoff(3, base=0.1, cap=2.0) for _ in range(200)]
    assert all(0.4 <= wait <= 0.8 for wait in waits)
    assert len(set(waits)) > 1


def test_http_retries_never_wait_past_their_maximum() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=2.0)
    assert all(policy.delay(attempt) <= 2.0 for attempt in range(12) for _ in range(20))
