"""PolicyEngine.decide: first match, default, every kind of condition."""

from __future__ import annotations

from typing import Any

import pytest

from luminaguard.config.models import PolicySpec
from luminaguard.config.models.policy import pattern_list
from luminaguard.policy import Action, PolicyEngine


def engine(*rules: dict[str, Any], default: str = "red") -> PolicyEngine:
    spec = PolicySpec.model_validate({"default": default, "rules": list(rules)})
    return PolicyEngine(
        "test", spec, [f"policy.yaml:{10 + i}" for i in range(len(rules))], "policy.yaml:3"
    )


def rule(rule_id: str, risk: str = "green", **match: Any) -> dict[str, Any]:
    return {"id": rule_id, "match": match, "risk": risk, "reason": f"because {rule_id}"}


def call(
    tool: str, server: str = "fs", annotations: dict[str, bool] | None = None, **args: Any
) -> Action:
    return Action(kind="call", server=server, tool=tool, args=args, annotations=annotations)


def run(command: str) -> Action:
    return Action(kind="run", command=command)


def test_first_matching_rule_decides() -> None:
    policy = engine(rule("a", "green", tool="read_*"), rule("b", "red", tool="*"))
    decision = policy.decide(call("read_file"))
    assert (decision.rule, decision.risk, decision.source) == ("a", "green", "policy.yaml:10")
    assert policy.decide(call("write_file")).rule == "b"


def test_nothing_matches_means_red_by_default() -> None:
    decision = engine(rule("a", tool="read_*")).decide(call("write_file"))
    assert (decision.risk, decision.rule, decision.source) == ("red", None, "policy.yaml:3")
    assert decision.reason == "no rule matched; red by default"


def test_default_can_be_written_green() -> None:
    assert engine(default="green").decide(run("rm -rf /")).risk == "green"


def test_decision_carries_policy_rule_reason() -> None:
    decision = engine(rule("a", tool="*")).decide(call("x"))
    assert decision.policy == "test" and decision.reason == "because a"


@pytest.mark.parametrize(
    ("match", "action", "expected"),
    [
        ({"kind": "run"}, run("ls"), True),
        ({"kind": "run"}, call("ls"), False),
        ({"server": "git"}, call("log", server="git"), True),
        ({"server": ["git", "fs"]}, call("log", server="fs"), True),
        ({"server": "git"}, run("git log"), False),
        ({"tool": "read_*"}, call("read_text_file"), True),
        ({"tool": "read_*"}, call("Read_file"), False),
        ({"tool": "read_?ile"}, call("read_file"), True),
        ({"command": {"regex": "^ls( |$)"}}, run("ls -l"), True),
        ({"command": {"regex": "^ls( |$)"}}, run("lsblk"), False),
        ({"command": {"glob": "git *"}}, run("git push origin/main"), True),
        ({"command": "pwd"}, run("pwd"), True),
        ({"command": "pwd"}, run("pwd "), True),  # each simple command's own text
        ({"command": "pwd"}, run("pwd -L"), False),
    ],
)
def test_kind_server_tool_command(match: dict[str, Any], action: Action, expected: bool) -> None:
    matched = engine(rule("r", **match)).decide(action).rule == "r"
    assert matched is expected


