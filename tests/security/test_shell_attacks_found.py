"""Attacks on the tree-sitter-bash shell gate found by a security review.

Each command here was decided GREEN (by the starter policy or by example 04's
``reporting`` policy) although ``/bin/sh`` (dash) running it writes or deletes files,
runs a program no Green rule names, or reaches the network. Every case was confirmed by
running it with ``dash -c`` in a throwaway folder (the bash/git/gpg cases with the host's
bash 5.2, git 2.39, GNU diffutils). Every case here was Green (and harmful) on commit
bea4ec6, the first parsed gate, and failed there; the commit "shell gate: the review's 21
findings closed" makes each Red (or, for templates, refused or one word).
Findings are numbered F1..F21 as in the review report (the list is grouped by finding,
not sorted).
"""

from __future__ import annotations

import pytest

from luminaguard.policy.action import Action
from tests.security.engines import reporting, starter

STARTER = starter()
REPORTING = reporting()

# (command, what dash does with it)
STARTER_FINDINGS = [
    # F1. Words after a redirection's target are arguments of the command, but the grammar
    #     hangs them on the file_redirect node (several `destination`s) and
    #     parse.py::_Walker.redirect reads only the first: the rules never see them.
    ("git log >/dev/null --output=pwn", "git writes the file pwn"),
    ("git log -p 2>/dev/null --ext-diff", "runs the external diff program"),
    ("find . >/dev/null -delete", "deletes every file below ."),
    ("find . 2>/dev/null -exec rm -f {} +", "runs rm on every file"),
    ("find . 2>&1 -delete", "the common `2>&1` hides -delete"),
    ("git log 2>&1 --output=pwn", "git writes the file pwn"),
    ("sed p >/dev/null -i f", "rewrites the file f in place"),
    ("sed p </dev/null -i f", "an input redirection hides the -i too"),
    # F2. bash's `&>` is no operator in dash: `ls &>/dev/null rm x` is `ls &` then
    #     `>/dev/null rm x`, which runs rm.
    ("ls &>/dev/null rm x", "dash runs `rm x`"),
    ("ls &>>/dev/null rm x", "dash runs `rm x`"),
    # F3. A redirection with no command (`> f`) truncates or creates f, but
    #     parse.py::_Walker.redirected collects the redirections of a body-less
    #     redirected_statement and emits no command for them.
    ("ls; >f", "truncates f to nothing"),
    ("ls && 2>f", "truncates f"),
    ("if true; then >>f; fi", "creates f"),
    ("ls &\\\n> pwn", "`&`, backslash-newline, `> pwn`: creates pwn"),
    # F4. Inside `[ ... ]` the grammar reads `>`/`<` as [[-style comparisons (anonymous
    #     operators parse.py::_Walker.builtin skips); for dash they redirect `[`'s output.
    ("[ a > f ]", "truncates or creates f"),
    ("[ a >> f ]", "creates f"),
    ("[ -f x > f ]", "truncates or creates f"),
    ("test -n a; [ x > f ]", "truncates or creates f"),
    # F5. case patterns that are strings or concatenations are skipped unchecked
    #     (parse.py::_Walker.loop_or_case), but dash expands each pattern it tries.
    ('case a in "$(rm y)") ls;; esac', "dash runs `rm y`"),
    ('case a in "`rm y`") ls;; esac', "dash runs `rm y`"),
    ('case a in b) ls;; "$(rm y)") ls;; esac', "dash runs `rm y`"),
    ('case a in "$(rm y)"|b) ls;; esac', "dash runs `rm y`"),
    # F6. Backslash-newline between `$` and `(`/`{`: the grammar sees a lone `$` and text;
    #     words.py removes the pair and keeps `$(...)` as literal text. dash joins the
    #     lines first and expands. Also in assignment values and here-document bodies.
    ('echo "$\\\n(rm y)"', "dash runs `rm y`"),
    ('LANG="$\\\n(rm y)" ls', "an assignment's value: dash runs `rm y`"),
    ("cat <<E\na$\\\n(rm y)\nE", "dash runs `rm y` while expanding the body"),
    #     `${X:=...}` hidden the same way sets a variable that a later plain `$X` (taken
    #     for an unset variable of the environment) passes on.
    ('echo "$\\\n{X:=--output=pwn}"; git log $X', "git writes the file pwn"),
    # F7. Here-document ends: the grammar and dash end the body on different lines.
    #     Quote removal in the delimiter word: dash ends at `EOF`, the grammar at `E"O"F`.
    ('cat <<E"O"F\nEOF\nrm y\nE"O"F', "dash runs `rm y` after the here-document"),
    ("cat <<E'F'\nEF\nrm y\nE'F'", "dash runs `rm y` after the here-document"),
    #     The grammar ends the body at a line with blanks around the delimiter, or at a line
    #     dash joins to the one before; dash needs the exact line, so what follows is an
    #     expanding here-document body to dash and Green commands to the grammar.
    ("cat << ls\n ls\necho '$(rm y)'\nls", "leading blank: dash expands $(rm y)"),
    ("cat <<ls\nls \necho '$(rm y)'\nls", "trailing blank: dash expands $(rm y)"),
    ("cat <<ls\n\tls\necho '$(rm y)'\nls", "leading tab: dash expands $(rm y)"),
    ("cat <<ls\nls\t\necho '$(rm y)'\nls", "trailing tab: dash expands $(rm y)"),
    ("cat <<ls\nfoo\\\nls\necho '$(rm y)'\nls", "a joined line: dash expands $(rm y)"),
    # F8. Backquotes in an unquoted here-document: the grammar leaves them in the
    #     heredoc_content text (no command_substitution node); parse.py::heredoc_body
    #     checks only named children; dash runs the command.
    ("cat <<E\n`rm y`\nE", "dash runs `rm y`"),
    ("cat <<E\n${HOME}`rm y`\nE", "dash runs `rm y`"),
    # F9. A plain `$NAME` is kept as written and taken for one word, but unquoted it is
    #     split into fields (and globbed). dash always sets IFS (blank, tab, newline), so
    #     `x$IFS-y` is the two words `x` and `-y`: options hidden from the `none` tests.
    ("find .$IFS-delete", "deletes every file below ."),
    ("find .${IFS}-delete", "deletes every file below ."),
    ("sed p f$IFS-i", "GNU sed permutes: edits f in place"),
    ("git log HEAD$IFS--output=pwn", "git writes the file pwn"),
    #     ... and an unset variable (any name the sandbox does not set) expands to nothing,
    #     so the rule's regex sees `-de${U}lete` while find gets `-delete`.
    ("find . -de${U}lete", "find deletes every file below ."),
    ("git log --out${U}put=pwn", "git writes the file pwn"),
    # F10. Variables a command assigns for a `sh -c` it runs (LANG, TZ... are "safe") are
    #      unknown variables to the inner script's WordReader (unwrap.py::_shell), so
    #      `$TZ` passes as a word of the environment while its value is an option.
    ("TZ=-delete sh -c 'find . $TZ'", "find deletes every file below ."),
    ("env TZ=-delete sh -c 'find . \"$TZ\"'", "find deletes every file below ."),
    ("LANG=--output=pwn sh -c 'git log $LANG'", "git writes the file pwn"),
    # F11. `./ls` and `x/../cat` normalise (shell_match.py::program_matches) to the bare
    #      name, which a program glob matches; dash runs the file in the folder instead.
    ("./ls", "runs the file ./ls, not /usr/bin/ls"),
    ("x/../cat /etc/passwd", "runs the file ./cat"),
    #      normpath is lexical: with a symlink data/repo/link -> a/b/c/d/e/f/g in a
    #      repository, this is /data/repo/a/b/c/usr/bin/ls to the kernel.
    ("/data/repo/link/../../../usr/bin/ls", "runs a file of the repository"),
    #      unwrap.py goes further: a wrapper or shell is recognised by its basename
    #      wherever it lives, so any file named env/sh/timeout/nice/nohup... runs Green
    #      (a repository under review may well hold an executable tools/env).
    ("/data/repo/tools/env ls", "runs /data/repo/tools/env"),
    ("/work/scratch/sh -c ls", "runs /work/scratch/sh"),
    ("./timeout 5 ls", "runs ./timeout"),
    ("x/../nohup ls", "runs ./nohup"),
    # F12. Shell options that load startup files pass unwrap.py::_script as harmless: the
    #      file runs before the -c script. --rcfile names any file (the starter's
    #      fs-scratch-write makes writing /work/scratch/* Green).
    ("bash --rcfile /work/scratch/evil -i -c ls", "bash sources /work/scratch/evil"),
    ("bash --init-file /work/scratch/evil -ic ls", "bash sources /work/scratch/evil"),
    ("bash -i -c ls", "bash sources ~/.bashrc"),
    ("sh -l -c ls", "dash sources /etc/profile and ~/.profile"),
    ("sh -i -c ls", "dash sources $ENV"),
    # F13. `bash -c` scripts are decided as if dash ran them. bash's test/[ -v and
    #      printf -v evaluate an array subscript, running its command substitution; bash
    #      opens /dev/tcp/HOST/PORT as a network connection.
    ("bash -c \"test -v 'a[\\$(rm y)]'\"", "bash runs `rm y`"),
    ("bash -c \"[ -v 'a[\\$(rm y)]' ]\"", "bash runs `rm y`"),
    ("bash -c \"printf -v 'a[\\$(rm y)]' x\"", "bash runs `rm y`"),
    ("bash -c 'cat </dev/tcp/192.0.2.1/80'", "bash connects to 192.0.2.1:80"),
    # F17. A line that starts with a backslash-escaped character is read by the grammar
    #      as one more word of the command before it, the newline inside the word node
    #      (so parse.py::_Walker.check_blanks, which looks between nodes, misses it);
    #      dash ends the command at the newline and runs the next line.
    ("ls\n\\rm y", "dash runs `rm y`"),
    ("ls a\n\\r\\m y", "dash runs `rm y`"),
    ("cat /etc/hostname\n\\sh -c 'rm y'", "dash runs `sh -c 'rm y'`"),
    # F18. A quoted string followed at once by a backslash-escaped character is two words
    #      to the grammar (`'-'` and `\delete`), one word to dash (`-delete`): the option
    #      is hidden from the `none` tests.
    ("find . '-'\\delete", "find deletes every file below ."),
    ('find . "-"\\delete', "find deletes every file below ."),
    ("find . -'de'\\lete", "find deletes every file below ."),
    ("git log '--'\\output=pwn", "git writes the file pwn"),
    # F19. Backslash-newline inside a word: the grammar makes two words of `-de\<nl>lete`
    #      and parse.py::_Walker.check_blanks takes the `\<nl>` gap for a blank; dash
    #      joins the lines into the one word `-delete`.
    ("find . -de\\\nlete", "find deletes every file below ."),
    ("find . -\\\ndelete", "find deletes every file below ."),
    ("git log --out\\\nput=pwn", "git writes the file pwn"),
    #      The same split turns the sed rule's checked script into any script.
    ("sed p\\\n';e touch pwn' f", "sed runs `touch pwn` (script `p;e touch pwn`)"),
    ("sed s/a/b/\\\nwpwn f", "sed writes the file pwn (script `s/a/b/wpwn`)"),
    # F20. An escaped tab: the grammar takes `\<tab>` for a blank and `#...` after it for a
    #      comment to the end of the line; dash reads the word `<tab>#x` and the words after.
    ("find . \\\t#x -delete", "find deletes every file below ."),
    ("git log \\\t#x --output=pwn", "git writes the file pwn"),
    # F21. A word that starts with `-` and runs straight into `<<` is dropped by the
    #      grammar (it is no named child of the command, so parse.py::_Walker.command never
    #      reads it); dash passes it as an argument.
    ("find . -delete<<E\nq\nE", "find deletes every file below ."),
    ("find . -name x -delete<<E\nq\nE", "find deletes the files named x"),
    ("sed p f -i<<E\nq\nE", "sed edits f in place"),
    # F14. Options of the Green read-only programs that run other programs.
    ("git log --show-signature", "runs gpg on signed commits (creates ~/.gnupg, temp files)"),
    ("git log --format=%GS", "a signature placeholder runs gpg too"),
    ("git show --show-signature HEAD", "runs gpg"),
    ("diff -l a b", "GNU diff --paginate runs /usr/bin/pr"),
]

