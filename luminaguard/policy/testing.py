"""Running PolicyTest documents against their policies; rule coverage.

A test passes when the policy gives its action the expected risk and, when the test
names one, the expected deciding rule (``(default)``: no rule matched). A rule is
covered when it decides at least one selected test; rules that only ever lose to
an earlier rule are not covered, since their risk is never what the policy says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from luminaguard.config.models import PolicyTestDocument
from luminaguard.config.models.policy_test import DEFAULT_RULE, PolicyTestCase
from luminaguard.config.validate import Document
from luminaguard.policy.action import Action, Decision, written
from luminaguard.policy.engine import PolicyEngine

#: The engine of a policy by name (the compiler's ``Bundle.engine``: rules know their lines).
Engines = Callable[[str], PolicyEngine]


@dataclass(frozen=True)
class CaseResult:
    """One test's action, what it expected and what the policy decided."""

    suite: str
    policy: str
    case: PolicyTestCase
    where: str
    action: Action
    actual: Decision

    @property
    def name(self) -> str:
        """``SUITE/TEST NAME``: what ``--run`` matches."""
        return f"{self.suite}/{self.case.name}"

    @property
    def passed(self) -> bool:
        """Whether the risk, and the rule if one was named, are as expected."""
        expected = self.case.expect
        if expected.risk != self.actual.risk:
            return False
        if expected.rule is None:
            return True
        return (self.actual.rule or DEFAULT_RULE) == expected.rule


@dataclass(frozen=True)
class Coverage:
    """Which rules of one policy decided at least one selected test."""

    policy: str
    rules: tuple[tuple[str, str], ...]  # (rule id, FILE:LINE), in policy order
    decided: frozenset[str]

    @property
    def uncovered(self) -> list[tuple[str, str]]:
        """Rules no test reached, with where they are."""
        return [(rule, where) for rule, where in self.rules if rule not in self.decided]

    @property
    def covered(self) -> int:
        """How many rules decided a test."""
        return len(self.rules) - len(self.uncovered)


@dataclass
class TestReport:
    """Every selected test's result and the coverage of the policies they test."""

    results: list[CaseResult] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)

    @property
    def failures(self) -> list[CaseResult]:
        """The tests that failed."""
        return [result for result in self.results if not result.passed]

    @property
    def percent(self) -> float:
        """Rules covered over all rules of the tested policies, in percent (100 if none)."""
        total = sum(len(c.rules) for c in self.coverage)
        return 100.0 * sum(c.covered for c in self.coverage) / total if total else 100.0


def _cases(engines: Engines, document: Document) -> Iterable[CaseResult]:
    assert isinstance(document.model, PolicyTestDocument)
    spec = document.model.spec
    engine = engines(spec.policy)
    for index, case in enumerate(spec.tests):
        where = document.source.locations.value(("spec", "tests", index))
        action = written(case)
        yield CaseResult(
            document.name, spec.policy, case, f"{where.file}:{where.line}", action,
            engine.decide(action),
        )  # fmt: skip


def _coverage(engines: Engines, policy: str, results: list[CaseResult]) -> Coverage:
    engine = engines(policy)
    rules = tuple((r.rule.id, r.decision.source or "") for r in engine.rules)
    decided = frozenset(r.actual.rule for r in results if r.policy == policy and r.actual.rule)
    return Coverage(policy, rules, decided)


def run_tests(
    documents: Iterable[Document], engines: Engines, pattern: str | None = None
) -> TestReport:
    """Run the tests of every PolicyTest document whose ``SUITE/NAME`` matches ``pattern``."""
    selected = re.compile(pattern or "")
    report = TestReport()
    for document in documents:
        report.results += [r for r in _cases(engines, document) if selected.search(r.name)]
    policies = sorted({result.policy for result in report.results})
    report.coverage = [_coverage(engines, policy, report.results) for policy in policies]
    return report
