"""``luminaguard serve --source``: a saved file, or a commit, is applied by a real server."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gitops import conftest as gitops
from tests.gitops.conftest import Repo
from tests.integration.test_reconcile_git import AGENTS as AGENT
from tests.integration.test_reconcile_git import POLICY, pool, workload
from tests.server.live import LiveServer, wait_until

git = gitops.git  # the fixture: the git executable, or a skip with the reason
pytestmark = pytest.mark.usefixtures("sandbox")


def status(server: LiveServer) -> dict[str, Any]:
    reply = server.get("/v1/gitops")
    assert reply.status == 200, reply
    found: dict[str, Any] = reply.json()
    return found


def applied(server: LiveServer, kind: str, name: str) -> dict[str, Any] | None:
    for item in status(server)["objects"]:
        if (item["kind"], item["name"]) == (kind, name):
            return dict(item)
    return None


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "source"
    made.mkdir()
    (made / "policy.yaml").write_text(POLICY)
    (made / "agent.yaml").write_text(AGENT)
    (made / "pool.yaml").write_text(pool(2))
    (made / "workload.yaml").write_text(workload("hello"))
    return made


@contextlib.contextmanager
def follow(tmp_path: Path, *extra: str) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "state", tmp_path / "workspace", extra=extra)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            assert server.stop() == 0, server.output()


@pytest.fixture
def watching(tmp_path: Path, folder: Path) -> Iterator[LiveServer]:
    with follow(tmp_path, "--source", str(folder), "--interval", "600") as server:
        yield server


def revision(server: LiveServer) -> str | None:
    source = status(server)["source"]
    return None if source is None else source["revision"]


def test_a_saved_file_is_applied_and_its_triggered_workload_runs(
    watching: LiveServer, folder: Path
) -> None:
    first = wait_until("the first pass", lambda: revision(watching))
    wait_until("the first run", lambda: watching.get("/v1/runs/w-1").status == 200)
    (folder / "workload.yaml").write_text(workload("again"))
    second = wait_until("the save applied", lambda: (r := revision(watching)) != first and r)
    assert applied(watching, "Workload", "w")["revision"] == second  # type: ignore[index]
    run = wait_until(
        "the second run to end",
        lambda: (
            (r := watching.get("/v1/runs/w-2")).status == 200 and r.json()["state"] == "succeeded"
        ),
    )
    assert run
    (folder / "policy.yaml").write_text(POLICY.replace("risk: green,", "risk: green"))
    stalled = wait_until(
        "the bad save reported",
        lambda: (s := status(watching)["source"])["condition"] == "Stalled" and s,
    )
    assert stalled["revision"] == second and "policy.yaml:6:" in stalled["reason"]
    assert watching.get("/v1/runs/w-3").status == 404  # nothing applied, nothing ran


def test_a_commit_is_applied_within_the_poll_interval(git: str, tmp_path: Path) -> None:
    origin = Repo(git, tmp_path / "origin")
    first = origin.commit("first", **{"p.yaml": POLICY, "a.yaml": AGENT, "pool.yaml": pool(1)})
    with follow(tmp_path, "--source", f"file://{origin.path}", "--interval", "1") as server:
        wait_until("the first commit", lambda: revision(server) == first)
        second = origin.commit("bigger", **{"pool.yaml": pool(4)})
        started = time.monotonic()
        wait_until("the second commit", lambda: revision(server) == second)
        assert time.monotonic() - started < 10
        pool_status = applied(server, "Pool", "warm")
        assert pool_status is not None and pool_status["revision"] == second
        assert json.loads(server.get("/v1/gitops").text)["policies_revision"] == first
