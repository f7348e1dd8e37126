"""The work folder's disk: made once, mounted on the folder, refused clearly where it cannot be."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import BackendError
from luminaguard.hypervisor.linux import work_disk


def test_missing_tools_are_a_clear_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "mkfs.ext4" else tool)
    with pytest.raises(BackendError, match=r"/work cannot be limited to 16 MiB: mkfs.ext4 not"):
        work_disk.provide(tmp_path / "work", 16)
    assert not work_disk.image_of(tmp_path / "work").exists()


@pytest.mark.skipif(os.getuid() != 0, reason="a loop mount needs root")
def test_a_disk_is_made_once_and_keeps_what_the_folder_held(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "kept.txt").write_text("kept")
    (work / "link").symlink_to("/etc/shadow")  # copied as a link, never followed
    try:
        work_disk.provide(work, 16)
        assert os.path.ismount(work)
        assert (work / "kept.txt").read_text() == "kept"
        assert os.readlink(work / "link") == "/etc/shadow"
        assert not (work / "lost+found").exists()
        (work / "new.txt").write_text("new")
        work_disk.provide(work, 16)  # mounted already: nothing happens
        work_disk.detach(work)
        assert not os.path.ismount(work) and list(work.iterdir()) == []
        assert oct(os.stat(work_disk.image_of(work)).st_mode & 0o777) == "0o600"
        work_disk.provide(work, 16)  # the same disk again
        assert (work / "new.txt").read_text() == "new"
    finally:
        work_disk.detach(work)
