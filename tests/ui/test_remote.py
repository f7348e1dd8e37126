"""The client of ``luminaguard serve``: what it makes of what a server sends."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from luminaguard.errors import UsageError
from luminaguard.ui import run_remote
from luminaguard.ui.progress import PlainReporter
from luminaguard.ui.remote import EventStream, Remote, RemoteError, parse_event, refusal


class FakeConnection:
    def __init__(self, text: str) -> None:
        self.response = io.BytesIO(text.encode())
        self.closed = False

    def getresponse(self) -> io.BytesIO:
        return self.response

    def close(self) -> None:
        self.closed = True


def stream(text: str) -> EventStream:
    return EventStream(FakeConnection(text))  # type: ignore[arg-type]


def event_text(seq: int, kind: str, run: str, step: str | None = None) -> str:
    body = {"id": seq, "event": kind, "run_id": run, "step_id": step, "state": None}
    return f"id: {seq}\nevent: {kind}\ndata: {json.dumps(body)}\n\n"


def test_events_are_parsed_and_junk_is_skipped() -> None:
    text = (
        ": luminaguard events\n\n"
        + event_text(4, "step.started", "r", "a")
        + "id: 5\ndata: not json\n\n"
        + "id: x\ndata: {}\n\n"
        + 'id: 6\r\ndata: {"event": "run.halted", "run_id": "r"}\r\n\r\n'
    )
    opened = stream(text)
    opened.wait_open()
    events = list(opened)
    assert [(e.id, e.kind, e.run_id, e.step_id) for e in events] == [
        (4, "step.started", "r", "a"),
        (6, "run.halted", "r", None),
    ]


def test_a_stream_closed_before_its_opening_comment_is_an_error() -> None:
    with pytest.raises(RemoteError, match="closed the event stream"):
        stream("").wait_open()


def test_parse_event_refuses_what_is_not_an_event() -> None:
    assert parse_event("1", "[1]") is None
    assert parse_event("1", '{"event": 3, "run_id": "r"}') is None
    assert parse_event("9" * 19, '{"event": "run.halted", "run_id": "r"}') is None


def test_refusal_carries_the_servers_message_and_fields() -> None:
    body = {"error": "the request body is not valid", "fields": [{"field": "plan", "message": "x"}]}
    error = refusal(422, json.dumps(body).encode())
    assert error.status == 422
    assert str(error) == "the server refused (HTTP 422): the request body is not valid; plan: x"
    assert str(refusal(502, b"<html>")) == "the server answered HTTP 502"


@pytest.mark.parametrize("url", ["ftp://host", "http://", "localhost:8420", "http://h:port"])
def test_server_url_must_be_http(url: str) -> None:
    with pytest.raises(UsageError):
        Remote(url, None)


def test_server_url_keeps_its_path_prefix() -> None:
    remote = Remote("https://example.org:9443/lg/", "t")
    assert (remote.https, remote.host, remote.port, remote.prefix) == (
        True,
        "example.org",
        9443,
        "/lg",
    )


class FakeRemote:
    """Answers GET of the run with the states given, one per call; streams given in turn."""

    url = "http://server"

    def __init__(self, states: list[str], streams: list[str], approvals: Any = None) -> None:
        self.states = states
        self.streams = streams
        self.approvals = approvals or []
        self.afters: list[int | None] = []

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        if path == "/v1/approvals":
            return {"approvals": self.approvals}
        return {"id": "r", "state": self.states.pop(0), "steps": []}

    def events(self, after: int | None = None) -> EventStream:
        self.afters.append(after)
        return stream(self.streams.pop(0))


def test_follow_reconnects_after_the_last_event_seen() -> None:
    remote = FakeRemote(
        ["running", "halted"],
        [event_text(8, "step.started", "r", "b") + event_text(9, "run.halted", "r")],
    )
    out = io.StringIO()
    first = stream(event_text(3, "step.started", "r", "a") + event_text(5, "step.x", "other", "z"))
    view = run_remote.follow(remote, "r", first, PlainReporter(out))  # type: ignore[arg-type]
    assert view["state"] == "halted"
    assert remote.afters == [5]
    shown = [line.split()[1:] for line in out.getvalue().splitlines()]
    assert shown == [["a", "running"], ["b", "running"]]


def test_a_run_that_ended_while_no_stream_was_open_is_seen() -> None:
    remote = FakeRemote(["succeeded"], [""])
    view = run_remote.follow(remote, "r", stream(""), PlainReporter(io.StringIO()))  # type: ignore[arg-type]
    assert view["state"] == "succeeded"
    assert remote.afters == [None]


def test_a_run_driven_again_after_its_end_event_is_followed_on() -> None:
    remote = FakeRemote(["running", "succeeded"], [])
    events = event_text(3, "run.halted", "r") + event_text(4, "step.started", "r", "b")
    events += event_text(5, "run.succeeded", "r")
    out = io.StringIO()
    view = run_remote.follow(remote, "r", stream(events), PlainReporter(out))  # type: ignore[arg-type]
    assert view["state"] == "succeeded" and remote.afters == []
    assert out.getvalue().split()[1:] == ["b", "running"]


def test_reconnect_gives_up_on_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing:
        calls = 0

        def events(self, after: int | None = None) -> EventStream:
            self.calls += 1
            raise RemoteError("the server refused (HTTP 401): revoked", 401)

    refusing = Refusing()
    with pytest.raises(RemoteError, match=r"HTTP 401.*stopped following the run"):
        run_remote.reconnect(refusing, 3)  # type: ignore[arg-type]
    assert refusing.calls == 1


def test_reconnect_retries_an_unreachable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_remote.time, "sleep", lambda s: None)

    class Flaky:
        calls = 0

        def events(self, after: int | None = None) -> EventStream:
            self.calls += 1
            if self.calls < 3:
                raise RemoteError("cannot reach the server")
            return stream("")

    flaky = Flaky()
    run_remote.reconnect(flaky, None)  # type: ignore[arg-type]
    assert flaky.calls == 3


def test_what_the_server_sends_is_shown_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    card = {"action": "$ rm -rf /\x1b[2J\x1b[Happroved", "reason": "\u202eevil"}
    remote = FakeRemote([], [], [{"run_id": "r", "step_id": "s\rx", "card": card}])
    view = {
        "id": "r",
        "state": "halted",
        "steps": [{"step_id": "s", "state": "failed", "error": "boom\x1b]0;title\x07"}],
    }
    assert run_remote.report(remote, view) == 3  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\r" not in out
    assert "\\x1b[2J" in out and "\\u202eevil" in out and "s\\rx" in out
    assert "boom\\x1b]0;title\\x07" in out
