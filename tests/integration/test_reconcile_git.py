"""``luminaguard reconcile`` and ``diff`` following a real git repository, commit by commit.

Triggered workloads run for real in the namespace sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from luminaguard.gitops.applied import AppliedState, Condition
from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner
from tests.gitops import conftest as gitops
from tests.gitops.conftest import Repo

git = gitops.git  # the fixture: the git executable, or a skip with the reason

pytestmark = pytest.mark.usefixtures("sandbox")

POLICY = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - {id: echo, match: {program: [echo]}, risk: green, reason: harmless}
"""
AGENTS = """\
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec: {policy: p}
---
apiVersion: luminaguard.dev/v1
kind: Image
metadata: {name: img}
spec: {rootfs: base}
"""
POOL = """\
apiVersion: luminaguard.dev/v1
kind: Pool
metadata: {name: warm}
spec: {image: img, warm: WARM}
"""
WORKLOAD = """\
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  trigger: {on: change}
  steps:
    - {id: say, agent: a, run: echo TEXT}
"""


def pool(warm: int) -> str:
    return POOL.replace("WARM", str(warm))


def workload(text: str) -> str:
    return WORKLOAD.replace("TEXT", text)


@pytest.fixture
def origin(git: str, tmp_path: Path) -> Repo:
    made = Repo(git, tmp_path / "origin")
    made.commit(
        "first",
        **{
            "policies__p.yaml": POLICY,
            "agents.yaml": AGENTS,
            "pools__warm.yaml": pool(2),
            "workloads__w.yaml": workload("hello"),
        },
    )
    return made


class Git:
    """``reconcile``/``diff``/``status`` against the origin, in one state folder."""

    def __init__(self, cli: CliRunner, origin: Repo, state: Path) -> None:
        self.cli, self.origin, self.state = cli, origin, state

    def __call__(self, command: str, *more: str) -> tuple[int, str, str]:
        done = self.cli(command, "--git", str(self.origin.path), "--state", str(self.state), *more)
        return done.code, done.out, done.err

    def applied(self) -> AppliedState:
        return AppliedState(RunStore(self.state))

    def runs(self) -> dict[str, str]:
        return {r.id: str(r.state) for r in RunStore(self.state).runs()}


@pytest.fixture
def reconcile(cli: CliRunner, origin: Repo, tmp_path: Path) -> Git:
    return Git(cli, origin, tmp_path / "state")


def test_reconcile_follows_each_commit_and_a_bad_one_applies_nothing(
    reconcile: Git, origin: Repo
) -> None:
    first = origin.run("rev-parse", "HEAD")
    code, out, _ = reconcile("reconcile")
    assert code == 0, out
    assert "started w-1 (workload w: its plan changed)" in out
    assert f"applied revision {first}" in out
    assert reconcile.runs() == {"w-1": "succeeded"}
    applied = reconcile.applied()
    assert {f"{k}/{n}" for k, n in applied.objects()} == {
        "Agent/a", "Image/img", "Policy/p", "Pool/warm", "Workload/w",
    }  # fmt: skip
    assert applied.objects()[("Pool", "warm")].spec["warm"] == 2

    second = origin.commit("bigger pool", **{"pools__warm.yaml": pool(3)})
    assert reconcile("diff")[0] == 1
    code, out, _ = reconcile("reconcile")
    assert code == 0 and "~ Pool/warm (pools/warm.yaml)\n    spec.warm: 2 -> 3" in out
    assert reconcile.applied().objects()[("Pool", "warm")].revision == second
    assert reconcile.runs() == {"w-1": "succeeded"}  # its plan did not change: no run

    origin.commit("broken", **{"policies__p.yaml": POLICY.replace("risk: green,", "risk: green")})
    code, _, err = reconcile("reconcile")
    assert code == 1
    assert "nothing applied" in err and "policies/p.yaml:6:" in err
    source = reconcile.applied().source()
    assert source is not None and source.state is Condition.STALLED
    assert source.revision == second and "policies/p.yaml:6:" in source.reason
    assert reconcile("diff")[0] == 2

    fixed = origin.commit(
        "fixed", **{"policies__p.yaml": POLICY, "workloads__w.yaml": workload("again")}
    )
    code, out, _ = reconcile("reconcile")
    assert code == 0 and "started w-2" in out
    assert reconcile.runs() == {"w-1": "succeeded", "w-2": "succeeded"}
    source = reconcile.applied().source()
    assert source is not None and (source.state, source.revision) == (Condition.READY, fixed)
    status = reconcile.cli("status", "--state", str(reconcile.state)).out
    assert fixed in status and "Ready" in status

    assert reconcile("reconcile")[1].count("no changes") == 1  # nothing new: nothing runs
    assert reconcile.runs() == {"w-1": "succeeded", "w-2": "succeeded"}


