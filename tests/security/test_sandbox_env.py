"""The sandbox's environment: nothing of the runner's, and git runs no repository program.

Issue #10, sections 8 (git) and 9 (a stdio MCP server by bare command name).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from luminaguard.hypervisor.linux.env import PATH
from luminaguard.hypervisor.linux.users import allocate, hand_over
from luminaguard.hypervisor.sandbox.zygote import HELPER
from tests.security.conftest import Run

#: inside the sandbox: a repository whose own config names a program, then ``git status``
PLANT = """
set -e
git init -q /work/repo
printf '#!/bin/sh\\ntouch /work/PWNED\\n' > /work/fsmonitor
chmod +x /work/fsmonitor
cd /work/repo
git config core.fsmonitor /work/fsmonitor
git config core.pager /work/fsmonitor
echo a > file
"""


def test_git_status_runs_no_program_from_the_repository_config(
    tmp_path: Path, run_in_sandbox: Run
) -> None:
    """Attack: ``.git/config`` sets ``core.fsmonitor`` to a script; a Green ``git status``.

    Before the fix ``git status`` ran the script (``/work/PWNED`` appeared), in both
    backends. Fixed by ca2f630 "sandbox: seccomp filter (...), a fresh session keyring,
    a fixed environment with git unable to run the repository's programs, ..." (the
    namespace sandbox) and 7d7cecf "sandbox: each sandbox its own uid ... and the
    sandbox environment" (gVisor).
    """
    planted = run_in_sandbox(tmp_path, PLANT)
    assert planted.ok, planted.stderr
    result = run_in_sandbox(tmp_path, "cd /work/repo && git status && git log -1 || true")
    assert "file" in result.stdout, result.stderr  # git did run, and saw the repository
    assert not (tmp_path / "work" / "PWNED").exists()
    # the script itself works: run by hand, it leaves its mark
    assert run_in_sandbox(tmp_path, "/work/fsmonitor").ok
    assert (tmp_path / "work" / "PWNED").exists()


@pytest.fixture
def python_outside_usr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python installed outside ``/usr`` (its own prefix), like a pyenv or uv one."""
    prefix = tmp_path_factory.mktemp("python-prefix")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (prefix / "bin").mkdir()
    (prefix / "lib").mkdir()
    binary = prefix / "bin" / version
    shutil.copy2(Path(sys.executable).resolve(), binary)
    (prefix / "lib" / version).symlink_to(sysconfig.get_paths()["stdlib"])
    return binary


def test_a_bare_command_name_starts_whatever_python_runs_the_runner(
    tmp_path: Path, python_outside_usr: Path, sandbox: None
) -> None:
    """``python3`` by bare name in the sandbox, the runner's Python living outside ``/usr``.

    Before the fix the helper's PATH search (``os.execvpe``) imported a module after the
    pivot, from the runner's standard library, out of sight there: the command failed
    with "No module named 'warnings'" (hidden under the zygote, which had imported it
    already). Fixed by ca2f630 "sandbox: seccomp filter (...), ..., PATH searched
    without the runner's stdlib".
    """
    user = allocate()
    try:
        work, root = tmp_path / "work", tmp_path / "root"
        work.mkdir()
        root.mkdir()
        hand_over(work, user)
        spec = [f"workdir={work}", f"root={root}", "cpu_seconds=30", "memory_mib=512"]
        spec += ["pids=64", "network=0", f"uid={user.uid}"]
        command = ["python3", "-c", "import os, sys; print(sys.prefix, os.environ['PATH'])"]
        done = subprocess.run(
            [str(python_outside_usr), "-I", "-S", str(HELPER), *spec, "--", *command],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        user.release()
    assert done.returncode == 0, done.stderr
    prefix, path = done.stdout.split()
    assert prefix == "/usr"
    assert path == PATH
    assert sys.prefix not in path and str(python_outside_usr.parent) not in path


def test_the_sandbox_path_is_fixed(tmp_path: Path, run_in_sandbox: Run) -> None:
    """The sandbox's PATH is the fixed one, whatever the runner's (a virtualenv's) is."""
    result = run_in_sandbox(tmp_path, 'printf %s "$PATH"; command -v python3 >&2')
    assert result.stdout == PATH
    assert sys.prefix not in result.stdout
    assert result.stderr.strip() in ("/usr/bin/python3", "/usr/local/bin/python3")
