"""Class 2: values from steps are data, never code.

Before commit bea4ec6 (templates in run: commands: each value one shell word; rendering
bounded), a Green step's output holding a newline, placed into a later ``run:``, ran as
a command of its own; and ``'x'|center(10**10)`` killed the compiler with MemoryError.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from luminaguard.config.render import TemplateProblem, render_command_text
from luminaguard.scheduler.store import RunStore
from luminaguard.shell import parse_command
from tests.conftest import CliRunner, Writer

POLICY = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - id: talk
      match: {program: [echo, printf]}
      risk: green
      reason: prints
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  limits: {timeout: 20s}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  params: {who: "x; touch /work/param-pwned"}
  steps:
    - {id: names, agent: a, run: "printf 'bob\\\\ntouch /work/pwned\\\\n'"}
    - id: greet
      agent: a
      needs: [names]
      run: "echo hello {{ steps.names.outputs.stdout }} {{ params.who }}"
"""


@pytest.mark.usefixtures("sandbox")
def test_a_step_output_cannot_inject_a_command(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """The output ``bob\\ntouch /work/pwned`` placed into ``echo`` is one word, not a command."""
    state = tmp_path / "state"
    path = write("w.yaml", POLICY)
    result = cli("run", str(path), "--state", str(state), "--run-id", "r")
    assert result.code == 0, result.out + result.err
    work = state / "runs" / "r" / "agents" / "a" / "work"
    assert not (work / "pwned").exists() and not (work / "param-pwned").exists()
    store = RunStore(state)
    try:
        greeting = store.steps("r")["greet"].outputs["stdout"]
    finally:
        store.close()
    assert greeting == "hello bob\ntouch /work/pwned\n x; touch /work/param-pwned\n"


def context(value: str) -> dict[str, object]:
    return {"params": {"v": value}, "steps": {}}


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
    st.sampled_from(["echo {{ params.v }}", 'echo "a{{ params.v }}b"', "echo 'a{{ params.v }}b'"]),
)
def test_any_value_is_exactly_one_word(value: str, template: str) -> None:
    """Whatever a value holds (quotes, $(...), newlines, ;), it is one argument, verbatim."""
    command = render_command_text(template, context(value))
    parsed = parse_command(command)
    if parsed.undecidable is not None:
        # refused as a whole, before any word is read: Red, never run as several words
        assert parsed.commands == () and parsed.part is not None
        return
    assert len(parsed.commands) == 1
    [echo] = parsed.commands
    expected = value if template == "echo {{ params.v }}" else f"a{value}b"
    assert echo.program == "echo" and echo.args == (expected,)


@pytest.mark.parametrize(
    "template",
    ["cat <<E\n{{ params.v }}\nE", "echo hi # {{ params.v }}", "echo $'{{ params.v }}'"],
)
def test_a_value_where_it_cannot_be_quoted_is_refused(template: str) -> None:
    with pytest.raises(TemplateProblem, match="cannot be placed"):
        render_command_text(template, context("x"))


def test_a_rendering_bomb_is_a_located_error(cli: CliRunner, write: Writer) -> None:
    """``'x'|center(10**10)`` is refused with file:line:col, not a MemoryError."""
    path = write(
        "bomb.yaml",
        POLICY.replace("{{ params.who }}", "{{ 'x'|center(10**10) }}"),
    )
    result = cli("validate", str(path))
    assert result.code == 1
    assert f"{path}:28:12: error: template refused: a size of 10000000000" in result.err
