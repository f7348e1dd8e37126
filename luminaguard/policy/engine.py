"""``PolicyEngine.decide``: ordered rules, the first that matches decides, else the default."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from luminaguard.config.models.policy import PolicySpec, Rule
from luminaguard.policy.action import Action, Decision
from luminaguard.policy.fusion import Deciding, IndexedRun, StringTest, fuse, string_test
from luminaguard.policy.matchers import (
    Predicate,
    Prefilter,
    Subject,
    detail_predicates,
    glob_regex,
)
from luminaguard.policy.rule_index import RuleIndex
from luminaguard.policy.shell_match import CommandPart
from luminaguard.policy.shell_verdict import ShellVerdict, decide_command
from luminaguard.shell import parse_command

_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its conditions compiled and its decision made in advance."""

    rule: Rule
    prefilter: Prefilter
    checks: tuple[Predicate, ...]
    decision: Decision
    string_test: StringTest | None

    def first(self, action: Subject) -> Decision | None:
        """The rule's decision if its conditions beyond kind, server and tool hold."""
        for check in self.checks:
            if not check(action):
                return None
        return self.decision


class PolicyEngine:
    """Classifies actions Green or Red with one policy's rules; first match decides."""

    def __init__(
        self,
        name: str,
        spec: PolicySpec,
        sources: Sequence[str | None] = (),
        default_source: str | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.rules = [
            CompiledRule(
                rule,
                Prefilter(rule.match),
                tuple(detail_predicates(rule.match, rule.risk)),
                Decision(
                    risk=rule.risk,
                    policy=name,
                    rule=rule.id,
                    reason=rule.reason,
                    source=sources[i] if i < len(sources) else None,
                ),
                string_test(rule.match),
            )
            for i, rule in enumerate(spec.rules)
        ]
        self.default = Decision(
            risk=spec.default,
            policy=name,
            rule=None,
            reason=spec.default_reason,
            source=default_source,
        )
        self._index = RuleIndex([rule.match for rule in spec.rules])
        self._steps: dict[tuple[str, str | None, str | None], list[Deciding]] = {}
        self._runs: dict[tuple[int, ...], IndexedRun] = {}
        self._fused: dict[tuple[int, ...], list[Deciding]] = {}
        self._commands: dict[str, ShellVerdict] = {}
        self._programs: dict[str, list[Deciding]] = {}

    def candidates(self, action: Subject) -> list[CompiledRule]:
        """Rules whose kind, server and tool admit the action, in order."""
        key = (action.kind, action.server, action.tool)
        exact, rules = self._index.exact, self.rules
        return [
            rules[i]
            for i in self._index.lookup(*key)
            if i in exact or rules[i].prefilter.admits(*key)
        ]

    def steps(self, action: Subject) -> list[Deciding]:
        """The candidate rules, runs of similar ones fused (cached per kind, server and tool)."""
        key = (action.kind, action.server, action.tool)
        found = self._steps.get(key)
        if found is None:
            if len(self._steps) >= _CACHE_LIMIT:
                self._steps.clear()
            candidates = self.candidates(action)
            shared = tuple(id(rule) for rule in candidates)  # tools with the same candidates
            found = self._fused.get(shared)
            if found is None:
                found = self._fused[shared] = fuse(candidates, self._runs)
            self._steps[key] = found
        return found

    def decide(self, action: Action) -> Decision:
        """The decision of the first rule that matches ``action``, else the default.

        A ``run`` command is parsed; each simple command in it is decided by the rules
        and the whole is Green only when every part is (``shell_verdict``).
        """
        if action.kind == "run":
            return self.verdict(action.command or "").decision
        return self._first(action)

    def _first(self, subject: Subject) -> Decision:
        for step in self.steps(subject):
            decision = step.first(subject)
            if decision is not None:
                return decision
        return self.default

    def _part(self, part: CommandPart) -> Decision:
        """A simple command's decision; for a bare program name, only rules that name it."""
        program = part.simple.program
        if "/" in program:
            return self._first(part)
        steps = self._programs.get(program)
        if steps is None:
            if len(self._programs) >= _CACHE_LIMIT:
                self._programs.clear()
            steps = self._programs[program] = [
                step for step in self.steps(part) if _may_name(step, program)
            ]
        for step in steps:
            decision = step.first(part)
            if decision is not None:
                return decision
        return self.default

    def verdict(self, command: str) -> ShellVerdict:
        """The parse of a ``run:`` command and the decision of each part (cached by text)."""
        found = self._commands.get(command)
        if found is None:
            if len(self._commands) >= _CACHE_LIMIT:
                self._commands.clear()
            found = decide_command(parse_command(command), self.name, self._part)
            self._commands[command] = found
        return found


def _may_name(step: Deciding, program: str) -> bool:
    """Whether a step could match a program run by this bare name (its glob admits it)."""
    if not isinstance(step, CompiledRule) or step.rule.match.program is None:
        return True
    return glob_regex(step.rule.match.program).match(program) is not None