REPORTING_FINDINGS = [
    ("./sh /data/scripts/report.sh /work/report.md", "runs the file ./sh"),
    ("find /work >/dev/null -delete", "deletes /work"),
    ("cat &>/dev/null cp /work/report.md /work/published/report.md", "dash publishes"),
    ("cat <<ls\nls \ncat '$(rm y)'\nls", "dash expands $(rm y) in the body"),
    ("cat; >/work/published/report.md", "creates the published report"),
    ("find /work/published$IFS-delete", "deletes the published reports"),
    ("find /work/published -delete<<E\nq\nE", "deletes the published reports"),
    ("find /work/published '-'\\delete", "deletes the published reports"),
    ("find /work/published -de\\\nlete", "deletes the published reports"),
    ("find /work/published \\\t#x -delete", "deletes the published reports"),
    ("cat /work/report.md\n\\cp /work/report.md /work/published/", "dash publishes"),
    ("/data/repo/env cat /work/report.md", "runs /data/repo/env"),
    ("cat <<E\n`cp /work/report.md /work/published/`\nE", "dash publishes"),
    ("TZ=-delete sh -c 'find /work/published $TZ'", "deletes the published reports"),
    ('ls "$\\\n(cp /work/report.md /work/published/)"', "dash publishes"),
    ("sh -l -c 'cat /work/report.md'", "dash sources /etc/profile and ~/.profile"),
    ("bash -c 'cat </dev/tcp/192.0.2.1/80'", "bash connects to 192.0.2.1:80"),
]


