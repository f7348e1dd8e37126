"""Outcomes: the values executors return, and the audit events the runner records them as."""

from __future__ import annotations

import pytest

from luminaguard.scheduler.outcomes import ApprovalRequest, Outcome
from luminaguard.scheduler.states import StepState


def test_an_action_without_an_error_succeeded_with_its_outputs() -> None:
    outcome = Outcome.ended({"exit_code": 0}, None)
    assert (outcome.state, dict(outcome.outputs), outcome.error) == (
        StepState.SUCCEEDED,
        {"exit_code": 0},
        None,
    )


def test_an_action_with_an_error_failed_and_keeps_its_outputs() -> None:
    outcome = Outcome.ended({"exit_code": 3, "stderr": "no"}, "exit code 3")
    assert outcome.state is StepState.FAILED
    assert dict(outcome.outputs) == {"exit_code": 3, "stderr": "no"}
    assert outcome.detail == "exit code 3"


@pytest.mark.parametrize(
    ("outcome", "event", "why"),
    [
        (Outcome.skipped("when: false"), "step.skipped", {"because": "when: false"}),
        (Outcome.failed("cannot render"), "step.failed", {}),
        (Outcome.denied("not now", "approval denied by bob"), "step.denied", {"reason": "not now"}),
        (Outcome.awaiting("red by default"), "step.halted", {}),
    ],
)
def test_each_outcome_is_audited_as_before(
    outcome: Outcome, event: str, why: dict[str, object]
) -> None:
    assert (outcome.event, dict(outcome.why)) == (event, why)


def test_a_step_waiting_for_a_person_shows_why() -> None:
    request = ApprovalRequest("sha256:x", {"action": "true"}, 10.0)
    outcome = Outcome.awaiting("red by default", request)
    assert outcome.state is StepState.AWAITING_APPROVAL
    assert (outcome.detail, outcome.error, outcome.request) == ("red by default", None, request)


def test_outcomes_are_values() -> None:
    assert Outcome.failed("x") == Outcome.failed("x")
    with pytest.raises(AttributeError):
        Outcome.failed("x").state = StepState.SUCCEEDED  # type: ignore[misc]
