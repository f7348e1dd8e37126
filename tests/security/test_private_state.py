"""Issue #10, section 7: the state folder is private, and run ids cannot leave it."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from tests.conftest import CliRunner, Writer
from tests.integration.conftest import sandbox  # noqa: F401 (the fixture)
from tests.security.halted_run import halt, workload

pytestmark = pytest.mark.usefixtures("sandbox")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_state_folder_and_files_are_private_even_when_made_public_before(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: another local user read runs.db (state folder 0755, runs.db 0644).

    A state folder made public (as older versions left it) becomes 0700 with 0600 files
    when opened. Fixed by b39c386 ("one driver per run: ...; private, keyed state") and
    45f1d3f ("state: the runs folder is private too") for a runs/ folder made before.
    """
    state = tmp_path / "state"
    (state / "runs").mkdir(parents=True)
    sqlite3.connect(state / "runs.db").close()
    for path, mode in ((state, 0o755), (state / "runs", 0o755), (state / "runs.db", 0o644)):
        path.chmod(mode)
    halt(cli, workload(write), state)
    (state / "runs" / "r").chmod(0o755)  # as older versions made it
    assert cli("resume", "r", "--state", str(state)).code == 3
    assert _mode(state) == 0o700
    for folder in ("runs", "runs/r", "locks"):
        assert _mode(state / folder) == 0o700, folder
    files = ["runs.db", "audit.key", "audit.head", "locks/r.lock"]
    files += [name for name in ("runs.db-wal", "runs.db-shm") if (state / name).exists()]
    for name in files:
        assert _mode(state / name) == 0o600, name
    for entry in state.iterdir():  # nothing at the top is open to group or others
        assert _mode(entry) & 0o077 == 0, entry


@pytest.mark.parametrize("run_id", ["../../x", "..", ".", "a/b", "a..b", "/tmp/x", ""])
def test_run_ids_are_names(cli: CliRunner, write: Writer, tmp_path: Path, run_id: str) -> None:
    """Attack: `--run-id ../../x` put the run's work folder outside the state folder.

    Fixed by b39c386 ("one driver per run: ...; private, keyed state"): run ids are
    names; exit 1, nothing created.
    """
    state = tmp_path / "deep" / "state"
    result = cli("run", workload(write), "--state", str(state), "--run-id", run_id)
    assert result.code == 1, result.out + result.err
    assert f"run id {run_id!r} is not a name" in result.err
    assert not (tmp_path / "x").exists() and not (tmp_path / "deep" / "x").exists()
    assert not (state / "runs").exists() or list((state / "runs").iterdir()) == []
    for command in (["resume", run_id], ["approve", run_id, "ship"], ["status", run_id]):
        refused = cli(*command, "--state", str(state))
        assert refused.code == 1 and "is not a name" in refused.err, command