@pytest.mark.parametrize(("command", "harm"), STARTER_FINDINGS)
def test_starter_decides_found_attacks_red(command: str, harm: str) -> None:
    decision = STARTER.decide(Action(kind="run", command=command))
    assert decision.risk == "red", (command, harm, decision.rule)


@pytest.mark.parametrize(("command", "harm"), REPORTING_FINDINGS)
def test_reporting_decides_found_attacks_red(command: str, harm: str) -> None:
    decision = REPORTING.decide(Action(kind="run", command=command))
    assert decision.risk == "red", (command, harm, decision.rule)


# --- F15. template values that leave their one word ---------------------------------------------
#
# A backslash in the template right before a value escapes the first character of the
# quoted value (the opening `'` of shlex.quote, or the `\` that escapes a `"` inside double
# quotes), so the rest of the value is shell syntax. template.py::_context does not look at
# the character before the marker. A value in command position (`{{ v }} args`) that looks
# like NAME=VALUE is left unquoted by shlex.quote and becomes an assignment. A value the
# grammar places after a here-document that dash is still reading is quoted as a word but
# expanded by dash as here-document text.

TEMPLATE_ESCAPES = [
    # (template, value, a program that must not appear)
    # a value in a `sh -c '...'` script is one word for the outer shell, code for the inner
    ("sh -c 'ls {{ params.v }}'", "x; rm y", "rm"),
    ('sh -c "ls {{ params.v }}"', "x; rm y", "rm"),
    ('echo "\\{{ params.v }}"', '\\" ; rm y #', "rm"),
    ("echo \\{{ params.v }}", "x ; rm y #", "rm"),
    ("{{ params.v }} /work/f", "LANG=C", "/work/f"),
]


