"""Attacks on the shell gate found by the second security review (round 2).

Each command here was decided GREEN on commit a2ea37a (by the starter policy or by
example 04's ``reporting`` policy) although ``/bin/sh`` (dash 0.5.12) running it deletes
or writes files or runs a program no Green rule names; each case was confirmed with
``dash -c`` in a throwaway folder (git 2.39, GNU sed/find), and all 51 failed there. The
commit "shell gate: the second review's 12 findings closed" makes each Red (or refused).
Findings are numbered R1..R12 (grouped, not sorted).
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
    # R1. Inside `[ ... ]` the grammar accepts `||`, `|`, `&` and newlines as parts of the
    #     test expression (test_command, binary_expression); parse.py::_Walker.builtin
    #     flattens the named words and _no_redirection_inside looks only for < and >.
    #     For dash these end the `[` command: what follows is a command of its own.
    ("[ -f x || rm -f y ]", "`[` fails (missing ]), then dash runs `rm -f y ]`"),
    ('[ -f x || sh -c "rm y" ]', "dash runs `sh -c 'rm y' ]`"),
    ("[ -e '' || rm -r y ]", "dash runs `rm -r y ]`"),
    ("[ a -o\nrm -f y ]", "newline: dash runs `rm -f y ]` as the next command"),
    ("[ a =\nrm ]", "newline: dash runs `rm ]` (deletes the file `]`)"),
    ("[ x -a\nsh -e -c ]", "newline: dash runs `sh -e -c ]` (the script `]`)"),
    ("[ -n x | sh ]", "dash pipes into `sh ]`: runs the file `]` as a script"),
    ("[ x -f -lt & rm ]", "dash runs `[` in the background, then `rm ]`"),
    # R2. tree-sitter-bash reads `>&-` / `<&-` (bash's close-fd) as one operator and takes
    #     the next word as its destination; parse.py::_Walker.redirect records it as the
    #     "target" of a redirect that neither writes nor duplicates, so no rule sees it.
    #     For dash `2>&-` is complete and the next word is an argument.
    ("find . 2>&- -delete", "closes stderr; find deletes every file below ."),
    ("find . >&- -delete", "find deletes every file below ."),
    ("find . <&- -delete", "find deletes every file below ."),
    ("git log 2>&- --output=pwn", "git writes the file pwn"),
    ("git log -p >&- --ext-diff", "git runs the external diff program"),
    ("sed s/a/b/ f 2>&- -i", "sed edits f in place"),
    # R3. A word that ends in a digit glued to `>`/`<` (`-ib2>&1`, `-ix2>`, `10>`) is a
    #     file_descriptor node to the grammar, which redirect() skips; dash takes only a
    #     single digit as a file descriptor, so `-ib2` is an argument (GNU sed: -i with
    #     the backup suffix b2).
    ("sed s/a/b/ f -ib2>&1", "sed edits f in place (backup fb2)"),
    ("sed p f -i2>&1", "sed edits f in place (backup f2)"),
    ("sed p f -ix2>/dev/null", "sed edits f in place (backup fx2)"),
    # R4. A redirection's target split by the grammar (`'/usr/bin/'\ls` is two nodes, as in
    #     F18) when the redirection comes first: the rest of the target becomes the
    #     command's name. check_blanks lets a word touch a redirection (`glued`) on either
    #     side; dash reads `</usr/bin/ls` and runs the next word.
    ("<'/usr/bin/'\\ls rm -f y", "stdin from /usr/bin/ls; dash runs `rm -f y`"),
    ("</usr/bin/''\\ls rm -f y", "stdin from /usr/bin/ls; dash runs `rm -f y`"),
    ("<\"/usr/bin/\"\\cat sh -c 'rm y'", "dash runs `sh -c 'rm y'`"),
    # R5. `!` or `{` glued to a quoted word: the grammar reads negation / a brace group
    #     and the quoted word as the program; dash reads one word `!/usr/bin/ls`, a
    #     relative path (a file of the repository or work folder), as F11.
    ("!'/usr/bin/ls'", "runs the file ./!/usr/bin/ls"),
    ('!"/usr/bin/ls"', "runs the file ./!/usr/bin/ls"),
    ("{'/usr/bin/ls'\n}", "runs the file ./{/usr/bin/ls (then a syntax error)"),
    ("{/usr/bin/ls\n}", "runs the file ./{/usr/bin/ls (then a syntax error)"),
    #     ... and `[` glued to the next word: the grammar reads a test_command (program
    #     `[`), dash the program `[./x`.
    ("[./x ]", "runs the file ./[./x with the argument ]"),
    # R6. Words the grammar takes for assignments that are no assignments to dash (`+=`,
    #     a non-ASCII name, a subscript): parse.py::_Walker.pair keeps the name's text, and
    #     LANG / LC_* are "safe"; dash runs the whole word as the program, here a path.
    ("LANG+=./x ls", "runs the file ./LANG+=./x with the argument ls"),
    ("LC_é=./x ls", "runs the file ./LC_é=./x"),
    ("LC_x+=./x ls", "runs the file ./LC_x+=./x"),
    # R7. `git <subcommand> --help` is `git help <subcommand>`, which runs man (and man its
    #     pager and groff): an external program the rule says is refused.
    ("git log --help", "git execs `man git-log`"),
    ("git status --help", "git execs `man git-status`"),
    # R12. F14's `--format=...%G` test misses git's placeholder modifiers: `%+GS`, `%-GS`
    #      and `% GS` (add or drop a newline or space when non-empty) are the same
    #      signature placeholder, and git runs gpg (gpg.program) to verify signed commits.
    ("git log --format=%+GS", "runs gpg on signed commits"),
    ("git log '--format=% GK'", "runs gpg on signed commits"),
    ("git show --format=%-GS HEAD", "runs gpg on a signed commit"),
    ("git log --pretty=tformat:%+GG", "runs gpg on signed commits"),
]

REPORTING_FINDINGS = [
    ("find /work/published 2>&- -delete", "deletes the published reports"),
    ("find /work 2>&- -delete", "deletes the work folder"),
    ("</usr/bin/''\\cat cp /work/report.md /work/published/", "dash publishes"),
    ("<'/bin/'\\ls cp /work/report.md /work/published/", "dash publishes"),
    ("!'/bin/cat' /work/report.md", "runs the file ./!/bin/cat"),
    ("LANG+=./x cat /work/report.md", "runs the file ./LANG+=./x"),
]


@pytest.mark.parametrize(("command", "harm"), STARTER_FINDINGS)
def test_starter_decides_round2_attacks_red(command: str, harm: str) -> None:
    decision = STARTER.decide(Action(kind="run", command=command))
    assert decision.risk == "red", (command, harm, decision.rule)


@pytest.mark.parametrize(("command", "harm"), REPORTING_FINDINGS)
def test_reporting_decides_round2_attacks_red(command: str, harm: str) -> None:
    decision = REPORTING.decide(Action(kind="run", command=command))
    assert decision.risk == "red", (command, harm, decision.rule)


# --- R8. a decision that raises ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["ls \ud800", "cat \udbff\udfff x", "ls; echo \ud800"])
def test_a_lone_surrogate_is_decided_not_crashed(command: str) -> None:
    """A lone surrogate outside U+DC80..U+DCFF (JSON's ``"\\ud800"`` decodes to one) makes
    parse.py::parse_into's ``encode("utf-8", "surrogateescape")`` raise UnicodeEncodeError
    out of PolicyEngine.decide; it should be Red."""
    decision = STARTER.decide(Action(kind="run", command=command))
    assert decision.risk == "red"


# --- R9. super-linear parse --------------------------------------------------------------------


def test_extglob_openers_do_not_make_the_parse_quadratic() -> None:
    """``case a in ?(?(?(...`` (also ``@(``, ``*(``, ``!(``, ``+(a|``, ``[[ a == @(...``):
    tree-sitter-bash's error recovery is quadratic here. 16 KB take about 2 s, the 64 KB
    the gate admits about 40 s per decision (one core), for a command an agent chooses."""
    command = "case a in " + "?(" * 8000  # 16 KB
    start = time.perf_counter()
    decision = STARTER.decide(Action(kind="run", command=command))
    elapsed = time.perf_counter() - start
    assert decision.risk == "red"
    assert elapsed < 0.5, elapsed


# --- R10, R11. template values that leave their one word ---------------------------------------
#
# R10. template.py::_context quotes by the innermost node around the marker. After a `$`
#      inside double quotes (`"${{ v }}"`, e.g. `"Total: ${{ params.price }}"`) that node is
#      the simple_expansion's variable_name, inside a string: `_double_quoted` escapes
#      `$ \\ " backquote` but not `(`, so the value `(rm y)` makes `"$(rm y)"`. Inside
#      `"${x:-{{ v }}}"` the innermost node is a word: the value is single-quoted, but
#      single quotes are literal inside a double-quoted `${...}` for dash, which runs
#      `$(rm y)` there. Both confirmed with dash (the commands are Red, as undecidable, but
#      the value is code, and a person approving sees it quoted).
DOUBLE_QUOTED_ESCAPES = [
    ('echo "Total: ${{ params.v }}"', "(rm y)"),
    ('echo "${x:-{{ params.v }}}"', "$(rm y)"),
]


@pytest.mark.parametrize(("template", "value"), DOUBLE_QUOTED_ESCAPES)
def test_a_value_cannot_become_a_command_substitution(template: str, value: str) -> None:
    from luminaguard.config.render import TemplateProblem, render_command_text

    try:
        rendered = render_command_text(template, {"params": {"v": value}})
    except TemplateProblem:
        return  # refusing the template is a fix too
    assert "$(" not in rendered.replace("\\$", ""), (template, value, rendered)


# R11. template.py::_in_shell_arguments recognises a shell by the raw text of a word with
#      quotes stripped only at its ends: `s\h`, `'s'h`, `"s"h` are `sh` to dash (and to
#      parse.py, which parses their -c script) but not to the template, so the value is
#      placed in the script as text: code for the inner shell.
SHELL_NAME_ESCAPES = [
    ("s\\h -c 'ls {{ params.v }}'", "x; rm y", "rm"),
    ("'s'h -c 'ls {{ params.v }}'", "x; rm y", "rm"),
    ('"s"h -c "ls {{ params.v }}"', "x; rm y", "rm"),
    ('/bin/s\\h -c "ls {{ params.v }}"', "x; rm y", "rm"),
]


@pytest.mark.parametrize(("template", "value", "leaked"), SHELL_NAME_ESCAPES)
def test_a_value_given_to_a_spelled_shell_stays_one_word(
    template: str, value: str, leaked: str
) -> None:
    from luminaguard.config.render import TemplateProblem, render_command_text
    from luminaguard.shell import parse_command

    try:
        rendered = render_command_text(template, {"params": {"v": value}})
    except TemplateProblem:
        return
    programs = [command.program for command in parse_command(rendered).commands]
    assert leaked not in programs, (template, value, rendered, programs)


def test_a_spelled_shell_template_cannot_make_a_harmful_command_green() -> None:
    """R11 with R2: a value that is a Green-looking script deletes everything in `.`."""
    from luminaguard.config.render import TemplateProblem, render_command_text

    try:
        rendered = render_command_text(
            "s\\h -c 'ls {{ params.v }}'", {"params": {"v": "x; find . 2>&- -delete"}}
        )
    except TemplateProblem:
        return
    decision = STARTER.decide(Action(kind="run", command=rendered))
    assert decision.risk == "red", (rendered, decision.rule)
