"""Attack round 23: what a step leaves for the host and for later steps of its run."""

from __future__ import annotations

from pathlib import Path

import pytest

from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner, Writer

NUL_OUTPUT = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - id: all
      match: {program: ["*"]}
      risk: green
      reason: anything
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
  steps:
    - {id: plant, agent: a, run: "printf 'a\\\\000b'"}
    - {id: use, agent: a, needs: [plant], run: "echo {{ steps.plant.outputs.stdout }}"}
"""


@pytest.mark.usefixtures("sandbox")
def test_a_nul_in_a_step_output_fails_the_step_using_it_not_the_runner(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """A step printed a NUL byte; a later step's command took that output as a value.
    No command can hold a NUL (the zygote's requests are NUL-separated, ``execve`` takes
    C strings): the rendered command went to a person for approval, and once approved
    the runner died on an uncaught ValueError out of the zygote's spawn, leaving the
    step (and any other step then running) ``unknown``. A value holding a NUL byte is
    now refused where it is placed, and only the step using it fails."""
    state = tmp_path / "state"
    path = write("w.yaml", NUL_OUTPUT)
    result = cli("run", str(path), "--state", str(state), "--run-id", "r")
    if result.code == 3:  # halted for approval (the unfixed runner): approve, resume
        cli("approve", "r", "use", "--state", str(state))
        try:
            result = cli("resume", "r", "--state", str(state))
        except ValueError as exc:
            pytest.fail(f"the runner died: {exc!r}")
    store = RunStore(state)
    try:
        steps = store.steps("r")
    finally:
        store.close()
    assert steps["plant"].outputs["stdout"] == "a\0b"
    assert steps["use"].state.value == "failed", (result.out, result.err)
    assert result.code == 2


LONG_OUTPUT = NUL_OUTPUT.replace(
    "printf 'a\\\\000b'", "python3 -c 'print(chr(97) * 300000, end=str())'"
)


@pytest.mark.usefixtures("sandbox")
@pytest.mark.parametrize("zygote", ["c", "python"])
def test_an_approved_command_too_long_to_send_fails_its_step_not_the_runner(
    cli: CliRunner,
    write: Writer,
    tmp_path: Path,
    zygote: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step printed 300 KB (within the output cap); a later step's command used it, so
    the command went to a person (longer than can be decided before it runs). Once
    approved, the zygote's request was too long for its socket (EMSGSIZE) and the runner
    died on the OSError, every step then running left ``unknown``. The step now fails."""
    if zygote == "python":
        monkeypatch.setenv("LUMINAGUARD_SANDBOX_ZYGOTE", "python")
    state = tmp_path / "state"
    path = write("w.yaml", LONG_OUTPUT)
    result = cli("run", str(path), "--state", str(state), "--run-id", "r")
    assert result.code == 3, result.out + result.err
    cli("approve", "r", "use", "--state", str(state))
    try:
        result = cli("resume", "r", "--state", str(state))
    except OSError as exc:
        pytest.fail(f"the runner died: {exc!r}")
    store = RunStore(state)
    try:
        steps = store.steps("r")
    finally:
        store.close()
    assert steps["use"].state.value == "failed", (result.out, result.err)
    assert "too long" in str(steps["use"].error)
    assert result.code == 2
