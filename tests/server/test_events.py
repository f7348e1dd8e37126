"""The event hub: a subscriber that falls behind, or reconnects, misses no event.

Events are audit records; a client reconnecting with the id of the last event it got
(``Last-Event-ID``) must be sent every later one, in order, however many there are and
however far behind it fell.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from luminaguard.scheduler.store import RunStore
from luminaguard.server import events
from luminaguard.server.events import Event, EventHub


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "state")


def record(store: RunStore, hub: EventHub, count: int) -> None:
    """Record ``count`` run events in one transaction (for speed), then poll as a commit does."""
    store._write([], *[("r", None, "run.noted", {})] * count)
    hub.poll()


def every_id(store: RunStore) -> list[int]:
    return [event.id for event in EventHub(store).read(0, 1_000_000)]


async def collect(
    subscription: AsyncIterator[Event | None], count: int, got: list[int]
) -> list[int]:
    """Append the ids the subscription yields to ``got`` until it holds ``count`` (or 10 s)."""

    async def read() -> None:
        async for event in subscription:
            assert event is not None  # no keep-alive asked for
            got.append(event.id)
            if len(got) >= count:
                return

    with contextlib.suppress(TimeoutError):  # the test then says what is missing
        await asyncio.wait_for(read(), 10)
    return got


def test_a_subscriber_dropped_for_being_slow_misses_nothing_once_it_reconnects(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "BACKLOG", 3)

    async def scenario() -> list[int]:
        hub = EventHub(store)
        slow = hub.subscribe()
        waiting = asyncio.ensure_future(anext(slow))  # subscribed, then it reads nothing
        await asyncio.sleep(0)
        record(store, hub, 6)  # more than its backlog: it is dropped
        got = [(await waiting).id]
        got += [event.id async for event in slow]  # what it still gets, up to its end
        assert got == [1, 2, 3]  # its backlog: the oldest it missed
        # it reconnects with the id of the last event it got
        return await collect(hub.subscribe(after=got[-1]), 6, got)

    assert asyncio.run(scenario()) == every_id(store)


def test_a_reconnecting_subscriber_gets_every_event_after_its_last(store: RunStore) -> None:
    many = events.REPLAY + 5  # more than one read of the log

    async def scenario() -> list[int]:
        hub = EventHub(store)
        record(store, hub, many)
        got: list[int] = []
        task = asyncio.ensure_future(collect(hub.subscribe(after=1), many, got))
        deadline = time.monotonic() + 10
        while len(got) < many - 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the replay
        record(store, hub, 1)  # then a live event
        return await task

    assert asyncio.run(scenario()) == every_id(store)[1:]


def test_an_idle_subscription_yields_keep_alives_then_events(store: RunStore) -> None:
    async def scenario() -> list[Event | None]:
        hub = EventHub(store)
        seen: list[Event | None] = []
        subscription = hub.subscribe(idle=0.05)
        seen.append(await anext(subscription))  # nothing happened: a keep-alive
        record(store, hub, 1)
        seen.append(await anext(subscription))
        await subscription.aclose()
        return seen

    idle, event = asyncio.run(scenario())
    assert idle is None
    assert event is not None and event.kind == "run.noted"


def test_a_closed_hub_ends_every_subscription_and_refuses_new_ones(store: RunStore) -> None:
    async def scenario() -> tuple[list[Event | None], list[Event | None]]:
        hub = EventHub(store)
        record(store, hub, 2)  # a new subscription after=0 would replay these
        before = hub.subscribe()
        waiting = asyncio.ensure_future(anext(before, "ended"))
        while not hub.subscribers:  # it waits for an event
            await asyncio.sleep(0)
        hub.close()

        async def drain() -> list[Event | None]:
            return [event async for event in hub.subscribe(after=0)]

        after = await asyncio.wait_for(drain(), 5)  # ends at once, or the test fails
        return [await waiting], after

    ended, after = asyncio.run(scenario())
    assert ended == ["ended"]  # the waiting subscription ended
    assert after == []  # a new one ends at once, replaying nothing
