from __future__ import annotations

from pathlib import Path

import pytest

from luminaguard.gitops.source import FolderSource, SourceError


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "agent.yaml").write_text("kind: Agent\n")
    (root / "sub" / "pool.yaml").write_text("kind: Pool\n")
    return root


def revision(folder: Path) -> str:
    return FolderSource(folder).fetch().revision


def test_the_revision_is_stable_across_fetches(folder: Path) -> None:
    first = FolderSource(folder).fetch()
    assert first.revision.startswith("sha256:") and len(first.revision) == 7 + 64
    assert FolderSource(folder).fetch() == first


def test_the_snapshot_root_is_the_folder_and_every_file_has_its_revision(folder: Path) -> None:
    snapshot = FolderSource(folder).fetch()
    assert snapshot.root == folder
    assert snapshot.url == str(folder)
    assert snapshot.revision_of(folder / "sub" / "pool.yaml") == snapshot.revision


def test_a_changed_file_changes_the_revision(folder: Path) -> None:
    before = revision(folder)
    (folder / "agent.yaml").write_text("kind: Agent\nname: b\n")
    assert revision(folder) != before


def test_an_added_or_removed_file_changes_the_revision(folder: Path) -> None:
    before = revision(folder)
    (folder / "new.yaml").write_text("")
    added = revision(folder)
    assert added != before
    (folder / "new.yaml").unlink()
    assert revision(folder) == before


def test_a_renamed_file_changes_the_revision(folder: Path) -> None:
    before = revision(folder)
    (folder / "sub" / "pool.yaml").rename(folder / "sub" / "pools.yaml")
    assert revision(folder) != before
    (folder / "sub" / "pools.yaml").rename(folder / "pool.yaml")  # same name, other folder
    assert revision(folder) != before


def test_the_revision_does_not_depend_on_where_the_folder_is(folder: Path, tmp_path: Path) -> None:
    before = revision(folder)
    moved = folder.rename(tmp_path / "elsewhere")
    assert revision(moved) == before


def test_a_git_folder_inside_is_left_out(folder: Path) -> None:
    before = revision(folder)
    (folder / ".git").mkdir()
    (folder / ".git" / "index").write_text("changes all the time")
    assert revision(folder) == before


def test_a_symlink_counts_by_its_target_and_is_not_followed(folder: Path) -> None:
    (folder / "link").symlink_to("/etc/passwd")
    linked = revision(folder)
    (folder / "link").unlink()
    (folder / "link").symlink_to("/etc/hostname")
    assert revision(folder) != linked


def test_a_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        FolderSource(tmp_path / "nothing").fetch()
