"""``luminaguard diff`` on a folder: field-level changes, stable text (snapshot), exit codes."""

from __future__ import annotations

from pathlib import Path

from syrupy.assertion import SnapshotAssertion

from luminaguard.gitops.diff import FieldChange, field_changes
from tests.conftest import CliRunner

DOCS = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - {id: echo, match: {program: [echo]}, risk: green, reason: harmless}
    - {id: rm, match: {program: [rm]}, risk: red, reason: deletes}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec: {policy: p}
---
apiVersion: luminaguard.dev/v1
kind: Image
metadata: {name: img}
spec: {rootfs: base}
---
apiVersion: luminaguard.dev/v1
kind: Pool
metadata: {name: warm}
spec: {image: img, warm: 2}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - {id: say, agent: a, run: echo hi}
"""


def test_diff_of_each_kind_of_change_is_stable(
    cli: CliRunner, tmp_path: Path, snapshot: SnapshotAssertion
) -> None:
    source, state = tmp_path / "source", str(tmp_path / "state")
    source.mkdir()
    (source / "all.yaml").write_text(DOCS)
    added = cli("diff", str(source), "--state", state)
    assert added.code == 1
    assert cli("reconcile", str(source), "--state", state).code == 0
    assert cli("diff", str(source), "--state", state).code == 0
    changed = DOCS.replace("warm: 2", "warm: 3").replace(
        "risk: red, reason: deletes", "risk: green, reason: fine"
    )
    changed = changed[: changed.index("---\napiVersion: luminaguard.dev/v1\nkind: Workload")]
    (source / "all.yaml").write_text(changed)
    modified = cli("diff", str(source), "--state", state)
    assert modified.code == 1
    as_json = cli("diff", str(source), "--state", state, "--json")
    assert (added.out, modified.out, as_json.out) == snapshot


def test_an_invalid_source_is_exit_2_with_file_and_line(cli: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "bad.yaml").write_text(DOCS.replace("risk: green, reason", "risk: gren, reason"))
    done = cli("diff", str(source), "--state", str(tmp_path / "state"))
    assert done.code == 2 and "bad.yaml:6:" in done.err
    missing = cli("diff", str(tmp_path / "none"), "--state", str(tmp_path / "state"))
    assert missing.code == 2 and "neither a folder nor a git URL" in missing.err
    both = cli("diff", str(source), "--git", "x", "--state", str(tmp_path / "state"))
    assert both.code == 2


def test_field_changes_name_each_leaf() -> None:
    old = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "gone": True}
    new = {"a": 1, "b": {"c": [1, 3], "d": "y"}, "new": [1]}
    assert field_changes(old, new, "spec") == [
        FieldChange("spec.b.c[1]", 2, 3),
        FieldChange("spec.b.d", "x", "y"),
        FieldChange("spec.gone", True, None),
        FieldChange("spec.new", None, [1]),
    ]
    assert field_changes([1], [1, 2], "spec.l") == [FieldChange("spec.l", [1], [1, 2])]
