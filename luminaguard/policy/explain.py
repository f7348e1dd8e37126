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

from luminaguard.config.models.policy import Match, Patterns, ValueMatch, pattern_list
from luminaguard.config.models.policy_test import UNDECIDABLE_RULE
from luminaguard.policy.action import Action, Decision
from luminaguard.policy.engine import CompiledRule, PolicyEngine
from luminaguard.policy.matchers import Subject, effective_kind, glob_regex, value_test
from luminaguard.policy.shell_match import CommandPart, clean_target, program_matches

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
class PartTrace:
    """One simple command of a ``run:``: what it is, its rules' trace, its decision."""

    part: CommandPart
    rules: tuple[RuleTrace, ...]
    decision: Decision


@dataclass(frozen=True)
class Trace:
    """A whole evaluation: every rule in order, and the decision.

    For a ``run:`` command, ``parts`` holds each simple command's own trace and ``rules``
    the trace of the part that decided (the first Red one, else the first); a command
    that cannot be decided has no parts and ``undecidable`` says why.
    """

    policy: str
    action: Action
    rules: tuple[RuleTrace, ...]
    decision: Decision
    parts: tuple[PartTrace, ...] = ()
    undecidable: str | None = None


def _listed(patterns: Patterns) -> str:
    return ", ".join(pattern_list(patterns))


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _name(label: str, value: str | None, patterns: Patterns) -> Condition:
    held = value is not None and glob_regex(patterns).match(value) is not None
    verb = "matches" if held else "does not match"
    return Condition(held, f"{label} {_shown(value)} {verb} {_listed(patterns)}")


def _value(label: str, value: object, test: ValueMatch) -> Condition:
    wanted = _wanted(test)
    if value is MISSING:
        return Condition(False, f"{label} is missing (wanted {wanted})")
    held = value_test(test)(value)
    shown = _shown(value)
    if test.operator == "path" and isinstance(value, str) and posixpath.normpath(value) != value:
        shown += f" (normalised: {_shown(posixpath.normpath(value))})"
    return Condition(held, f"{label} {shown} {'passes' if held else 'fails'} {wanted}")


def _wanted(test: ValueMatch) -> str:
    return f"{test.operator} {_shown(getattr(test, test.operator))}"


def _annotations(match: Match, action: Subject) -> list[Condition]:
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


def _shell_conditions(match: Match, part: CommandPart, risk: str) -> list[Condition]:
    simple = part.simple
    found: list[Condition] = []
    if match.program is not None:
        held = program_matches(simple.program, glob_regex(match.program).match)
        verb = "matches" if held else "does not match"
        found.append(
            Condition(held, f"program {_shown(simple.program)} {verb} {_listed(match.program)}")
        )
    if match.command is not None:
        found.append(_value("command", part.command, match.command))
    for key, test in match.args.items():
        found.append(_argv(key, simple.args, test))
    writes = [r.target for r in simple.redirects if r.writes and not r.duplicates]
    if match.redirects is not None:
        passes = value_test(match.redirects)
        bad = [t for t in writes if not (clean_target(t) and passes(t))]
        wanted = _wanted(match.redirects)
        found.append(Condition(not bad, f"redirections {_shown(writes)} (each must pass {wanted})"))
    elif risk == "green" and writes:
        held = all(t == "/dev/null" for t in writes)
        found.append(
            Condition(held, f"redirections {_shown(writes)} (a Green rule admits only /dev/null)")
        )
    return found


def _argv(key: str, args: tuple[str, ...], test: ValueMatch) -> Condition:
    wanted = _wanted(test)
    check = value_test(test)
    if key.isdigit():
        position = int(key)
        if position >= len(args):
            return Condition(False, f"argument {key} is missing (wanted {wanted})")
        return _value(f"argument {key}", args[position], test)
    passing = [arg for arg in args if check(arg)]
    held = {"any": bool(passing), "all": len(passing) == len(args), "none": not passing}[key]
    shown = f" ({_shown(passing)} pass)" if passing and key == "none" else ""
    return Condition(held, f"{key} of the arguments {_shown(list(args))}{shown} must pass {wanted}")


def conditions(match: Match, action: Subject, risk: str = "red") -> list[Condition]:
    """Every condition of ``match`` with its result for ``action``."""
    found: list[Condition] = []
    kind = effective_kind(match)
    if kind is not None:
        found.append(Condition(action.kind == kind, f"kind {action.kind} (wanted {kind})"))
    if isinstance(action, CommandPart) == (kind == "call") and kind is not None:
        return found  # a rule on the other kind: nothing else of it can hold
    if isinstance(action, CommandPart):
        found += _shell_conditions(match, action, risk) + _annotations(match, action)
        return found or [Condition(True, "matches every action (no conditions)")]
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


def _trace(compiled: CompiledRule, action: Subject | None) -> RuleTrace:
    rule = compiled.rule
    found = tuple(conditions(rule.match, action, rule.risk)) if action is not None else ()
    return RuleTrace(rule.id, compiled.decision.source or "", rule.risk, found, action is not None)


def _rules(engine: PolicyEngine, action: Subject) -> tuple[RuleTrace, ...]:
    traces: list[RuleTrace] = []
    decided = False
    for compiled in engine.rules:
        traces.append(_trace(compiled, None if decided else action))
        decided = decided or traces[-1].matched
    return tuple(traces)


def _run_trace(engine: PolicyEngine, action: Action) -> Trace:
    verdict = engine.verdict(action.command or "")
    parts = tuple(
        PartTrace(
            CommandPart(p.simple),
            () if p.decision.rule == UNDECIDABLE_RULE else _rules(engine, CommandPart(p.simple)),
            p.decision,
        )
        for p in verdict.parts
    )
    deciding = verdict.deciding_part or (verdict.parts[0] if verdict.parts else None)
    rules = next((t.rules for t in parts if deciding and t.part.simple is deciding.simple), ())
    return Trace(engine.name, action, rules, verdict.decision, parts, verdict.parsed.undecidable)


def explain(engine: PolicyEngine, action: Action) -> Trace:
    """The trace of ``engine`` deciding ``action``; its decision is ``engine.decide``'s."""
    if action.kind == "run":
        return _run_trace(engine, action)
    return Trace(engine.name, action, _rules(engine, action), engine.decide(action))
