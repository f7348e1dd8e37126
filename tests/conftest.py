from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from luminaguard.hypervisor.linux import work_disk
from luminaguard.ui.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def work_disks_detached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Unmount, after the session, the sandboxes' work disks the tests left mounted."""
    yield
    if os.getuid() == 0:
        for point in work_disk.mounted_under(tmp_path_factory.getbasetemp()):
            work_disk.detach(point)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


CliRunner = Callable[..., CliResult]
Writer = Callable[[str, str], Path]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """Run ``luminaguard ARGS...`` in-process from a folder, capturing its output."""

    def run(*args: str, cwd: Path = ROOT) -> CliResult:
        monkeypatch.chdir(cwd)
        monkeypatch.setenv("COLUMNS", "200")
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """Write a file under tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return _write


os.environ.setdefault("COLUMNS", "200")
