from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from luminaguard.hypervisor.gvisor.backend import GvisorBackend
from luminaguard.hypervisor.linux import work_disk
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from luminaguard.hypervisor.vm.image import build
from luminaguard.hypervisor.vm.qemu.backend import QemuMachine
from luminaguard.scheduler.store import RunStore
from luminaguard.ui.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Fixtures that make a test start a real sandbox (namespaces, gVisor) or npm MCP server.
REAL_SANDBOX = {"sandbox", "backend_name", "run_in_sandbox", "npm_servers"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``integration`` what needs real sandboxes, processes or VMs.

    That is everything under tests/integration, every test using a fixture of
    ``REAL_SANDBOX`` and every ``vm`` test, so that ``-m 'not integration'`` is the
    unit suite. The other tests that start sandboxes, and those that boot VMs, are
    marked where they are (``boundaries_need_their_marker`` checks that they are).
    """
    integration = ROOT / "tests" / "integration"
    for item in items:
        if (
            item.path.is_relative_to(integration)
            or REAL_SANDBOX & set(getattr(item, "fixturenames", ()))
            or item.get_closest_marker("vm")
        ):
            item.add_marker(pytest.mark.integration)


# What a test marked neither (or only integration) may not start: (class, method, marker).
BOUNDARIES = [
    *((QemuMachine, name, "vm") for name in ("boot", "snapshot", "restore")),
    (SandboxBackend, "create", "integration"),
    (GvisorBackend, "create", "integration"),
]


@pytest.fixture(autouse=True)
def boundaries_need_their_marker(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Fail a test that starts a sandbox or a QEMU VM without its marker.

    So that ``-m 'not integration'`` or ``-m 'not vm'`` leaves out every test that does.
    (Sandboxes started in a child process are not seen: mark those tests by hand.)
    """
    started: dict[str, str] = {}

    def recorded(cls: type, name: str, marker: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        original = getattr(cls, name)

        async def method(self: object, *args: Any, **kwargs: Any) -> Any:
            started[f"{cls.__name__}.{name}"] = marker
            return await original(self, *args, **kwargs)

        return method

    for cls, name, marker in BOUNDARIES:
        if not request.node.get_closest_marker(marker):
            monkeypatch.setattr(cls, name, recorded(cls, name, marker))
    yield
    if started:
        pytest.fail(
            ", ".join(f"{what} in a test not marked {why}" for what, why in started.items())
        )


@pytest.fixture(autouse=True)
def stores_closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close, after each test, the run stores it opened, itself or through the CLI in-process."""
    opened: list[RunStore] = []
    init = RunStore.__init__

    def tracked(self: RunStore, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(RunStore, "__init__", tracked)
    yield
    for store in opened:
        store.close()


@pytest.fixture(scope="session")
def image_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty guest image cache: the tests of the image build build it all, every run.

    Only the kernel package is taken from the warm cache when it is there (apt then
    finds it downloaded); unpacking it, the initramfs and the tools disk are done here.
    VM tests that only need an image keep the warm cache.
    """
    cache = tmp_path_factory.mktemp("image-cache")
    for package in (build.CACHE / "kernel").glob("*.deb"):
        (cache / "kernel").mkdir(exist_ok=True)
        shutil.copy(package, cache / "kernel")
    yield cache
    shutil.rmtree(cache, ignore_errors=True)


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