def test_a_removed_pool_goes_only_with_prune(reconcile: Git, origin: Repo) -> None:
    assert reconcile("reconcile")[0] == 0
    origin.run("rm", "--quiet", "pools/warm.yaml")
    origin.commit("no pool")
    code, out, _ = reconcile("reconcile")
    assert code == 0 and "- Pool/warm (pools/warm.yaml) (kept: --prune removes it)" in out
    kept = reconcile.applied().objects()[("Pool", "warm")]
    assert kept.reason == "removed from the source; kept"
    code, out, _ = reconcile("reconcile", "--prune")
    assert code == 0 and "- Pool/warm" in out and "kept" not in out
    assert ("Pool", "warm") not in reconcile.applied().objects()
    events = [r.event for r in RunStore(reconcile.state).audit.records(":gitops")]
    assert events.count("gitops.removed") == 1


def test_a_triggered_workload_runs_once_per_change_of_its_inputs(
    reconcile: Git, origin: Repo
) -> None:
    assert reconcile("reconcile")[0] == 0
    # an input of the plan changes (the policy's reason), not the workload's document
    origin.commit("reason", **{"policies__p.yaml": POLICY.replace("harmless", "just text")})
    assert "started w-2" in reconcile("reconcile")[1]
    origin.commit("unrelated", **{"README.md": "docs only\n"})
    assert "started" not in reconcile("reconcile")[1]
    assert sorted(reconcile.runs()) == ["w-1", "w-2"]
    # the decision of each run names the revision of the policy that decided it
    store = RunStore(reconcile.state)
    decided = [
        r.data.get("policy_revision")
        for r in store.audit.records("w-2")
        if r.event == "step.started" or "policy_revision" in r.data
    ]
    assert origin.run("rev-parse", "HEAD~1") in decided


def test_diff_exit_codes_and_json(reconcile: Git, origin: Repo) -> None:
    code, out, _ = reconcile("diff", "--json")
    assert code == 1
    assert [(c["action"], c["kind"], c["name"]) for c in json.loads(out)] == [
        ("added", "Image", "img"), ("added", "Pool", "warm"), ("added", "Policy", "p"),
        ("added", "Agent", "a"), ("added", "Workload", "w"),
    ]  # fmt: skip
    reconcile("reconcile")
    assert reconcile("diff") == (0, "no changes\n", "")
    bad = reconcile.cli("diff", "--git", "/nonexistent", "--state", str(reconcile.state))
    assert bad.code == 2 and "error:" in bad.err


def test_policy_replay_takes_the_policies_of_a_git_revision(reconcile: Git, origin: Repo) -> None:
    assert reconcile("reconcile")[0] == 0  # w-1 ran: `echo hello` decided Green
    strict = origin.commit(
        "strict", **{"policies__p.yaml": POLICY.replace("risk: green", "risk: red")}
    )
    origin.commit("lenient again", **{"policies__p.yaml": POLICY})
    state, url = str(reconcile.state), str(origin.path)
    done = reconcile.cli("policy", "replay", "--audit", state, "--git", url, "--revision", strict)
    assert done.code == 0, done.err
    assert f"at {strict}" in done.out and "Green -> Red (tightened): 1" in done.out
    head = reconcile.cli("policy", "replay", "--audit", state, "--git", url)
    assert "unchanged: 1" in head.out
    both = reconcile.cli("policy", "replay", "--audit", state, "--git", url, "p.yaml")
    assert both.code == 1 and "one of them" in both.err


def test_a_branch_is_followed_and_main_is_not(reconcile: Git, origin: Repo) -> None:
    origin.run("checkout", "--quiet", "-b", "release")
    release = origin.commit("release pool", **{"pools__warm.yaml": pool(5)})
    origin.run("checkout", "--quiet", "main")
    origin.commit("main pool", **{"pools__warm.yaml": pool(7)})
    code, out, _ = reconcile("reconcile", "--branch", "release")
    assert code == 0 and f"applied revision {release}" in out
    assert reconcile.applied().objects()[("Pool", "warm")].spec["warm"] == 5
    pinned = reconcile("diff", "--revision", release)
    assert pinned[0] == 0  # the pinned revision is what was applied
    assert reconcile("diff")[0] == 1  # main differs: spec.warm 5 -> 7
