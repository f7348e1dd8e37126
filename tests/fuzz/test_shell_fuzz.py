"""The shell parser on random compositions: no exception, and no Red command hides in a Green."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from hypothesis import event, given
from hypothesis import strategies as st

from luminaguard.config.models.policy import PolicySpec
from luminaguard.policy.action import Action
from luminaguard.policy.engine import PolicyEngine
from luminaguard.shell import ParsedCommand, parse_command
from tests.fuzz import fuzz

GREEN = ["ls", "cat", "echo", "grep", "wc"]
RED = ["rm", "curl", "dd", "python3", "sh"]
ENGINE = PolicyEngine(
    "p",
    PolicySpec.model_validate(
        {"rules": [{"id": "reads", "match": {"program": GREEN}, "risk": "green", "reason": "r"}]}
    ),
)


@dataclass(frozen=True)
class Script:
    """Shell text and whether a Red program runs somewhere in it."""

    text: str
    red: bool


def _spellings(name: str) -> list[str]:
    """Ways of writing a program's name that the shell reads as that name."""
    return [name, f"'{name}'", f'"{name}"', f"\\{name}", f"{name[0]}''{name[1:]}",
            f'{name[0]}""{name[1:]}', f"/usr/bin/{name}", f"{name[0]}\\{name[1:]}"]  # fmt: skip


PROGRAM = st.one_of(
    st.sampled_from(GREEN).map(lambda name: (name, False)),
    st.sampled_from(RED).map(lambda name: (name, True)),
).flatmap(lambda pr: st.sampled_from(_spellings(pr[0])).map(lambda text: Script(text, pr[1])))
WORD = st.sampled_from(
    ["a", "-l", "'a b'", '"a b"', "$HOME", '"$X"', "${X:-y}", "x\\ y", "*.txt", "~",
     "a=b", "--", "'rm'", "\"$(rm)\"", "'$(rm)'", "{a,b}", "a#c", "''", "\\;", "'|'", "rm"]
)  # fmt: skip
REDIRECT = st.sampled_from(
    ["> /dev/null", "2>&1", "< in.txt", "> /tmp/out", ">> log", "2> /dev/null", "<<< x",
     ">&2", "&> /dev/null", "<> f"]
)  # fmt: skip
ASSIGNMENT = st.sampled_from(["", "", "", "LANG=C ", "PATH=/tmp ", "X=1 ", "LC_ALL=C "])


@st.composite
def simple(draw: st.DrawFn) -> Script:
    program = draw(PROGRAM)
    words = draw(st.lists(WORD, max_size=3))
    redirects = draw(st.lists(REDIRECT, max_size=2))
    text = " ".join([draw(ASSIGNMENT) + program.text, *words, *redirects])
    return Script(text, program.red)


def _compose(inner: st.SearchStrategy[Script]) -> st.SearchStrategy[Script]:
    pair = st.tuples(
        inner, inner, st.sampled_from([" | ", " && ", " || ", "; ", " & ", "\n", "|&"])
    )
    wrap = st.tuples(
        inner,
        st.sampled_from(
            ["({})", "{{ {}; }}", "echo $({})", "echo `{}`", "if {}; then ls; fi",
             "for x in a b; do {}; done", "while {}; do :; done", "! {}", "case a in a) {};; esac",
             "env {}", "timeout 5 {}", "nice -n 1 {}", "command {}", "time {}", "nohup {}",
             "cat <({})", "echo \"$({})\"", "x=$({})"]
        ),
    )  # fmt: skip
    return st.one_of(
        pair.map(lambda p: Script(p[0].text + p[2] + p[1].text, p[0].red or p[1].red)),
        wrap.map(lambda w: Script(w[1].format(w[0].text), w[0].red)),
        inner.map(lambda s: Script(f"sh -c {shlex.quote(s.text)}", s.red)),  # unwrapped
        inner.map(lambda s: Script(f"bash -c {shlex.quote(s.text)}", s.red)),
    )


SCRIPTS = st.recursive(simple(), _compose, max_leaves=6)


def _never_raises(text: str) -> ParsedCommand:
    parsed = parse_command(text)
    assert parsed.decidable == (parsed.undecidable is None)
    assert parsed.decidable or not parsed.commands
    return parsed


@fuzz(300)
@given(script=SCRIPTS)
def test_a_red_command_anywhere_makes_the_whole_red(script: Script) -> None:
    parsed = _never_raises(script.text)
    verdict = ENGINE.verdict(script.text)
    decision = ENGINE.decide(Action(kind="run", command=script.text))
    assert decision == verdict.decision
    event(f"{decision.risk} ({'decidable' if parsed.decidable else 'undecidable'})")
    if decision.risk == "green":
        assert not script.red, (script.text, parsed)
        assert parsed.decidable and verdict.parts
        assert all(part.decision.risk == "green" for part in verdict.parts)
        assert all(part.simple.program.rsplit("/", 1)[-1] in GREEN for part in verdict.parts)


@fuzz(200)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab $'\"\\`(){};|&<>\n\t#=*?[]!~-0")), max_size=60)
)
def test_any_text_parses_or_is_undecidable(text: str) -> None:
    parsed = _never_raises(text)
    decision = ENGINE.decide(Action(kind="run", command=text))
    if decision.risk == "green":
        assert parsed.decidable


@fuzz(100)
@given(text=st.text(max_size=200))
def test_any_unicode_parses_or_is_undecidable(text: str) -> None:
    _never_raises(text)
    ENGINE.decide(Action(kind="run", command=text))
