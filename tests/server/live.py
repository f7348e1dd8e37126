"""A real ``luminaguard serve`` process on loopback, and a small HTTP client for it.

``LiveServer`` starts the CLI in a child process (this tree's code: the child's
``PYTHONPATH`` and working folder are this repository) on a free loopback port, with
its own state folder and workspace, creates one token per name of ``TOKENS`` with the
``token create`` command, and waits (with a deadline) until ``/readyz`` says ready.
``stop`` sends SIGTERM and checks the exit code; ``kill`` sends SIGKILL; ``start`` again
serves the same state folder. The client is the standard library's ``http.client``:
each request opens its own connection, so threads may call it at once.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luminaguard.ui.cli import main
from tests.conftest import ROOT

#: The tokens every server gets: name -> role. alice is the policies' approver, bob is not.
TOKENS = {
    "viewer": "viewer",
    "submitter": "submitter",
    "alice": "approver",
    "bob": "approver",
    "admin": "admin",
}
#: How long a machine under load may take to start the server, or to get a run somewhere.
PATIENCE = 60.0


def child_environment() -> dict[str, str]:
    """The environment of child processes: this tree's code first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("LUMINAGUARD_STATE", None)
    env.pop("LUMINAGUARD_AUDIT_KEY", None)
    return env


@functools.cache
def child_code() -> Path:
    """Where a child started as the server is started imports luminaguard from."""
    argv = [sys.executable, "-c", "import luminaguard; print(luminaguard.__file__)"]
    out = subprocess.run(
        argv, cwd=ROOT, env=child_environment(), capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip()).resolve()


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli_quietly(*args: str) -> tuple[int, str]:
    """Run ``luminaguard ARGS`` in this process; its exit code and standard output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue() + err.getvalue()


@dataclass(frozen=True)
class Reply:
    """One HTTP response."""

    status: int
    headers: dict[str, str]  # names in lower case
    text: str

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.text)

    @property
    def fields(self) -> list[str]:
        """The fields an error body names."""
        return [problem["field"] for problem in self.json().get("fields", [])]


def wait_until(what: str, check: Callable[[], Any], limit: float = PATIENCE) -> Any:
    """``check()``'s first true value, asked every 50 ms until ``limit`` seconds passed."""
    deadline = time.monotonic() + limit
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {limit:.0f}s")
        time.sleep(0.05)


