"""The compiled sandbox zygote: where it is built and run from, and what it refuses.

How a sandbox behaves is tested for both zygotes by ``tests/integration/test_sandbox.py``
(its ``backend_name`` fixture) and, through the backend, by the security tests.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor.linux import seccomp
from luminaguard.hypervisor.sandbox import native, zygote
from luminaguard.hypervisor.sandbox.zygote import Zygote
from tests.integration.conftest import sandbox_problem


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty cache and no build beside the source: ``program`` must build or give up."""
    monkeypatch.setenv("LUMINAGUARD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "BUILT", tmp_path / "none")
    monkeypatch.delenv(native.CHOICE, raising=False)
    native.forget()
    yield tmp_path / "cache" / "zygote"
    native.forget()


@pytest.fixture
def compiler() -> None:
    """Skip, with the reason, where no C compiler can build the zygote."""
    if native.shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler (cc): the Python zygote serves, and is tested")


@pytest.fixture
def built(compiler: None, cache: Path) -> Path:
    """The compiled zygote, built into the test's cache."""
    found = native.program()
    assert found is not None and found.parent == cache
    return found


def test_a_changed_source_is_never_run_from_an_old_build(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = tmp_path / "zygote.c"
    changed.write_text(native.SOURCE.read_text() + "\n/* changed */\n")
    monkeypatch.setattr(native, "SOURCE", changed)
    native.forget()
    rebuilt = native.program()
    assert rebuilt is not None and rebuilt != built and rebuilt.is_file()
    assert rebuilt.stat().st_mode & 0o022 == 0 and rebuilt.parent.stat().st_mode & 0o077 == 0
    assert not built.exists()  # the old source's build is gone with it


def test_a_binary_others_may_write_is_replaced_not_run(built: Path) -> None:
    built.write_text("#!/bin/sh\necho planted\n")
    built.chmod(0o777)
    native.forget()
    found = native.program()
    assert found == built and found.read_bytes()[:4] == b"\x7fELF"
    assert found.stat().st_mode & 0o022 == 0


def test_a_folder_others_may_write_is_not_trusted(built: Path) -> None:
    built.parent.chmod(0o777)
    native.forget()
    assert native.program() is None  # the Python zygote serves instead
    assert "not private" in native.reason()


def test_the_cache_is_private_whatever_the_umask(compiler: None, cache: Path) -> None:
    old = os.umask(0o002)  # a regular user's on many systems: folders made group-writable
    try:
        found = native.program()
    finally:
        os.umask(old)
    assert found is not None, native.reason()
    for level in (cache, cache.parent):
        assert level.stat().st_mode & 0o077 == 0


def test_without_mount_setattr_the_python_zygote_serves(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(native, "_kernel_has_mount_setattr", lambda: False)
    assert native.program() is None
    assert "Linux 5.12" in native.reason()


def test_this_kernel_has_mount_setattr_as_the_probe_says() -> None:
    release = tuple(int(part) for part in os.uname().release.split(".")[:2])
    assert native._kernel_has_mount_setattr() == (release >= (5, 12))


def test_the_source_compiles_without_a_warning(compiler: None, tmp_path: Path) -> None:
    cc = native.shutil.which(os.environ.get("CC", "cc"))
    done = subprocess.run(
        [cc, *native.FLAGS, "-Werror", "-o", tmp_path / "z", native.SOURCE],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_without_a_compiler_the_python_zygote_serves(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert native.program() is None
    assert "no C compiler" in native.reason()
    assert zygote.command(7)[:4] == [sys.executable, "-I", "-S", str(zygote.HELPER)]
    assert not cache.exists() or not any(cache.iterdir())  # no half-built file left


def test_the_python_zygote_can_be_chosen(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.CHOICE, "python")
    native.forget()
    assert native.program() is None


def test_a_failed_build_says_why(
    compiler: None, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.c"
    broken.write_text("int main(void) { return undeclared; }\n")
    monkeypatch.setattr(native, "SOURCE", broken)
    with pytest.raises(native.BuildError, match="undeclared"):
        native.build(cache)
    assert [p.name for p in cache.iterdir()] == []  # the temporary file removed


@pytest.mark.integration
def test_the_compiled_zygote_serves_only_its_parent(built: Path) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        hex_filter = seccomp.program(os.uname().machine).hex()
        done = subprocess.run(
            [built, str(theirs.fileno()), "1", hex_filter, "usr"],
            pass_fds=[theirs.fileno()], timeout=10, check=False,
        )  # fmt: skip
    assert done.returncode == 125


@pytest.mark.integration
@pytest.mark.parametrize("zygote", ["compiled", "python"])
def test_a_malformed_request_starts_no_sandbox(
    built: Path, zygote: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused, never cut short, and the zygote serves on (its death kills every sandbox)."""
    if sandbox_problem():
        pytest.skip(sandbox_problem() or "")
    if zygote == "python":
        monkeypatch.setattr(native, "program", lambda: None)

    async def go() -> None:
        found = Zygote()
        try:
            too_many = [f"env=V{i}=x" for i in range(5000)]  # refused, never cut short
            zygote_pid = None
            for request in (
                ["workdir=/tmp", "--", "true"],
                ["nonsense", "--", "true"],
                ["workdir=/tmp", "root=/tmp/r", *too_many, "--", "true"],
                ["workdir=/tmp", "root=/tmp/r", "mount=/a:/b:rx", "--", "true"],
                ["workdir=/tmp", "root=/tmp/r", "mount=/a", "--", "true"],
                ["workdir=/tmp", "root=/tmp/r", "--"],
            ):
                with pytest.raises(OSError, match="started no sandbox"):
                    await found.spawn(request)
                zygote_pid = zygote_pid or found.pid
                assert found.pid == zygote_pid is not None  # still the same zygote
        finally:
            found.close()

    asyncio.run(go())


def test_a_nul_byte_never_splits_an_argument() -> None:
    async def go() -> None:
        await Zygote().spawn(["workdir=/tmp", "env=A=x\0--\0/bin/evil", "--", "true"])

    with pytest.raises(ValueError, match="NUL"):
        asyncio.run(go())


def test_an_empty_request_is_never_sent() -> None:
    """An empty message reads, to either zygote, as the channel's end: it would stop."""

    async def go() -> None:
        await Zygote().spawn([])

    with pytest.raises(ValueError, match="KEY=VALUE"):
        asyncio.run(go())


@pytest.mark.integration
@pytest.mark.parametrize("zygote", ["compiled", "python"])
@pytest.mark.parametrize("value", ["0", "-0", "+5", " 5", "5_0", "\u0665", "4294967296", "x"])
def test_a_uid_that_is_root_or_not_a_plain_number_is_refused(
    built: Path, tmp_path: Path, value: str, zygote: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sandbox_problem():
        pytest.skip(sandbox_problem() or "")
    if os.getuid() != 0:
        pytest.skip("the uid is used only when the runner is root")
    (tmp_path / "work").mkdir()
    if zygote == "python":
        monkeypatch.setattr(native, "program", lambda: None)

    async def go() -> tuple[int, bytes]:
        found = Zygote()
        try:
            args = [f"workdir={tmp_path / 'work'}", f"root={tmp_path / 'root'}", f"uid={value}"]
            args += ["cpu_seconds=10", "memory_mib=256", "pids=16", "--", "/bin/true"]
            process = await found.spawn(args)
            said = await process.stderr.read()
            return await process.wait(), said
        finally:
            found.close()

    (tmp_path / "root").mkdir()
    code, said = asyncio.run(go())
    assert code == 125 and b"uid" in said, said
