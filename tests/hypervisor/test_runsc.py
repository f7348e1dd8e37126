"""Finding a usable runsc: too old or missing ones are named, with what to do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor.gvisor import runsc


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    runsc.find_runsc.cache_clear()
    yield
    runsc.find_runsc.cache_clear()


def fake(tmp_path: Path, name: str, version: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\necho 'runsc version {version}'\necho 'spec: 1.0.2'\n")
    path.chmod(0o755)
    return str(path)


def test_a_recent_runsc_is_chosen_before_an_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = fake(tmp_path, "old", "0.0~20221219.0"), fake(tmp_path, "new", "release-20240729.0")
    monkeypatch.setattr(runsc, "CANDIDATES", (old, new))
    monkeypatch.delenv("LUMINAGUARD_RUNSC", raising=False)
    found = runsc.find_runsc()
    assert isinstance(found, runsc.Runsc) and (found.binary, found.version) == (new, 20240729)


def test_only_old_ones_are_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runsc, "CANDIDATES", (fake(tmp_path, "old", "0.0~20221219.0"),))
    monkeypatch.setenv("LUMINAGUARD_RUNSC", str(tmp_path / "absent"))
    found = runsc.find_runsc()
    assert isinstance(found, str)
    assert found.startswith(f"runsc too old: {tmp_path / 'old'} (20221219); need 20230101")
    assert "scripts/install-runsc.sh" in found


def test_none_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runsc, "CANDIDATES", (str(tmp_path / "absent"),))
    monkeypatch.delenv("LUMINAGUARD_RUNSC", raising=False)
    assert runsc.find_runsc() == "runsc not installed (scripts/install-runsc.sh installs it)"


def test_reaping_spares_live_runners_and_foreign_containers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    deleted: list[str] = []
    tool = runsc.Runsc("runsc", 20240729, tmp_path)
    ids = [f"lg-{os.getpid()}-aaaa", "lg-999999999-bbbb", "someone-elses"]
    monkeypatch.setattr(runsc.Runsc, "containers", lambda self: ids)
    monkeypatch.setattr(runsc.Runsc, "delete", lambda self, c: deleted.append(c))
    assert tool.reap_orphans() == ["lg-999999999-bbbb"] == deleted