class LiveServer:
    """One ``luminaguard serve`` child serving ``state``, with a token per ``TOKENS`` name."""

    def __init__(
        self, state: Path, workspace: Path, *, grace: float = 5.0, extra: tuple[str, ...] = ()
    ) -> None:
        self.state = state
        self.extra = extra  # more arguments of `serve`
        self.workspace = workspace
        self.grace = grace
        self.tokens: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = state.parent / f"{state.name}-serve.log"
        workspace.mkdir(parents=True, exist_ok=True)
        assert child_code().is_relative_to(ROOT), f"the server would run {child_code()}"

    # --- life ---------------------------------------------------------------------------
    def make_tokens(self) -> None:
        """One token per name of ``TOKENS``, made with ``luminaguard token create``."""
        for name, role in TOKENS.items():
            code, out = cli_quietly(
                "token", "create", name, "--role", role, "--state", str(self.state)
            )
            assert code == 0, out
            self.tokens[name] = out.splitlines()[0].strip()

    def start(self) -> None:
        """Start serving the state folder; return once ready (fail with the server's log)."""
        assert self.process is None or self.process.poll() is not None, "already serving"
        if not self.tokens:
            self.make_tokens()
        self.port = free_port()
        argv = [
            sys.executable, "-m", "luminaguard", "serve",
            "--state", str(self.state), "--workspace", str(self.workspace),
            "--port", str(self.port), "--grace", str(self.grace), *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv, cwd=ROOT, env=child_environment(), stdout=log, stderr=log
            )
        wait_until(f"the server on port {self.port} to be ready", self._ready)
        # the port answered with this state's tokens: it is this server, not another's
        assert self.get("/v1/runs", who="viewer").status == 200, self.output()

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"the server exited with {self.process.returncode}: {self.output()}"
            )
        try:
            return self.request("GET", "/readyz", who=None, timeout=5).status == 200
        except OSError:
            return False

    def stop(self) -> int:
        """SIGTERM; the exit code (waited for with a deadline)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=PATIENCE + self.grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the server ignored SIGTERM: {self.output()}") from None

    def kill(self) -> None:
        """SIGKILL, as a crash would (the caller checks its sandboxes are gone)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        """What the server logged (to explain a failure)."""
        return self.log.read_text(errors="replace")[-6000:]

    # --- HTTP ---------------------------------------------------------------------------
    def connection(self, timeout: float = PATIENCE) -> http.client.HTTPConnection:
        """A new connection to the server."""
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def headers(self, who: str | None) -> dict[str, str]:
        """The Authorization header of ``who``'s token (none for None)."""
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        who: str | None = "admin",
        headers: dict[str, str] | None = None,
        timeout: float = PATIENCE,
    ) -> Reply:
        """Send one request (``body`` as JSON unless bytes) as ``who``; the response."""
        sent = {**self.headers(who), **(headers or {})}
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        connection = self.connection(timeout)
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            text = response.read().decode()
            found = {name.lower(): value for name, value in response.getheaders()}
            return Reply(response.status, found, text)
        finally:
            connection.close()

    def get(self, path: str, *, who: str | None = "viewer") -> Reply:
        return self.request("GET", path, who=who)

    def post(self, path: str, body: Any = None, *, who: str | None = "admin") -> Reply:
        return self.request("POST", path, {} if body is None else body, who=who)

    # --- runs ---------------------------------------------------------------------------
    def submit(self, path: str, run_id: str, **more: Any) -> dict[str, Any]:
        """Submit the workload at ``path`` (in the workspace) as run ``run_id``."""
        reply = self.post("/v1/runs", {"paths": [path], "run_id": run_id, **more}, who="submitter")
        assert reply.status == 201, reply
        return dict(reply.json())

    def run(self, run_id: str) -> dict[str, Any]:
        """The run with its steps (as the API shows it)."""
        reply = self.get(f"/v1/runs/{run_id}")
        assert reply.status == 200, reply
        return dict(reply.json())

    def steps(self, run_id: str) -> dict[str, str]:
        """Each step's state."""
        return {step["step_id"]: step["state"] for step in self.run(run_id)["steps"]}

    def wait_run(self, run_id: str, *states: str, limit: float = PATIENCE) -> dict[str, Any]:
        """The run once it is in one of ``states`` (fail after ``limit`` seconds)."""

        def reached() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if run["state"] in states else None

        try:
            return dict(wait_until(f"run {run_id} to be {'/'.join(states)}", reached, limit))
        except AssertionError as exc:
            raise AssertionError(f"{exc}: it is {self.run(run_id)}\n{self.output()}") from None

    def wait_steps(self, run_id: str, wanted: dict[str, str], limit: float = PATIENCE) -> None:
        """Return once each step of ``wanted`` is in the state given."""

        def reached() -> bool:
            steps = self.steps(run_id)
            return all(steps.get(step) == state for step, state in wanted.items())

        try:
            wait_until(f"steps of {run_id} to be {wanted}", reached, limit)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: they are {self.steps(run_id)}") from None

    def request_of(self, run_id: str, step_id: str) -> dict[str, Any]:
        """The step's approval request (its pending one, or its latest)."""
        reply = self.get(f"/v1/approvals/{run_id}/{step_id}")
        assert reply.status == 200, reply
        return dict(reply.json())

    def decide(
        self, run_id: str, step_id: str, verdict: str = "approve", *, who: str = "alice"
    ) -> Reply:
        """Approve (or deny) the step's pending request, bound to its hash, as ``who``."""
        digest = self.request_of(run_id, step_id)["action_hash"]
        path = f"/v1/approvals/{run_id}/{step_id}/{verdict}"
        return self.post(path, {"action_hash": digest, "reason": "test"}, who=who)

    def audit(self, run_id: str) -> list[dict[str, Any]]:
        """The run's audit records."""
        reply = self.get(f"/v1/runs/{run_id}/audit")
        assert reply.status == 200, reply
        return list(reply.json()["records"])

    def work(self, run_id: str, agent: str = "a") -> Path:
        """The agent's /work folder of the run."""
        return self.state / "runs" / run_id / "agents" / agent / "work"

    def lines(self, run_id: str, *names: str) -> dict[str, int]:
        """How many lines each ``NAME.log`` of the agent's /work holds (0: none)."""
        work = self.work(run_id)
        counted = {}
        for name in names:
            log = work / f"{name}.log"
            counted[name] = len(log.read_text().splitlines()) if log.exists() else 0
        return counted

    # --- events -------------------------------------------------------------------------
    @contextlib.contextmanager
    def events(self, *, after: int | None = None, header: bool = True) -> Iterator[EventStream]:
        """The event stream from after event ``after`` (``Last-Event-ID``, or ``?after=``)."""
        path, sent = "/v1/events", self.headers("viewer")
        if after is not None and header:
            sent["Last-Event-ID"] = str(after)
        elif after is not None:
            path += f"?after={after}"
        connection = self.connection()
        connection.request("GET", path, headers=sent)
        response = connection.getresponse()
        assert response.status == 200, response.read()
        assert response.getheader("content-type", "").startswith("text/event-stream")
        stream = EventStream(response)
        try:
            yield stream
        finally:
            stream.close(connection)


class EventStream:
    """Server-Sent Events read by a thread; ``wait_for`` takes them with a deadline."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.response = response
        self.seen: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        frame: dict[str, str] = {}
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\r\n")
                if line:
                    name, _, value = line.partition(":")
                    if name:  # a line starting with ':' is a comment
                        frame[name] = value.removeprefix(" ")
                    continue
                if "data" in frame:
                    event = json.loads(frame["data"])
                    event["_id"], event["_kind"] = frame.get("id"), frame.get("event")
                    self._queue.put(event)
                frame = {}
        except (OSError, ValueError, http.client.HTTPException):
            pass  # closed under the reader
        finally:
            self._queue.put(None)

    def wait_for(
        self, what: str, match: Callable[[dict[str, Any]], bool], limit: float = PATIENCE
    ) -> dict[str, Any]:
        """The first event (from now) that ``match``es, within ``limit`` seconds."""
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            try:
                event = self._queue.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(f"no event {what} within {limit:.0f}s") from None
            if event is None:
                raise AssertionError(f"the stream ended before an event {what}")
            self.seen.append(event)
            if match(event):
                return event

    def close(self, connection: http.client.HTTPConnection) -> None:
        """End the stream and its reader."""
        if connection.sock is not None:  # the reader sees the end of the stream
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=PATIENCE)
        connection.close()  # once the reader is done with it (http.client is not thread-safe)


@contextlib.contextmanager
def serving(state: Path, workspace: Path) -> Iterator[LiveServer]:
    """A started server; at the end SIGTERM, which it must obey with exit code 0."""
    server = LiveServer(state, workspace)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            code = server.stop()
            assert code == 0, f"the server exited with {code} on SIGTERM: {server.output()}"
