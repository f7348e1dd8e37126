"""Attacks on the shell gate found by the third security review (round 3).

Each command here is decided GREEN on commit 3ee4824 (by the starter policy or by
example 04's ``reporting`` policy) although ``/bin/sh`` (dash 0.5.12) running it writes
files, runs a program no Green rule names, or makes git run a program; each case was
confirmed with ``dash -c`` in a throwaway folder (stub programs logging their argv on
PATH; git 2.39 with the sandbox's environment from ``hypervisor/sandbox_env.py``).
Every test here fails on 3ee4824; the commit "shell gate: the third review's 7 findings
closed" makes each Red. Findings are numbered T1..T7.
"""

from __future__ import annotations

import time

import pytest

from luminaguard.policy.action import Action
from tests.security.engines import reporting, starter

STARTER = starter()
REPORTING = reporting()

# (command, what dash does with it)
STARTER_FINDINGS = [
    # T1. A `for` loop assigns its variable, and an assignment to a variable of the
    #     environment (PATH, HOME, the GIT_* variables sandbox_env.py sets) changes it for
    #     every program the body runs. parse.py::_Walker.loop_or_case skips the
    #     variable_name child, so no assignment reaches shell_verdict.unsafe_assignment:
    #     `PATH=/x ls` is Red, `for PATH in /x; do ls; done` is Green.
    #     GIT_CONFIG_VALUE_0 is the sandbox's `core.fsmonitor=false`: the loop makes it a
    #     shell command that `git status` runs (self-contained, no file planted).
    (
        "for GIT_CONFIG_VALUE_0 in 'touch pwn'; do git status; done",
        "git status runs the fsmonitor hook `touch pwn` through the shell",
    ),
    (
        "for GIT_CONFIG_COUNT in 0; do git status; done",
        "drops every git override: the repository's core.fsmonitor/diff.external run",
    ),
    ("for PATH in /data/repo/bin; do ls; done", "runs the repository's file bin/ls"),
    ("for PATH in /work/scratch; do git log; done", "runs /work/scratch/git (if executable)"),
    ("sh -c 'for PATH in /data/repo/bin; do ls; done'", "the same inside sh -c"),
    # T2. `env -i` (or `env -`) and `env -u NAME` remove variables: unwrap.py::_env skips
    #     them as harmless options, and only variables *set* are checked. Removing
    #     GIT_CONFIG_COUNT (or the whole environment) drops sandbox_env.py's git overrides,
    #     so the repository's own core.fsmonitor / diff.external / pagers run again.
    ("env -i git status", "runs the repository's core.fsmonitor (confirmed: touch ran)"),
    ("env - git status", "same as -i"),
    ("env -u GIT_CONFIG_COUNT git status", "runs the repository's core.fsmonitor"),
    ("env --unset=GIT_CONFIG_COUNT git status", "runs the repository's core.fsmonitor"),
    # T3. `\<blank>` at the very start of a script: the grammar takes it for white space
    #     (an extra) before the root node, and parse.py::_every_byte_read reads only from
    #     root.start_byte, so the backslash is never seen. For dash it escapes the blank:
    #     `\ #` is the word ` #` (no comment), and what the grammar took for a comment is
    #     code. With `sh -c` the inner script may start so anywhere in the command.
    ("\\ #;rm y\nls", "dash runs ` #` (not found), then `rm y`, then ls"),
    ("\\\t#|rm y\nls", "dash pipes into `rm y`"),
    ("ls; sh -c '\\ #;rm y'", "the inner dash runs `rm y`"),
    ("ls; sh -c '\\ #;find . -delete'", "the inner dash deletes everything below ."),
    #     ... and `\ /usr/bin/ls` is the relative path ` /usr/bin/ls` (a folder named
    #     ` ` in the working folder), not the system's ls.
    ("\\ /usr/bin/ls", "runs the file './ /usr/bin/ls'"),
    ("\\\t/usr/bin/cat x", "runs the file './\\t/usr/bin/cat'"),
    #     ... the same with a byte order mark: tree-sitter skips U+FEFF at the start of its
    #     input (before the root node); for dash its three bytes are part of a word.
    ("\ufeff#;rm y\nls", "dash runs `\\ufeff#` (not found), then `rm y`"),
    ("ls; sh -c '\ufeff#;rm y'", "the inner dash runs `rm y`"),
    ("\ufeff/usr/bin/ls", "runs the file './\\ufeff/usr/bin/ls'"),
    # T4. Inside `[ ... ]` the grammar reads `>|` and `&>>` as redirections of a nested
    #     statement (test_command > redirected_statement); _no_redirection_inside lists
    #     only < > >> << >& <& &>, and _Walker.builtin flattens the rest into words.
    ("[ a >| f ]", "dash truncates or creates f"),
    ("[ x >| /work/pwn -o y ]", "dash creates /work/pwn"),
    ("[ a &>> f ]", "dash runs `[ a` in the background, then `>>f ]`: creates f"),
    ("[ a &>> /dev/null rm -f y ]", "dash runs `rm -f y ]`"),
    ("[ a &>>/dev/null sh -c 'rm y' ]", "dash runs `sh -c 'rm y' ]`"),
]

