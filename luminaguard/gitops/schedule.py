"""Scheduled workloads: when a cron ``schedule`` is due, and the run id of each firing.

Times are UTC. A firing is named by its time (``NAME-YYYYmmddTHHMM``), so a server that
restarts, or two passes that look at once, start each firing once: the second finds
the run. A server that was down over several firings starts only the latest one (no
backlog of missed runs), as cron does.
"""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter


def last_firing(expression: str, now: datetime) -> datetime:
    """The latest time at or before ``now`` the schedule fires (UTC)."""
    at = now.astimezone(UTC).replace(second=0, microsecond=0)
    if croniter.match(expression, at):
        return at
    previous: datetime = croniter(expression, at).get_prev(datetime)
    return previous


def next_firing(expression: str, now: datetime) -> datetime:
    """The first time after ``now`` the schedule fires (UTC)."""
    upcoming: datetime = croniter(expression, now.astimezone(UTC)).get_next(datetime)
    return upcoming


def firing_id(workload: str, at: datetime) -> str:
    """The run id of the workload's firing at ``at``."""
    return f"{workload}-{at.astimezone(UTC):%Y%m%dT%H%M}"


def due(expression: str, since: datetime, now: datetime) -> datetime | None:
    """The firing to start now, if any: the latest at or before ``now``, after ``since``.

    ``since``: when the schedule was applied, or last fired.
    """
    at = last_firing(expression, now)
    return at if at > since else None