@pytest.mark.parametrize(("template", "value", "leaked"), TEMPLATE_ESCAPES)
def test_a_template_value_stays_one_word(template: str, value: str, leaked: str) -> None:
    from luminaguard.config.render import TemplateProblem, render_command_text
    from luminaguard.shell import parse_command

    try:
        rendered = render_command_text(template, {"params": {"v": value}})
    except TemplateProblem:
        return  # refusing the template is a fix too
    parsed = parse_command(rendered)
    programs = [command.program for command in parsed.commands]
    assert leaked not in programs, (template, value, rendered, programs)


TEMPLATE_GREEN_ATTACKS = [
    # the escape above combined with F1: Green, and find deletes everything in .
    ('find "\\{{ params.v }}" -type f', '\\" . >/dev/null -delete #'),
    # F7: the value is quoted as a word, dash expands it in a here-document
    ("cat <<ls\nls \necho {{ params.v }}\nls", "$(rm y)"),
]


@pytest.mark.parametrize(("template", "value"), TEMPLATE_GREEN_ATTACKS)
def test_a_template_value_cannot_make_a_harmful_command_green(template: str, value: str) -> None:
    from luminaguard.config.render import TemplateProblem, render_command_text

    try:
        rendered = render_command_text(template, {"params": {"v": value}})
    except TemplateProblem:
        return
    decision = STARTER.decide(Action(kind="run", command=rendered))
    assert decision.risk == "red", (template, value, rendered, decision.rule)


def test_a_long_and_list_is_decided_not_crashed() -> None:
    """F16. `ls && ls && ...` nests one list per `&&`: parse.py's walker recurses once per level
    and a 9 kB command raises RecursionError out of PolicyEngine.decide (the runner does
    not catch it). Anything too deep to walk should be Red, not an exception."""
    command = "ls" + " && ls" * 1500
    decision = STARTER.decide(Action(kind="run", command=command))
    assert decision.risk == "red"


def test_reporting_cannot_plant_a_profile_and_source_it_all_green() -> None:
    """Example 04's write-own-report admits /work/[a-z.]+, so the report can be written to
    /work/.profile (HOME is /work); its "## Files" lines are repository file names, and a
    file named `a;touch PWNED` becomes the line `- a;touch PWNED`. F12 then sources it with
    a Green `sh -l -c`. Confirmed end to end with dash in a temp folder."""
    steps = ["sh /data/scripts/report.sh /work/.profile", "sh -l -c 'cat /work/report.md'"]
    risks = [REPORTING.decide(Action(kind="run", command=step)).risk for step in steps]
    assert "red" in risks, risks
