"""Attacks on the shell gate found by the fourth security review (round 4).

Each command here is decided GREEN on commit 32eccb4 (by the starter policy or by
example 04's ``reporting`` policy) although running it makes git run a program the
repository's configuration names or write .git/index (U1, U2, U4: confirmed with git
2.39 and ``hypervisor/sandbox_env.py``'s ``git_environment()`` in a throwaway repository
whose ``.git/config`` names a ``diff.x.textconv`` / ``filter.x.clean`` stub and whose
``.gitattributes`` gives them to files), or makes dash create or truncate a file or run
a program no Green rule names (U3, U5, U6: confirmed with ``dash -c`` in a throwaway
folder). Every test here fails on 32eccb4; the commit "shell gate: the fourth review's 6
findings closed" makes each Red. Findings are numbered U1..U6."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from luminaguard.hypervisor.linux.env import git_environment
from luminaguard.policy.action import Action
from tests.security.engines import reporting, starter

STARTER = starter()
REPORTING = reporting()

# (command, what git or dash does with it)
STARTER_FINDINGS = [
    # U1. T5 closed `git log -p`/`--patch`/`-u`/`-c`/`-m`/`--cc`, but other options make
    #     git log (and git status) print patches too, and a patch runs the textconv driver
    #     of .gitattributes (textconv is on by default): `-U<n>`/`--unified=<n>` ("implies
    #     --patch"; the `-[a-zA-Z0-9]*[pucm]` test is lower-case only), `--binary`,
    #     `--remerge-diff`, `--diff-merges=<format>` (patches for merge commits), and
    #     `git status -v` (the staged diff). Confirmed: the textconv stub ran 1-4 times.
    ("git log -U1", "runs the repository's textconv driver for every changed file"),
    ("git log -U0", "runs the textconv driver"),
    ("git log --unified=1", "runs the textconv driver"),
    ("git log --binary", "runs the textconv driver"),
    ("git log --remerge-diff", "runs the textconv driver on merges"),
    ("git log --diff-merges=on", "runs the textconv driver on merges"),
    ("git log --diff-merges=m", "runs the textconv driver on merges"),
    ("git log --diff-merges=1", "runs the textconv driver (first-parent diffs)"),
    ("git log --diff-merges=separate", "runs the textconv driver on merges"),
    ("git status -v", "runs the textconv driver on the staged changes"),
    ("git status --verbose", "runs the textconv driver on the staged changes"),
    # U2. git's parse-options accepts any unambiguous prefix of a long option (builtins
    #     such as describe, status, ls-files), but the rule's `none` regex is anchored on
    #     the whole option name: `--dirty` is refused (T6), `--dirt`, `--dir` and `--di`
    #     are not. Confirmed: `git describe --tags --dirt` replaced .git/index (new inode,
    #     new mtime) after a tracked file was touched, like `--dirty`.
    ("git describe --dirt", "refreshes and writes .git/index"),
    ("git describe --dir", "refreshes and writes .git/index"),
    ("git describe --tags --di", "refreshes and writes .git/index"),
    # U3. A redirection of a compound command is handed to the simple commands inside it
    #     (parse.py::_Walker.redirected); a `case` whose items have no command (or that has
    #     no item at all) holds none, so its redirection reaches no part and is never
    #     judged. dash opens (creates or truncates) the target all the same, before it
    #     matches anything. Confirmed: `dash -c 'case a in b) ;; esac >pwn; ls'` creates pwn.
    ("case a in esac >pwn; ls", "dash creates or truncates pwn"),
    ("case a in b) ;; esac >pwn; ls", "dash creates or truncates pwn"),
    ("ls; case a in (b) esac >pwn", "dash creates or truncates pwn"),
    ("case a in esac >>pwn && ls", "dash creates pwn"),
    ("ls; (case a in esac) >/work/pwn", "the same inside a subshell"),
    ("ls; { case a in esac; } >pwn", "the same inside a brace group"),
    ("ls; sh -c 'case a in esac >pwn'", "the same inside sh -c"),
    # U5. The same for a shell: unwrap.py::Unwrapper._shell hands the shell's own
    #     redirections to the commands of its -c script, and an empty script (or one that
    #     is only a comment or blanks, or a bare `case`) has none, so `>pwn` is dropped.
    #     dash opens it before it runs sh. Confirmed: `dash -c "sh -c '' >pwn; ls"`
    #     creates pwn.
    ("sh -c '' >pwn; ls", "dash creates or truncates pwn"),
    ("sh -c '#' >pwn; ls", "dash creates or truncates pwn"),
    ("sh -c ' ' >>pwn && ls", "dash creates pwn"),
    ("ls; timeout 5 sh -c '' 2>pwn", "dash creates or truncates pwn"),
    ("ls; nice sh -c '' >>pwn", "dash creates pwn"),
    ("ls; sh -c 'sh -c \"\"' >pwn", "dash creates or truncates pwn"),
    ("ls; sh -c 'case a in esac' >pwn", "dash creates or truncates pwn"),
    # U6. GNU env stops reading options at its first NAME=VALUE ("+" in its getopt
    #     string): what follows is the program, even `--` or `-0`. unwrap.py::_env reads
    #     options after assignments too, so `env LANG=C -- ls` is `ls` to the gate and the
    #     program `--` (looked up on PATH, with the argument ls) to env. Confirmed with a
    #     file `--` on PATH: env ran it. Low harm while every PATH folder is the image's,
    #     but a program no Green rule names.
    ("env LANG=C -- ls", "env runs the program `--` with the argument ls"),
    ("env LANG=C -0 ls", "env runs the program `-0` with the argument ls"),
]

REPORTING_FINDINGS = [
    ("cat; case a in esac >/work/published/report.md", "truncates the published report"),
    ("ls; case a in x) esac >/work/published/report.md", "truncates the published report"),
    ("cat; sh -c '' >/work/published/report.md", "truncates the published report"),
]


@pytest.mark.parametrize(("command", "harm"), STARTER_FINDINGS)
def test_starter_decides_round4_attacks_red(command: str, harm: str) -> None:
    decision = STARTER.decide(Action(kind="run", command=command))
    assert decision.risk == "red", (command, harm, decision.rule)


@pytest.mark.parametrize(("command", "harm"), REPORTING_FINDINGS)
def test_reporting_decides_round4_attacks_red(command: str, harm: str) -> None:
    decision = REPORTING.decide(Action(kind="run", command=command))
    assert decision.risk == "red", (command, harm, decision.rule)


# --- U4. `git status` runs the repository's clean filter -----------------------------------


def _git(repo: Path, *args: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo), "GIT_CONFIG_NOSYSTEM": "1"}
    env["GIT_CONFIG_GLOBAL"] = "/dev/null"
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize("command", ["git status", "git status --short", "git ls-files --modified"])
def test_git_status_does_not_run_the_repositorys_clean_filter(tmp_path: Path, command: str) -> None:
    """U4. A `filter.NAME.clean` named in .git/config and given to files by .gitattributes
    runs whenever git hashes a work-tree file to compare it with the index: `git status`
    (and `git ls-files --modified`) do so for every tracked file whose stat data no longer
    matches the index, and with GIT_OPTIONAL_LOCKS=0 the refreshed stat data is never
    written back, so the filter runs on every `git status`. sandbox_env.py's overrides
    cannot name every driver, and its docstring's remedy (`--no-textconv`) is no option
    of status. Confirmed with git 2.39 and git_environment(): the filter ran on each
    `git status`. Either the starter decides these Red, or the sandbox's git must not run
    the filter (e.g. attributes read from an empty tree with GIT_ATTR_SOURCE, git >= 2.40)."""
    if STARTER.decide(Action(kind="run", command=command)).risk == "red":
        return
    repo = tmp_path / "repo"
    repo.mkdir()
    ran = tmp_path / "ran"
    filt = tmp_path / "filter"
    filt.write_text(f"#!/bin/sh\necho ran >> {ran}\ncat\n")
    filt.chmod(0o755)
    _git(repo, "init", "-q")
    _git(repo, "config", "filter.x.clean", str(filt))
    (repo / ".gitattributes").write_text("*.dat filter=x\n")
    (repo / "f.dat").write_text("data\n")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "1")
    os.utime(repo / "f.dat", (1, 1))  # stat data no longer matches the index
    ran.unlink(missing_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **git_environment()}
    subprocess.run(command.split(), cwd=repo, env=env, capture_output=True, check=False)
    assert not ran.exists(), f"{command} ran the repository's clean filter"
