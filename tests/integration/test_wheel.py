"""The wheel ``python -m build`` makes, installed in a fresh venv outside the checkout, boots a VM.

The build runs on a copy of the checkout (its tracked files and the untracked ones git does
not ignore), so it neither writes build/ and *.egg-info into the checkout nor packs a stale
build/lib left there. It is an isolated PEP 517 build: ``build`` installs the backend that
pyproject.toml names (setuptools>=77) into a throwaway environment; the project venv's own
setuptools may be older. The fresh venv gets the wheel's dependencies from the package index
(pip's cache serves them again on later runs). The VM boots the cached guest image when the
agent, init and image builder are unchanged: LUMINAGUARD_CACHE is passed on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from luminaguard.hypervisor.vm.image.build import CACHE
from luminaguard.hypervisor.vm.qemu.backend import QemuBackend
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

#: what runs as its own program (in the guest, or as a script) and so must be in the wheel
PROGRAMS = {
    "luminaguard/hypervisor/vm/guest/agent/luminaguard_agent.py",
    "luminaguard/hypervisor/vm/guest/agent/init.py",
    "luminaguard/hypervisor/sandbox/helper.py",
    "luminaguard/hypervisor/sandbox/zygote.c",
    "luminaguard/hypervisor/vm/qemu/egress_relay.py",
    # the approval page `luminaguard serve` serves (package data)
    "luminaguard/server/static/index.html",
    "luminaguard/server/static/app.js",
    "luminaguard/server/static/app.css",
}

#: run by the fresh venv's python: boot, one command, destroy; where the package was found
BOOT = """
import asyncio, json, sys
from pathlib import Path

import luminaguard
from luminaguard.hypervisor.base import SandboxSpec
from luminaguard.hypervisor.sandbox import zygote
from luminaguard.hypervisor.vm.image import build
from luminaguard.hypervisor.vm.qemu import egress
from luminaguard.hypervisor.vm.qemu.backend import QemuBackend


async def main() -> dict[str, object]:
    backend = QemuBackend()
    vm = await backend.create(SandboxSpec(name="wheel", workdir=Path("/nonexistent")))
    try:
        result = await backend.exec(vm, "echo hello; uname -r", 60)
    finally:
        await backend.destroy(vm)
    return {
        "prefix": sys.prefix,
        "files": [luminaguard.__file__, str(build.AGENT), str(build.INIT),
                  str(zygote.HELPER), str(egress.RELAY)],
        "exit_code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr,
    }


print(json.dumps(asyncio.run(main())))
"""


def run(
    argv: list[str | Path],
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run a command; on failure, fail the test with its output."""
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return str(done.stdout)


def copy_checkout(target: Path) -> set[str]:
    """Copy the checkout's files (tracked, and untracked but not ignored); their names."""
    listed = run(
        ["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"], 60
    )
    names = {name for name in listed.split("\0") if name and (ROOT / name).is_file()}
    for name in names:  # a tracked file deleted in the work tree is listed but not copied
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    return names


def phase(what: str, started: float) -> None:
    print(f"{what}: {time.monotonic() - started:.1f} s")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """The wheel built from a copy of the checkout, and the package's files in that copy."""
    source, dist = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    names = copy_checkout(source)
    started = time.monotonic()
    run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, source], 600)
    phase("python -m build --wheel", started)
    (wheel,) = dist.glob("*.whl")
    return wheel, {name for name in names if name.startswith("luminaguard/")}


@pytest.fixture(scope="module")
def venv(built: tuple[Path, set[str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv, outside the checkout, with the wheel installed: its folder."""
    folder = tmp_path_factory.mktemp("venv")
    assert not folder.is_relative_to(ROOT)
    started = time.monotonic()
    run([sys.executable, "-m", "venv", folder], 300)
    run([folder / "bin" / "python", "-m", "pip", "install", "--quiet", built[0]], 900)
    phase("venv and pip install of the wheel", started)
    return folder


def test_the_wheel_holds_the_package_its_guest_programs_and_no_tests(
    built: tuple[Path, set[str]],
) -> None:
    wheel, package = built
    with zipfile.ZipFile(wheel) as archive:
        files = {name for name in archive.namelist() if not name.endswith("/")}
    assert not PROGRAMS - files, "missing from the wheel"
    # the package exactly: namespace folders (no __init__.py) and package data included
    assert {name for name in files if name.startswith("luminaguard/")} == package
    assert {name.split("/")[0] for name in files} == {"luminaguard", "luminaguard-0.1.0.dist-info"}


@pytest.mark.vm
@pytest.mark.slow
def test_the_installed_wheel_boots_a_vm_outside_the_checkout(
    venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    availability = QemuBackend().availability()
    if not availability.usable:
        pytest.skip(f"qemu backend unavailable: {availability.detail}")
    elsewhere = tmp_path_factory.mktemp("cwd")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["LUMINAGUARD_CACHE"] = str(CACHE.parent)  # the warm image cache this session uses
    started = time.monotonic()
    out = run([venv / "bin" / "python", "-c", BOOT], 600, cwd=elsewhere, env=env)
    phase("boot, echo, destroy", started)
    report = json.loads(out.splitlines()[-1])
    assert Path(report["prefix"]).resolve() == venv.resolve()
    for file in report["files"]:  # the package, the guest's programs, the scripts: installed
        assert Path(file).is_relative_to(venv) and Path(file).is_file(), file
    assert (report["exit_code"], report["stderr"]) == (0, ""), report
    hello, kernel = report["stdout"].splitlines()
    assert hello == "hello" and kernel.endswith("-cloud-amd64")
