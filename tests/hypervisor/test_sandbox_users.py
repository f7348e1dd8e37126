"""Sandbox uids: taken from the range, one holder at a time, real users and groups skipped."""

from __future__ import annotations

import grp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import BackendError
from luminaguard.hypervisor.linux import users as sandbox_users


@pytest.fixture(autouse=True)
def private_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMINAGUARD_UID_LOCKS", str(tmp_path / "locks"))
    monkeypatch.setenv("LUMINAGUARD_SANDBOX_UIDS", "300000:3")


def test_each_holder_gets_its_own_uid_until_it_releases_it() -> None:
    first, second = sandbox_users.allocate(), sandbox_users.allocate()
    assert (first.uid, second.uid) == (300000, 300001)
    first.release()
    assert sandbox_users.allocate().uid == 300000


def test_another_process_holding_a_uid_keeps_it(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "from luminaguard.hypervisor.linux import users as s; "
         "u = s.allocate(); print(u.uid, flush=True); input()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy(),
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "300000"
    try:
        assert sandbox_users.allocate().uid == 300001
    finally:
        holder.stdin.close()
        holder.wait()
        holder.stdout.close()
    assert sandbox_users.allocate().uid == 300000  # its end released it


def test_a_full_range_is_a_clear_error() -> None:
    held = [sandbox_users.allocate() for _ in range(3)]
    with pytest.raises(BackendError, match=r"every sandbox uid in 300000\.\.300002 is in use"):
        sandbox_users.allocate()
    assert len({u.uid for u in held}) == 3


def test_real_users_and_groups_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    root_group = grp.getgrgid(0)

    def groups(gid: int) -> grp.struct_group:  # a real group numbered 300000
        if gid == 300000:
            return root_group
        raise KeyError(gid)

    monkeypatch.setattr(grp, "getgrgid", groups)
    assert sandbox_users.allocate().uid == 300001


@pytest.mark.parametrize("text", ["x", "10:0", "5:3", "2147483000:10000"])
def test_a_bad_range_is_refused(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMINAGUARD_SANDBOX_UIDS", text)
    with pytest.raises(BackendError, match="LUMINAGUARD_SANDBOX_UIDS"):
        sandbox_users.allocate()
