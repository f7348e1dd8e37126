"""How soon ``luminaguard serve --source`` applies a change: a save, and a commit.

Usage: .venv/bin/python bench/reconcile_bench.py [--saves 20] [--commits 10] [--interval 1]

A real server follows (1) a watched folder: each save of a Pool document is timed from
the write to the moment ``GET /v1/gitops`` reports the folder's new revision applied
(target: median <= 1 s); (2) a git repository polled every ``--interval`` seconds: each
commit is timed from the commit to its SHA applied. Each commit is made just after the
previous one was applied, so it waits for nearly a whole interval: the worst case. The
status is polled every 5 ms, so each figure is at most 5 ms late.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from figures import emit

from luminaguard.gitops.folder import folder_revision

ROOT = Path(__file__).resolve().parent.parent
POLICY = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules: [{id: echo, match: {program: [echo]}, risk: green, reason: harmless}]
---
apiVersion: luminaguard.dev/v1
kind: Image
metadata: {name: img}
spec: {rootfs: base}
"""
POOL = """\
apiVersion: luminaguard.dev/v1
kind: Pool
metadata: {name: warm}
spec: {image: img, warm: %d, max: 64}
"""
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
}  # fmt: skip


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return done.stdout.decode().strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A ``luminaguard serve --source`` child and a viewer token."""

    def __init__(self, root: Path, source: str, interval: float) -> None:
        state = root / "state"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cli = [sys.executable, "-m", "luminaguard"]
        made = subprocess.run(
            [*cli, "token", "create", "bench", "--role", "viewer", "--state", str(state)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        self.token = made.stdout.splitlines()[0].strip()
        self.port = free_port()
        argv = [*cli, "serve", "--state", str(state), "--port", str(self.port), "--source",
                source, "--interval", str(interval), "--workspace", str(root)]  # fmt: skip
        self.log = (root / "serve.log").open("wb")
        self.process = subprocess.Popen(argv, env=env, stdout=self.log, stderr=self.log)

    def revision(self) -> str | None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/gitops",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                source = json.loads(answer.read())["source"]
        except OSError:
            return None
        return None if source is None else source["revision"]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(60)
        self.log.close()


def until(check: Callable[[], bool], limit: float = 120.0) -> float:
    """Seconds until ``check()`` is true, asked every 5 ms."""
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > limit:
            raise SystemExit(f"not applied within {limit:.0f} s")
        time.sleep(0.005)
    return time.perf_counter() - started


def bench_folder(root: Path, saves: int) -> list[float]:
    folder = root / "folder"
    folder.mkdir()
    (folder / "policy.yaml").write_text(POLICY)
    (folder / "pool.yaml").write_text(POOL % 0)
    server = Server(root / "f", str(folder), 600)
    try:
        until(lambda: server.revision() == folder_revision(folder))
        times = []
        for warm in range(1, saves + 1):
            (folder / "pool.yaml").write_text(POOL % warm)
            expected = folder_revision(folder)
            times.append(until(lambda e=expected: server.revision() == e))  # type: ignore[misc]
        return times
    finally:
        server.close()


def bench_git(root: Path, commits: int, interval: float) -> list[float]:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / "policy.yaml").write_text(POLICY)
    (repo / "pool.yaml").write_text(POOL % 0)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "0")
    server = Server(root / "g", f"file://{repo}", interval)
    try:
        first = git(repo, "rev-parse", "HEAD")
        until(lambda: server.revision() == first)
        times = []
        for warm in range(1, commits + 1):
            (repo / "pool.yaml").write_text(POOL % warm)
            git(repo, "commit", "--quiet", "-am", str(warm))
            sha = git(repo, "rev-parse", "HEAD")
            times.append(until(lambda s=sha: server.revision() == s))  # type: ignore[misc]
        return times
    finally:
        server.close()


def summary(name: str, times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return (
        f"{name}: n={len(ms)} median {statistics.median(ms):.0f} ms, p90 {p90:.0f} ms,"
        f" max {ms[-1]:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=20)
    parser.add_argument("--commits", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="luminaguard-reconcile-bench-") as temporary:
        root = Path(temporary)
        folder = bench_folder(root, args.saves)
        commits = bench_git(root, args.commits, args.interval)
    print(summary("save -> applied (watched folder)", folder))
    print(summary(f"commit -> applied (git, --interval {args.interval:g})", commits))
    save, commit = statistics.median(folder), statistics.median(commits)
    emit(
        "a saved file in a watched folder -> applied by `luminaguard serve --source`",
        f"{save * 1000:.0f} ms median",
        None,
        "≤ 1 s",
        save <= 1.0,
    )
    emit(
        f"a git commit -> applied, `--interval {args.interval:g}` (each commit made just"
        " after the last was applied: the worst case)",
        f"{commit * 1000:.0f} ms median",
        f"the poll interval: {args.interval * 1000:.0f} ms",
        "≤ the interval + one pass",
        None,
    )
    print(
        "reproduce: .venv/bin/python bench/reconcile_bench.py"
        f" --saves {args.saves} --commits {args.commits} --interval {args.interval:g}"
    )


if __name__ == "__main__":
    main()
