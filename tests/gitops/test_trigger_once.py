"""A triggered workload starts once per plan change, whatever stops a pass (review findings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from luminaguard.gitops.applied import AppliedState
from luminaguard.gitops.reconcile import Reconciler
from luminaguard.gitops.source import FolderSource
from luminaguard.policy.in_force import PoliciesInForce, PolicySet
from luminaguard.scheduler.store import RunStore
from tests.scheduler.harness import HEAD

DOCS = (
    HEAD % {"approval": "1h"}
    + """\
  trigger: {on: change}
  steps:
    - {id: one, agent: a, run: "echo TEXT"}
"""
)


class Crash(BaseException):
    """The process dies here (nothing after it runs)."""


class Starting:
    """Records a run in the store as the engine does; can die before or after it."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.die: str | None = None  # "before" or "after" the run is recorded
        self.in_force = PoliciesInForce()

    def start(self, plan: Any, run_id: str, why: str) -> None:
        if self.die == "before":
            raise Crash
        self.store.create_run(run_id, plan, "fake", {"by": "reconciler"})
        if self.die == "after":
            raise Crash

    def apply_policies(self, revision: str, policies: dict[str, dict[str, Any]]) -> None:
        self.in_force.swap(PolicySet.build(revision, policies))

    def apply_pool(self, name: str, spec: dict[str, Any] | None) -> None:
        pass

    def build_image(self, name: str, recipe: Path) -> None:
        pass


def setup(tmp_path: Path, text: str = "A") -> tuple[Path, RunStore, Starting, Reconciler]:
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    write(source, text)
    store = RunStore(tmp_path / "state")
    runtime = Starting(store)
    return source, store, runtime, Reconciler(FolderSource(source), AppliedState(store), runtime)


def write(source: Path, text: str) -> None:
    (source / "all.yaml").write_text(
        DOCS.replace("TEXT", text).replace("spec:\n  steps:\n", "spec:\n", 1)
    )


def runs(store: RunStore) -> dict[str, str]:
    return {r.id: r.plan.steps[0].action.command or "" for r in store.runs()}


def test_a_pass_that_died_after_the_start_does_not_start_it_again(tmp_path: Path) -> None:
    _, store, runtime, reconciler = setup(tmp_path)
    runtime.die = "after"
    with pytest.raises(Crash):
        reconciler.reconcile()
    runtime.die = None
    assert reconciler.reconcile().started == {}  # the run of this plan exists: adopted
    assert runs(store) == {"w-1": "echo A"}


def test_a_pass_that_died_before_the_start_starts_it_once(tmp_path: Path) -> None:
    _, store, runtime, reconciler = setup(tmp_path)
    runtime.die = "before"
    with pytest.raises(Crash):
        reconciler.reconcile()
    runtime.die = None
    assert reconciler.reconcile().started == {"w": "w-1"}
    assert reconciler.reconcile().started == {}
    assert runs(store) == {"w-1": "echo A"}


def test_a_plan_changed_while_the_reconciler_was_down_still_runs(tmp_path: Path) -> None:
    source, store, runtime, reconciler = setup(tmp_path)
    runtime.die = "after"
    with pytest.raises(Crash):
        reconciler.reconcile()
    runtime.die = None
    write(source, "B")
    assert reconciler.reconcile().started == {"w": "w-2"}
    assert runs(store) == {"w-1": "echo A", "w-2": "echo B"}


def test_a_workload_pruned_and_added_again_runs(tmp_path: Path) -> None:
    source, store, _, reconciler = setup(tmp_path)
    reconciler.reconcile()
    (source / "all.yaml").write_text(
        DOCS.split("---\napiVersion: luminaguard.dev/v1\nkind: Workload")[0]
    )
    reconciler.prune = True
    reconciler.reconcile()
    write(source, "C")
    assert reconciler.reconcile().started == {"w": "w-2"}  # w-1 is the old run
    assert runs(store) == {"w-1": "echo A", "w-2": "echo C"}


def test_a_policy_removed_without_prune_stays_in_force(tmp_path: Path) -> None:
    source, _, runtime, reconciler = setup(tmp_path)
    q = "apiVersion: luminaguard.dev/v1\nkind: Policy\nmetadata: {name: q}\nspec: {rules: []}\n"
    (source / "q.yaml").write_text(q)
    reconciler.reconcile()
    assert set(runtime.in_force.current().engines) == {"p", "q"}
    (source / "q.yaml").unlink()
    outcome = reconciler.reconcile()
    assert outcome.kept == ["Policy/q"]
    assert set(runtime.in_force.current().engines) == {"p", "q"}
    reconciler.prune = True
    reconciler.reconcile()
    assert set(runtime.in_force.current().engines) == {"p"}
