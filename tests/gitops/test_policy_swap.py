"""Policies changing through git while decisions are made: never a mix of two revisions."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

from luminaguard.gitops.applied import AppliedState
from luminaguard.gitops.reconcile import Reconciler
from luminaguard.gitops.source import source_for
from luminaguard.policy.action import Action
from luminaguard.policy.in_force import PoliciesInForce, PolicySet
from luminaguard.scheduler.store import RunStore
from tests.gitops.conftest import Repo

PROGRAMS = ["ls", "cat", "echo", "grep", "head", "tail", "wc", "sort"]
REVISIONS = 10


def policy(tag: int) -> str:
    """Revision ``tag``: one rule per program, each naming the revision; risks alternate."""
    rules = "\n".join(
        f"    - {{id: r{tag}-{program}, match: {{program: [{program}]}},"
        f" risk: {'green' if (tag + i) % 2 else 'red'}, reason: revision {tag}}}"
        for i, program in enumerate(PROGRAMS)
    )
    return (
        "apiVersion: luminaguard.dev/v1\nkind: Policy\nmetadata: {name: p}\n"
        f"spec:\n  default: red\n  rules:\n{rules}\n"
    )


class Swapping:
    """A runtime that only swaps the policies in force (the part under test)."""

    def __init__(self, in_force: PoliciesInForce) -> None:
        self.in_force = in_force

    def apply_policies(self, revision: str, policies: dict[str, dict[str, Any]]) -> None:
        self.in_force.swap(PolicySet.build(revision, policies))

    def apply_pool(self, name: str, spec: dict[str, Any] | None) -> None:
        raise AssertionError("no pools here")

    def build_image(self, name: str, recipe: Path) -> None:
        raise AssertionError("no images here")

    def start(self, plan: Any, run_id: str, why: str) -> None:
        raise AssertionError("no workloads here")


def check(seen: list[tuple[str, str | None, str, str]], tags: dict[str, int]) -> None:
    """Each decision is its reported revision's: that revision's rule, risk and source."""
    for revision, rule, risk, source in seen:
        tag = tags[revision]
        program = str(rule).removeprefix(f"r{tag}-")
        assert rule == f"r{tag}-{program}", (revision, rule)
        assert source == f"p@{revision}"
        assert risk == ("green" if (tag + PROGRAMS.index(program)) % 2 else "red")


def test_decisions_during_swaps_through_git_come_from_one_revision_each(
    git: str, tmp_path: Path
) -> None:
    origin = Repo(git, tmp_path / "origin")
    origin.commit("r0", **{"p.yaml": policy(0)})
    in_force = PoliciesInForce()
    tags: dict[str, int] = {}  # revision -> tag
    done = threading.Event()
    seen: list[tuple[str, str | None, str, str]] = []
    problems: list[BaseException] = []

    def reconcile() -> None:
        store = RunStore(tmp_path / "state")
        try:
            source = source_for(f"file://{origin.path}", tmp_path / "cache")
            reconciler = Reconciler(source, AppliedState(store), Swapping(in_force))
            for tag in range(REVISIONS):
                if tag:
                    origin.commit(f"r{tag}", **{"p.yaml": policy(tag)})
                tags[origin.run("rev-parse", "HEAD")] = tag
                outcome = reconciler.reconcile()
                assert outcome.state == "Ready", outcome.reason
        except BaseException as exc:
            problems.append(exc)
        finally:
            done.set()
            store.close()

    def decide(program: str) -> None:
        action = Action(kind="run", command=f"{program} x")
        while not done.wait(0.0005):  # decide at a steady rate, leaving the GIL to the swaps
            if in_force.current().revision:
                decision, revision = in_force.decide("p", action)
                seen.append((revision, decision.rule, decision.risk, str(decision.source)))

    threads = [threading.Thread(target=decide, args=(p,)) for p in PROGRAMS[:4]]
    for thread in threads:
        thread.start()
    reconcile()
    for thread in threads:
        thread.join()
    assert not problems, problems
    assert in_force.current().revision == origin.run("rev-parse", "HEAD")
    check(seen, tags)
    per_revision = Counter(tags[revision] for revision, *_ in seen)
    assert len(per_revision) >= REVISIONS // 2, per_revision  # decisions spanned the swaps
    assert len(seen) >= 100, len(seen)