REPORTING_FINDINGS = [
    ("for PATH in /data/repo/bin; do cat /work/report.md; done", "runs the repository's cat"),
    ("\\ #;cp /work/report.md /work/published/\nls", "dash publishes"),
    ("cat; sh -c '\\ #;cp /work/report.md /work/published/'", "dash publishes"),
    ("\\ /bin/cat /work/report.md", "runs the file './ /bin/cat'"),
    ("\ufeff#;cp /work/report.md /work/published/\ncat /work/report.md", "dash publishes"),
]


@pytest.mark.parametrize(("command", "harm"), STARTER_FINDINGS)
def test_starter_decides_round3_attacks_red(command: str, harm: str) -> None:
    decision = STARTER.decide(Action(kind="run", command=command))
    assert decision.risk == "red", (command, harm, decision.rule)


@pytest.mark.parametrize(("command", "harm"), REPORTING_FINDINGS)
def test_reporting_decides_round3_attacks_red(command: str, harm: str) -> None:
    decision = REPORTING.decide(Action(kind="run", command=command))
    assert decision.risk == "red", (command, harm, decision.rule)


@pytest.mark.parametrize(
    "command", ["git diff", "git diff HEAD~1", "git show", "git log -p -1", "git blame a"]
)
def test_git_does_not_run_the_repositorys_diff_drivers(command: str) -> None:
    """T5. With the repository's ``.git/config`` naming them (the threat sandbox_env.py
    defends against for core.fsmonitor, hooks, pagers), plain read commands run programs:
    ``git diff`` runs ``diff.external`` without ``--ext-diff``, and ``git diff``,
    ``git show``, ``git log -p`` and ``git blame`` run a ``diff.NAME.textconv`` named by
    ``.gitattributes`` without ``--textconv`` (textconv is on by default). Confirmed with
    git 2.39 and the sandbox's environment (``touch`` ran for each command here).
    docs/security.md says the starter refusing ``--textconv``/``--ext-diff`` covers it;
    it does not. These should need ``--no-ext-diff``/``--no-textconv``, or be Red."""
    decision = STARTER.decide(Action(kind="run", command=command))
    assert decision.risk == "red", decision.rule


def test_git_describe_dirty_does_not_write_the_index() -> None:
    """T6. ``git describe --dirty`` refreshes the index and writes ``.git/index`` back
    (describe.c takes the index lock whatever GIT_OPTIONAL_LOCKS says): confirmed with
    git 2.39 and the sandbox's environment after touching a tracked file, where
    ``git status`` (GIT_OPTIONAL_LOCKS=0) leaves it alone. A write in the repository from
    a Green "read-only" command."""
    decision = STARTER.decide(Action(kind="run", command="git describe --dirty"))
    assert decision.risk == "red", decision.rule


# --- T7. super-linear parse (R9's extglob filter misses these) ---------------------------------


@pytest.mark.parametrize(
    ("unit", "seconds_at_16k"),
    [
        ("a`>", 15.8),  # backquote then redirection: 1.9 s at 8 KiB, 15.8 s at 16 KiB
        ("a=(", 2.6),  # bash array assignments (dash has none)
        ("$[", 1.5),  # bash's old arithmetic (dash has none)
    ],
)
def test_error_recovery_does_not_make_the_parse_quadratic(unit: str, seconds_at_16k: float) -> None:
    """tree-sitter-bash's error recovery is quadratic on these repeated units: each
    16 KiB command (the most the gate admits) takes seconds of one core per decision
    (measured on 3ee4824, times above). It should be Red quickly, as R9."""
    command = (unit * (16384 // len(unit) + 1))[:16384]
    start = time.perf_counter()
    decision = STARTER.decide(Action(kind="run", command=command))
    elapsed = time.perf_counter() - start
    assert decision.risk == "red"
    assert elapsed < 0.5, (unit, elapsed)