@pytest.mark.parametrize(
    ("test", "value", "expected"),
    [
        ({"equals": 3}, 3, True),
        ({"equals": 3}, 3.5, False),
        ({"equals": 1}, True, False),  # type-exact: true is not 1
        ({"equals": True}, 1, False),
        (3, 3, True),  # a plain value means equals
        ({"equals": {"a": [1, 2]}}, {"a": [1, 2]}, True),
        ({"equals": {"a": [1, 2]}}, {"a": [2, 1]}, False),
        ({"glob": "*.md"}, "notes/a.md", True),
        ({"glob": ["*.md", "*.txt"]}, "a.txt", True),
        ({"glob": "*.md"}, 5, False),
        ({"regex": "^https://docs\\."}, "https://docs.python.org", True),
        ({"regex": "^https://docs\\."}, "http://docs.python.org", False),
        ({"regex": "x"}, ["x"], False),
        ({"path": "/work/**"}, "/work/a/b", True),
        ({"path": "/work/**"}, "/work/../etc/passwd", False),
        ({"path": "/work/**"}, "/work/a/../../etc/passwd", False),
        ({"path": "/work/**"}, "/workshop/x", False),
        ({"path": "/work/*"}, "/work/a/b", False),
        ({"path": "/work/*"}, "/work//a", True),
        ({"path": "/work/**/*.md"}, "/work/a.md", True),
        ({"path": "/work/**/*.md"}, "/work/x/y/a.md", True),
    ],
)
def test_argument_tests(test: Any, value: Any, expected: bool) -> None:
    policy = engine(rule("r", args={"p": test}))
    assert (policy.decide(call("t", p=value)).rule == "r") is expected


def test_missing_argument_never_matches() -> None:
    policy = engine(rule("r", args={"path": {"glob": "*"}}))
    assert policy.decide(call("t")).rule is None


def test_every_condition_must_hold() -> None:
    policy = engine(rule("r", server="fs", tool="write_file", args={"path": {"path": "/tmp/**"}}))
    assert policy.decide(call("write_file", path="/tmp/x")).rule == "r"
    assert policy.decide(call("write_file", path="/etc/x")).rule is None
    assert policy.decide(call("write_file", server="git", path="/tmp/x")).rule is None


@pytest.mark.parametrize(
    ("wanted", "annotations", "expected"),
    [
        ({"readOnlyHint": True}, {"readOnlyHint": True}, True),
        ({"readOnlyHint": True}, None, False),  # unknown tool: not read-only
        ({"readOnlyHint": True}, {}, False),  # missing hint: not read-only
        ({"destructiveHint": True}, None, True),  # unknown tool: destructive
        ({"openWorldHint": True}, {"readOnlyHint": True}, True),  # default open-world
        ({"destructiveHint": False}, {"destructiveHint": False}, True),
        ({"readOnlyHint": True, "openWorldHint": False}, {"readOnlyHint": True}, False),
    ],
)
def test_annotations_with_pessimistic_defaults(
    wanted: dict[str, bool], annotations: dict[str, bool] | None, expected: bool
) -> None:
    policy = engine(rule("r", annotations=wanted))
    assert (policy.decide(call("t", annotations=annotations)).rule == "r") is expected


def test_candidate_cache_is_bounded_and_correct() -> None:
    policy = engine(rule("a", tool="t1*"), rule("b", tool="*"))
    for i in range(5000):
        assert policy.decide(call(f"t{i}")).rule == ("a" if str(i).startswith("1") else "b")
    assert len(policy._steps) <= 4096


def test_content_hash_binds_the_exact_action() -> None:
    first = call("write_file", path="/a", content="x")
    assert first.content_hash() == call("write_file", content="x", path="/a").content_hash()
    assert first.content_hash() != call("write_file", path="/a", content="y").content_hash()
    assert first.describe() == "fs.write_file" and run("ls").describe() == "$ ls"


def test_a_pattern_and_a_list_of_it_mean_the_same() -> None:
    assert pattern_list("a*") == pattern_list(["a*"]) == ("a*",) and pattern_list(None) == ()
    one = engine(rule("r", server="fs", tool="read_*", args={"p": {"path": "/work/**"}}))
    listed = engine(rule("r", server=["fs"], tool=["read_*"], args={"p": {"path": ["/work/**"]}}))
    for action in (call("read_file", p="/work/a"), call("read_file"), call("x", server="git")):
        assert one.decide(action) == listed.decide(action)
    assert listed.decide(call("read_file", p="/work/a")).rule == "r"
