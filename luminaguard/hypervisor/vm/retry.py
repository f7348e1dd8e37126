"""Trying a VM operation again when it fails in a way that may pass: bounded, logged."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def tried(
    action: Callable[[], Awaitable[T]],
    attempts: int,
    passing: type[BaseException],
    what: str,
    log: logging.Logger,
) -> T:
    """``action()``, tried up to ``attempts`` times while it fails with ``passing``.

    Each failure but the last is logged on ``log`` as a warning naming ``what`` and the
    reason; the last one is raised. Other exceptions are raised at once.
    """
    attempt = 1
    while True:
        try:
            return await action()
        except passing as exc:
            if attempt >= attempts:
                raise
            log.warning("%s failed (try %d of %d), trying again: %s", what, attempt, attempts, exc)
            attempt += 1
