"""``policy explain``: how a policy reached its decision, rule by rule and condition by condition.

The trace evaluates every condition of every rule up to the deciding one (not only
until the first that fails), so an author sees all that would have to change for a
rule to match. Rules after the deciding one are listed as not evaluated.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any

from luminaguard.config.models.policy import Match, Patterns, ValueMatch
from luminaguard.policy.action import Action, Decision
from luminaguard.policy.engine import CompiledRule, PolicyEngine
from luminaguard.policy.matchers import effective_kind, glob_regex, value_test

MISSING = object()


@dataclass(frozen=True)
class Condition:
    """One condition of a rule, said in words, and whether it held for the action."""

    held: bool
    text: str


@dataclass(frozen=True)
class RuleTrace:
    """One rule: where it is, and its conditions' results (none when not evaluated)."""

    rule: str
    source: str
    risk: str
    conditions: tuple[Condition, ...]
    evaluated: bool

    @property
    def matched(self) -> bool:
        """Whether every condition held."""
        return self.evaluated and all(c.held for c in self.conditions)


@dataclass(frozen=True)
class Trace:
    """A whole evaluation: every rule in order, and the decision."""

    policy: str
    action: Action
    rules: tuple[RuleTrace, ...]
    decision: Decision


def _listed(patterns: Patterns) -> str:
    return ", ".join([patterns] if isinstance(patterns, str) else patterns)


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _name(label: str, value: str | None, patterns: Patterns) -> Condition:
    held = value is not None and glob_regex(patterns).match(value) is not None
    verb = "matches" if held else "does not match"
    return Condition(held, f"{label} {_shown(value)} {verb} {_listed(patterns)}")


def _value(label: str, value: object, test: ValueMatch) -> Condition:
    wanted = f"{test.operator} {_shown(getattr(test, test.operator))}"
    if value is MISSING:
        return Condition(False, f"{label} is missing (wanted {wanted})")
    held = value_test(test)(value)
    shown = _shown(value)
    if test.operator == "path" and isinstance(value, str) and posixpath.normpath(value) != value:
        shown += f" (normalised: {_shown(posixpath.normpath(value))})"
    return Condition(held, f"{label} {shown} {'passes' if held else 'fails'} {wanted}")


def _annotations(match: Match, action: Action) -> list[Condition]:
    if match.annotations is None:
        return []
    effective = action.effective_annotations()
    given = action.annotations or {}
    found = []
    for hint, value in match.annotations.model_dump(exclude_none=True).items():
        origin = "" if hint in given else ", by MCP's default"
        text = f"annotation {hint} is {effective[hint]}{origin} (wanted {value})"
        found.append(Condition(effective[hint] == value, text))
    return found


def conditions(match: Match, action: Action) -> list[Condition]:
    """Every condition of ``match`` with its result for ``action``."""
    found: list[Condition] = []
    kind = effective_kind(match)
    if kind is not None:
        found.append(Condition(action.kind == kind, f"kind {action.kind} (wanted {kind})"))
    if match.server is not None:
        found.append(_name("server", action.server, match.server))
    if match.tool is not None:
        found.append(_name("tool", action.tool, match.tool))
    if match.command is not None:
        found.append(_value("command", action.command or MISSING, match.command))
    for name, test in match.args.items():
        found.append(_value(f"args.{name}", action.args.get(name, MISSING), test))
    found += _annotations(match, action)
    return found or [Condition(True, "matches every action (no conditions)")]


def _trace(compiled: CompiledRule, action: Action | None) -> RuleTrace:
    rule = compiled.rule
    found = tuple(conditions(rule.match, action)) if action is not None else ()
    return RuleTrace(rule.id, compiled.decision.source or "", rule.risk, found, action is not None)


def explain(engine: PolicyEngine, action: Action) -> Trace:
    """The trace of ``engine`` deciding ``action``; its decision is ``engine.decide``'s."""
    traces: list[RuleTrace] = []
    decided = False
    for compiled in engine.rules:
        traces.append(_trace(compiled, None if decided else action))
        decided = decided or traces[-1].matched
    return Trace(engine.name, action, tuple(traces), engine.decide(action))
