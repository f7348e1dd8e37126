"""``policy test`` results as text (people), JUnit XML (CI) or JSON (scripts)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from luminaguard.policy.action import Decision
from luminaguard.policy.testing import CaseResult, TestReport


def decided(decision: Decision) -> str:
    """``red by fs-write (FILE:LINE)`` or ``red by the default``."""
    if decision.rule is None:
        return f"{decision.risk} by the default"
    return f"{decision.risk} by {decision.rule} ({decision.source})"


def _action(result: CaseResult) -> str:
    action = result.action
    if action.kind == "run":
        return action.describe()
    return f"{action.describe()} {json.dumps(action.args, sort_keys=True)}"


def failure_diff(result: CaseResult) -> str:
    """The failed test's action, and expected against actual, as a small diff."""
    return (
        f"    action:     {_action(result)}\n"
        f"  - expected:   {result.case.expect.describe()}\n"
        f"  + actual:     {decided(result.actual)}: {result.actual.reason}\n"
    )


def _coverage_text(report: TestReport, fail_under: float | None) -> str:
    lines = []
    for policy in report.coverage:
        share = 100.0 * policy.covered / len(policy.rules) if policy.rules else 100.0
        lines.append(f"coverage: {policy.policy} {policy.covered}/{len(policy.rules)} rules"
                     f" ({share:.1f}%)")  # fmt: skip
        lines += [f"  never decided a test: {rule} ({where})" for rule, where in policy.uncovered]
    verdict = ""
    if fail_under is not None:
        verdict = (
            f" (fail-under {fail_under:g}: {'ok' if report.percent >= fail_under else 'FAILED'})"
        )
    lines.append(f"total coverage {report.percent:.1f}%{verdict}")
    return "\n".join(lines) + "\n"


def text(report: TestReport, verbose: bool, coverage: bool, fail_under: float | None) -> str:
    """Failures with their diff (every test with ``verbose``), a summary, coverage if asked."""
    out = []
    for result in report.results:
        if result.passed and verbose:
            out.append(f"PASS {result.where} {result.name}\n")
        elif not result.passed:
            out.append(f"FAIL {result.where} {result.name}\n{failure_diff(result)}")
    failed = len(report.failures)
    out.append(f"{len(report.results) - failed} passed, {failed} failed\n")
    if coverage or fail_under is not None:
        out.append(_coverage_text(report, fail_under))
    return "".join(out)


def junit(report: TestReport) -> str:
    """JUnit XML: a testsuite per PolicyTest document, a testcase per test."""
    root = ET.Element("testsuites", name="luminaguard policy test")
    root.set("tests", str(len(report.results)))
    root.set("failures", str(len(report.failures)))
    suites: dict[str, ET.Element] = {}
    for result in report.results:
        suite = suites.get(result.suite)
        if suite is None:
            suite = suites[result.suite] = ET.SubElement(root, "testsuite", name=result.suite)
        case = ET.SubElement(suite, "testcase", classname=result.suite, name=result.case.name)
        case.set("file", result.where.rsplit(":", 1)[0])
        case.set("line", result.where.rsplit(":", 1)[1])
        if not result.passed:
            message = f"expected {result.case.expect.describe()}, got {decided(result.actual)}"
            failure = ET.SubElement(case, "failure", message=message)
            failure.text = failure_diff(result)
    for name, suite in suites.items():
        cases = [r for r in report.results if r.suite == name]
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(not r.passed for r in cases)))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _result_json(result: CaseResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "where": result.where,
        "policy": result.policy,
        "passed": result.passed,
        "expected": result.case.expect.model_dump(),
        "actual": result.actual.model_dump(),
    }


def as_json(report: TestReport) -> str:
    """Every result, the counts and the coverage, as one JSON document."""
    document = {
        "passed": len(report.results) - len(report.failures),
        "failed": len(report.failures),
        "tests": [_result_json(result) for result in report.results],
        "coverage": {
            "percent": round(report.percent, 2),
            "policies": [
                {
                    "policy": c.policy,
                    "rules": len(c.rules),
                    "covered": c.covered,
                    "uncovered": [rule for rule, _ in c.uncovered],
                }
                for c in report.coverage
            ],
        },
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
