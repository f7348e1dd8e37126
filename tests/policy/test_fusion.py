"""Runs of path/glob rules indexed by literal prefix decide exactly as rule-by-rule testing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from luminaguard.policy import Action
from luminaguard.policy.fusion import IndexedRun
from tests.policy.test_properties import build, holds

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
        matching = [c.rule.id for c in engine.rules if holds(c, action)]
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


names = st.sampled_from(["fs", "git", "f*", "*", "g?t", "[fg]s", "x"])
name_lists = st.one_of(st.none(), names, st.lists(names, min_size=1, max_size=3))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(name_lists, name_lists, st.sampled_from([None, "call", "run"])),
        min_size=1,
        max_size=15,
    ),
    st.sampled_from(["call", "run"]),
    st.sampled_from([None, "fs", "git", "fx", "gat", "x"]),
    st.sampled_from([None, "fs", "git", "fx", "x"]),
)
def test_the_rule_index_finds_exactly_the_admitted_rules(
    shapes: list[tuple[object, object, str | None]], kind: str, server: str | None, tool: str | None
) -> None:
    rules = []
    for rule_server, rule_tool, rule_kind in shapes:
        match: dict[str, object] = {}
        if rule_server is not None:
            match["server"] = rule_server
        if rule_tool is not None:
            match["tool"] = rule_tool
        if rule_kind is not None and not (rule_kind == "run" and match):
            match["kind"] = rule_kind
        rules.append((match, "green"))
    engine = build(rules)
    action = Action(kind=kind, server=server, tool=tool)  # type: ignore[arg-type]
    naive = [rule for rule in engine.rules if rule.prefilter.admits(kind, server, tool)]
    assert engine.candidates(action) == naive
