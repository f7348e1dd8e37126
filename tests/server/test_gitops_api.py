"""The server's reconciler in-process (fake backend): status, drift, schedules, restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from luminaguard.gitops.applied import Condition
from luminaguard.gitops.folder import folder_revision
from luminaguard.gitops.source import FolderSource
from luminaguard.policy.in_force import PolicySet
from luminaguard.server.models import GitopsStatus
from luminaguard.server.reconciling import Controller
from tests.scheduler.harness import HEAD
from tests.server import test_app
from tests.server.test_app import Api, problem

api = test_app.api  # the fixture: a server on the fakes and a token of each role

SOURCE = (
    HEAD % {"approval": "1h"}
    + """\
  schedule: "*/5 * * * *"
  steps:
    - {id: one, agent: a, run: "echo one"}
"""
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "source"
    made.mkdir()
    (made / "all.yaml").write_text(SOURCE.replace("spec:\n  steps:\n", "spec:\n", 1))
    return made


def following(api: Api, folder: Path) -> Controller:
    def made() -> Controller:
        api.server.follow(FolderSource(folder), 600, prune=False)
        assert api.server.controller is not None
        return api.server.controller

    return api.call(made)


def status(api: Api) -> GitopsStatus:
    return GitopsStatus.model_validate(api.get("/v1/gitops").json())


def test_a_pass_is_shown_with_each_object_and_the_policies_in_force(api: Api, folder: Path) -> None:
    controller = following(api, folder)
    api.call(controller.pass_once)
    shown = status(api)
    revision = folder_revision(folder)
    assert shown.source is not None and shown.source.condition == "Ready"
    assert shown.source.revision == revision == shown.policies_revision
    assert {(o.kind, o.name, o.condition) for o in shown.objects} == {
        ("Policy", "p", "Ready"), ("Agent", "a", "Ready"), ("Workload", "w", "Ready"),
    }  # fmt: skip
    # a policy put in force outside the source is a drift
    api.call(lambda: api.server.policies.swap(PolicySet.build("elsewhere", {})))
    drifted = {o.name: o for o in status(api).objects}["p"]
    assert drifted.condition == "Drifted" and "elsewhere" in drifted.reason


def test_a_due_firing_starts_once_and_no_backlog(api: Api, folder: Path) -> None:
    api.start()
    controller = following(api, folder)
    api.call(controller.pass_once)
    now = datetime(2026, 12, 1, 10, 7, tzinfo=UTC)

    def fired_at(when: datetime) -> None:
        key = ("Workload", "w")
        controller.applied.update(key, Condition.READY, "", last_fired=when.isoformat())

    api.call(fired_at, now - timedelta(minutes=17))  # the server was down over three firings
    assert api.call(controller.fire_schedules, now) == ["w-20261201T1005"]  # the latest only
    assert api.call(controller.fire_schedules, now + timedelta(minutes=1)) == []
    api.call(fired_at, now - timedelta(minutes=3))  # a firing recorded, its run started
    assert api.call(controller.fire_schedules, now) == []  # the run exists: not again
    api.settle()
    assert api.get("/v1/runs/w-20261201T1005").json()["state"] == "succeeded"


def test_a_restarted_server_puts_the_applied_policies_in_force_again(
    api: Api, folder: Path
) -> None:
    controller = following(api, folder)
    api.call(controller.pass_once)
    api.call(lambda: api.server.policies.swap(PolicySet("")))
    api.call(controller.restore)
    assert status(api).policies_revision == folder_revision(folder)


def test_reconcile_now_needs_a_source_and_an_admin(api: Api, folder: Path) -> None:
    refused = api.post("/v1/gitops/reconcile")
    assert refused.status_code == 409 and "follows no source" in problem(refused).error
    following(api, folder)
    assert api.post("/v1/gitops/reconcile", role="viewer").status_code == 403
    assert api.post("/v1/gitops/reconcile").status_code == 200
    assert status(api).source is None  # a poke: the pass runs in the controller's task
