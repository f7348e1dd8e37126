"""Deciding a ``run:`` command: each simple command by the rules, the whole by its worst part.

A command is Green only when every simple command in it is Green by some rule. A Red
part makes the whole Red and is named in the reason. A command that cannot be reduced
to plain words before it runs is Red with the reason why (rule ``(undecidable)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from luminaguard.config.models.policy_test import UNDECIDABLE_RULE as UNDECIDABLE
from luminaguard.policy.action import Decision
from luminaguard.policy.shell_match import CommandPart, unsafe_assignment
from luminaguard.shell import ParsedCommand, SimpleCommand

CANNOT_DECIDE = "cannot be decided before it runs"


@dataclass(frozen=True)
class PartDecision:
    """One simple command and what the rules decided for it."""

    simple: SimpleCommand
    decision: Decision


@dataclass(frozen=True)
class ShellVerdict:
    """A parsed command, the decision of each part, and the decision of the whole."""

    parsed: ParsedCommand
    parts: tuple[PartDecision, ...]
    decision: Decision

    @property
    def deciding_part(self) -> PartDecision | None:
        """The first Red part, which made the whole Red; None when all are Green."""
        return next((p for p in self.parts if p.decision.risk == "red"), None)


def _quoted(text: str) -> str:
    return "`" + (text if len(text) <= 80 else text[:77] + "...") + "`"


def decide_command(
    parsed: ParsedCommand, policy: str, decide_part: Callable[[CommandPart], Decision]
) -> ShellVerdict:
    """Decide every part of ``parsed`` with ``decide_part`` and combine (see module doc)."""
    if not parsed.decidable:
        reason = f"{CANNOT_DECIDE}: {parsed.undecidable} in {_quoted(parsed.part or '')}"
        red = Decision(risk="red", policy=policy, rule=UNDECIDABLE, reason=reason)
        return ShellVerdict(parsed, (), red)
    parts = tuple(PartDecision(s, _decide_one(s, policy, decide_part)) for s in parsed.commands)
    return ShellVerdict(parsed, parts, _combined(parts))


def _decide_one(
    simple: SimpleCommand, policy: str, decide_part: Callable[[CommandPart], Decision]
) -> Decision:
    variable = unsafe_assignment(simple)
    if variable is not None:
        reason = f"{CANNOT_DECIDE}: {_quoted(simple.text)} sets {variable}"
        return Decision(risk="red", policy=policy, rule=UNDECIDABLE, reason=reason)
    return decide_part(CommandPart(simple))


def _combined(parts: tuple[PartDecision, ...]) -> Decision:
    if len(parts) == 1:
        return parts[0].decision
    red = next((p for p in parts if p.decision.risk == "red"), None)
    if red is not None:
        reason = f"{_quoted(red.simple.text)} is Red: {red.decision.reason}"
        return red.decision.model_copy(update={"reason": reason})
    first = parts[0].decision
    rules = sorted({p.decision.rule or "(default)" for p in parts})
    if len(rules) == 1:
        return first
    return first.model_copy(update={"reason": "every part is Green: " + ", ".join(rules)})
