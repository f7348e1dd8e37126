from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def git() -> str:
    """The git executable; the test skips with the reason where there is none."""
    found = shutil.which("git")
    if found is None:
        pytest.skip("git is not installed (make unit installs it as root with apt)")
    return found


class Repo:
    """A real git repository made with the git CLI, with helpers to commit files."""

    def __init__(self, git: str, path: Path) -> None:
        self.git_exe = git
        self.path = path
        self.run("init", "--quiet", "--initial-branch=main", str(path), cwd=path.parent)

    def run(self, *args: str, cwd: Path | None = None) -> str:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.path.parent),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        }
        done = subprocess.run(
            [self.git_exe, *args],
            cwd=cwd or self.path,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def write(self, relative: str, text: str) -> None:
        path = self.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def commit(self, message: str = "change", **files: str) -> str:
        for relative, text in files.items():
            self.write(relative.replace("__", "/"), text)
        self.run("add", "--all")
        self.run("commit", "--quiet", "--allow-empty", "-m", message)
        return self.run("rev-parse", "HEAD")

    def files(self, sha: str) -> set[str]:
        return set(self.run("ls-tree", "-r", "--name-only", sha).splitlines())


@pytest.fixture
def repo(git: str, tmp_path: Path) -> Repo:
    made = Repo(git, tmp_path / "origin")
    made.commit("first", **{"agent.yaml": "kind: Agent\n", "policies__p.yaml": "kind: Policy\n"})
    return made


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


FilesOf = Callable[[Path], set[str]]


@pytest.fixture
def files_of() -> FilesOf:
    """Every file and link under a folder, relative, as POSIX paths."""

    def collect(root: Path) -> set[str]:
        return {
            p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()
        }

    return collect
