"""Indexing runs of similar rules by literal prefix, so that large policies decide fast.

A run is two or more consecutive candidate rules whose only condition (beyond kind,
server and tool, which the candidate list has already checked) is one ``path`` or
``glob`` test on the same argument. Each pattern's literal prefix (the text before
its first wildcard) must begin the value for the pattern to match, so a dict from
prefix to rules finds the few rules worth testing; they are tested in policy order,
which keeps first-match semantics. A run of 500 such rules then costs a handful of
dict lookups and one or two regex matches instead of 500 tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from luminaguard.config.models.policy import Match, pattern_list
from luminaguard.policy.action import Decision
from luminaguard.policy.matchers import (
    GLOB_WILDCARD,
    effective_kind,
    glob_regex,
    normal_path,
    path_regex,
)

_MIN_RUN = 2
_WILDCARDS = {"path": re.compile(r"[*?]"), "glob": GLOB_WILDCARD}


@dataclass(frozen=True)
class StringTest:
    """A rule's single anchored string test: the argument, the operator, its patterns."""

    name: str
    operator: str
    patterns: tuple[str, ...]

    def regex(self) -> Callable[[str], object]:
        """The compiled test's ``match`` (as the engine compiles it); truthy on a match."""
        if self.operator == "path":
            return path_regex(self.patterns).match
        return glob_regex(self.patterns).match

    def prefixes(self) -> set[str]:
        """The literal text each pattern must start with."""
        wildcard = _WILDCARDS[self.operator]
        return {wildcard.split(pattern, maxsplit=1)[0] for pattern in self.patterns}


def string_test(match: Match) -> StringTest | None:
    """The rule's only condition, when it is one ``path`` or ``glob`` test; else None."""
    if match.command is not None or match.annotations is not None or len(match.args) != 1:
        return None
    if effective_kind(match) == "run":
        return None
    [(name, test)] = match.args.items()
    if test.operator not in ("path", "glob"):
        return None
    given = test.path if test.operator == "path" else test.glob
    return StringTest(name, test.operator, pattern_list(given))


class Deciding(Protocol):
    """A step of a decision: a single rule, or a run of rules."""

    def first(self, action: Any) -> Decision | None:
        """The decision of the first of its rules that matches ``action``, else None."""
        ...


class Fusable(Deciding, Protocol):
    """A rule that knows its decision and, maybe, its single string test."""

    @property
    def decision(self) -> Decision:
        """What the rule decides when it matches."""
        ...

    @property
    def string_test(self) -> StringTest | None:
        """The rule's only condition, when it is one anchored string test."""
        ...


class IndexedRun:
    """Consecutive rules testing one argument, indexed by their patterns' literal prefixes."""

    def __init__(self, rules: Sequence[Fusable]) -> None:
        tests = [rule.string_test for rule in rules if rule.string_test is not None]
        assert len(tests) == len(rules)
        self.name = tests[0].name
        self.normal: Callable[[str], str] = normal_path if tests[0].operator == "path" else str
        self.decisions = [rule.decision for rule in rules]
        self.regexes = [test.regex() for test in tests]
        self.by_prefix: dict[str, list[int]] = {}
        for index, test in enumerate(tests):
            for prefix in test.prefixes():
                self.by_prefix.setdefault(prefix, []).append(index)
        self.lengths = sorted({len(prefix) for prefix in self.by_prefix})

    def first(self, action: Any) -> Decision | None:
        """The decision of the first rule of the run whose test holds for the argument."""
        value = action.args.get(self.name)
        if not isinstance(value, str):
            return None
        value = self.normal(value)
        hits = [
            index
            for length in self.lengths
            if length <= len(value)
            for index in self.by_prefix.get(value[:length], ())
        ]
        for index in sorted(hits):
            if self.regexes[index](value):
                return self.decisions[index]
        return None


def _key(rule: Fusable) -> tuple[str, str] | None:
    test = rule.string_test
    return (test.name, test.operator) if test else None


def fuse(rules: Sequence[Fusable], cache: dict[tuple[int, ...], IndexedRun]) -> list[Deciding]:
    """The rules in order, each run of similar rules on one argument as one IndexedRun.

    ``cache`` keeps runs by the identity of their rules, so that candidate lists of
    different tools that share a run share its index.
    """
    steps: list[Deciding] = []
    start = 0
    while start < len(rules):
        key, end = _key(rules[start]), start + 1
        while key is not None and end < len(rules) and _key(rules[end]) == key:
            end += 1
        run = rules[start:end]
        if len(run) >= _MIN_RUN:
            identity = tuple(id(rule) for rule in run)
            steps.append(cache.get(identity) or cache.setdefault(identity, IndexedRun(run)))
        else:
            steps += run
        start = end
    return steps
