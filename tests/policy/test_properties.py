"""Property-based tests of the engine's semantics."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from luminaguard.config.models import PolicySpec
from luminaguard.policy import Action, PolicyEngine
from luminaguard.policy.engine import CompiledRule

names = st.sampled_from(["read_file", "write_file", "list", "delete", "send_email", "x"])
servers = st.sampled_from(["fs", "git", "memory"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
matches = st.fixed_dictionaries(
    {},
    optional={
        "server": servers,
        "tool": st.sampled_from(["read_*", "*", "write_file", "send_*", "[!r]*"]),
        "args": st.dictionaries(
            st.sampled_from(["path", "url"]),
            st.sampled_from(
                [{"glob": "/tmp/*"}, {"regex": "^h"}, {"path": "/work/**"}, {"equals": 1}]
            ),
            max_size=2,
        ),
    },
)
rules = st.lists(st.tuples(matches, st.sampled_from(["green", "red"])), max_size=12)
actions = st.builds(
    lambda server, tool, args: Action(kind="call", server=server, tool=tool, args=args),
    servers,
    names,
    st.dictionaries(st.sampled_from(["path", "url", "other"]), json_values, max_size=3),
)


def build(spec_rules: list[tuple[dict[str, Any], str]], default: str = "red") -> PolicyEngine:
    spec = PolicySpec.model_validate(
        {
            "default": default,
            "rules": [
                {"id": f"r{i}", "match": match, "risk": risk, "reason": "r"}
                for i, (match, risk) in enumerate(spec_rules)
            ],
        }
    )
    return PolicyEngine("p", spec)


def holds(compiled: CompiledRule, action: Action) -> bool:
    """Rule by rule, without index or fusion: whether every condition holds for ``action``."""
    admitted = compiled.prefilter.admits(action.kind, action.server, action.tool)
    return admitted and compiled.first(action) is not None


@settings(max_examples=200, deadline=None)
@given(rules, actions)
def test_first_match_semantics(
    spec_rules: list[tuple[dict[str, Any], str]], action: Action
) -> None:
    policy = build(spec_rules)
    decision = policy.decide(action)
    matching = [i for i, compiled in enumerate(policy.rules) if holds(compiled, action)]
    if matching:
        assert decision.rule == f"r{matching[0]}"
        assert decision.risk == spec_rules[matching[0]][1]
    else:
        assert decision.rule is None and decision.risk == "red"


@settings(max_examples=100, deadline=None)
@given(rules, actions, st.sampled_from(["green", "red"]))
def test_default_applies_when_nothing_matches(
    spec_rules: list[tuple[dict[str, Any], str]], action: Action, default: str
) -> None:
    policy = build(spec_rules, default)
    decision = policy.decide(action)
    if not any(holds(compiled, action) for compiled in policy.rules):
        assert decision.risk == default and decision.rule is None


@settings(max_examples=100, deadline=None)
@given(rules, actions)
def test_decision_is_deterministic(
    spec_rules: list[tuple[dict[str, Any], str]], action: Action
) -> None:
    first, second = build(spec_rules), build(spec_rules)
    assert first.decide(action) == first.decide(action) == second.decide(action)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    rules, st.dictionaries(st.text(max_size=10), json_values, max_size=6), st.text(max_size=2000)
)
def test_no_exception_on_arbitrary_arguments(
    spec_rules: list[tuple[dict[str, Any], str]], args: dict[str, Any], command: str
) -> None:
    policy = build(spec_rules)
    policy.decide(Action(kind="call", server="fs", tool="write_file", args=args))
    policy.decide(Action(kind="run", command=command))
    huge = {"path": "/tmp/" + "a" * 1_000_000, "url": "h" * 100_000}
    policy.decide(Action(kind="call", server="fs", tool="write_file", args=huge))
