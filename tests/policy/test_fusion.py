"""Runs of path/glob rules indexed by literal prefix decide exactly as rule-by-rule testing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from luminaguard.policy import Action
from luminaguard.policy.fusion import IndexedRun
from tests.policy.test_properties import build

pieces = st.sampled_from(["/work", "/work/a", "/tmp", "/", "a", "b", "*", "**", "?", "[ab]", ".."])
patterns = st.lists(pieces, min_size=1, max_size=4).map("".join)
tests = st.tuples(st.sampled_from(["path", "glob"]), st.lists(patterns, min_size=1, max_size=2))
values = st.lists(pieces, max_size=5).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(tests, min_size=2, max_size=12), st.lists(values, min_size=1, max_size=8))
def test_indexed_runs_keep_first_match(
    rule_tests: list[tuple[str, list[str]]], arguments: list[str]
) -> None:
    rules = [({"args": {"p": {operator: given}}}, "green") for operator, given in rule_tests]
    engine = build(rules)
    for value in arguments:
        action = Action(kind="call", server="s", tool="t", args={"p": value})
        matching = [c.rule.id for c in engine.rules if c.matches(action)]
        assert engine.decide(action).rule == (matching[0] if matching else None), value


def test_a_run_is_indexed_and_shared_between_tools() -> None:
    engine = build([({"args": {"p": {"path": f"/r{i}/**"}}}, "green") for i in range(50)])
    first = engine.steps(Action(kind="call", server="s", tool="t1"))
    second = engine.steps(Action(kind="call", server="s", tool="t2"))
    assert len(first) == 1 and isinstance(first[0], IndexedRun) and first[0] is second[0]
    decided = engine.decide(Action(kind="call", server="s", tool="t", args={"p": "/r7/x/../y"}))
    assert decided.rule == "r7"


def test_rules_with_other_conditions_break_a_run() -> None:
    engine = build(
        [
            ({"args": {"p": {"path": "/a/**"}}}, "green"),
            ({"args": {"p": {"path": "/b/**"}}, "annotations": {"readOnlyHint": True}}, "red"),
            ({"args": {"p": {"path": "/b/**"}}}, "green"),
            ({"args": {"q": {"path": "/b/**"}}}, "green"),
        ]
    )
    assert not any(isinstance(step, IndexedRun) for step in engine.steps(Action(kind="run")))
