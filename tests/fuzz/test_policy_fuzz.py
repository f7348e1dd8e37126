"""PolicyEngine.decide against a plain first-match reference, on simple commands and calls."""

from __future__ import annotations

import fnmatch
import posixpath
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from luminaguard.config.models.policy import PolicySpec
from luminaguard.policy.action import Action
from luminaguard.policy.engine import PolicyEngine
from tests.fuzz import fuzz

PROGRAMS = ["ls", "cat", "echo", "git", "rm", "curl"]
WORDS = ["a", "-l", "x.txt", "/work/a", "/tmp/b", "work", "rm"]
SERVERS = ["fs", "git", "web"]
TOOLS = ["read_file", "read_dir", "write_file", "delete"]
NAME_GLOBS = ["*", "read_*", "*_file", "fs", "git", "g?t", "w*", "delete", "ls", "c*", "rm"]
SEGMENTS = ["work", "tmp", "*", "**", "a", "b?", "x.*", "..", ""]


def globs(names: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(names), st.lists(st.sampled_from(names), max_size=3))


PATH_GLOB = st.lists(st.sampled_from(SEGMENTS[:-2]), min_size=1, max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)
CALL_TEST = st.one_of(
    st.fixed_dictionaries({"path": st.one_of(PATH_GLOB, st.lists(PATH_GLOB, max_size=2))}),
    st.fixed_dictionaries({"glob": globs(["/work/*", "*.txt", "*", "a"])}),
    st.sampled_from([*WORDS, 1, True]),  # equals
)
ARG_TEST = st.one_of(
    st.fixed_dictionaries({"glob": globs(["-*", "*.txt", "/work/*", "*", "a"])}),
    st.sampled_from(WORDS),
)
CALL_MATCH = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.just("call"),
        "server": globs(NAME_GLOBS),
        "tool": globs(NAME_GLOBS),
        "args": st.dictionaries(st.sampled_from(["path", "mode"]), CALL_TEST, max_size=2),
    },
)
RUN_MATCH = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.just("run"),
        "program": globs(NAME_GLOBS),
        "args": st.dictionaries(st.sampled_from(["any", "all", "none", "0", "1"]), ARG_TEST,
                                max_size=2),
    },
)  # fmt: skip
RULES = st.lists(
    st.fixed_dictionaries(
        {"match": st.one_of(CALL_MATCH, RUN_MATCH), "risk": st.sampled_from(["green", "red"])}
    ),
    max_size=8,
)
PATH_VALUE = st.lists(st.sampled_from(["work", "tmp", "a", "b1", "x.txt", "..", ".", ""]),
                      max_size=5).map(lambda p: "/" + "/".join(p))  # fmt: skip
CALL = st.builds(
    lambda server, tool, args: Action(kind="call", server=server, tool=tool, args=args),
    st.sampled_from(SERVERS),
    st.sampled_from(TOOLS),
    st.dictionaries(st.sampled_from(["path", "mode"]), st.one_of(PATH_VALUE, st.sampled_from(
        [*WORDS, 1, True, None]))),
)  # fmt: skip
RUN = st.builds(
    lambda program, args: Action(kind="run", command=" ".join([program, *args])),
    st.sampled_from(PROGRAMS),
    st.lists(st.sampled_from(WORDS), max_size=3),
)


# -- the reference: the documented semantics, written plainly ------------------------------


def _any_glob(patterns: Any, value: str) -> bool:
    patterns = [patterns] if isinstance(patterns, str) else patterns
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _path_glob(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        if len(pattern) == 1:
            return len(parts) >= 1
        return any(_path_glob(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    name = pattern[0].replace("**", "*")
    return (
        bool(parts) and fnmatch.fnmatchcase(parts[0], name) and _path_glob(pattern[1:], parts[1:])
    )


def _value(test: Any, value: Any) -> bool:
    if isinstance(test, dict) and "path" in test:
        patterns = [test["path"]] if isinstance(test["path"], str) else test["path"]
        normal = posixpath.normpath(value) if isinstance(value, str) and value else value
        return isinstance(value, str) and any(
            _path_glob(p.split("/"), normal.split("/")) for p in patterns
        )
    if isinstance(test, dict) and "glob" in test:
        return isinstance(value, str) and _any_glob(test["glob"], value)
    return type(value) is type(test) and value == test


def _kind(match: dict[str, Any]) -> str | None:
    if "kind" in match:
        return str(match["kind"])
    if "program" in match:
        return "run"
    if "server" in match or "tool" in match:
        return "call"
    return None


def _call_matches(match: dict[str, Any], action: Action) -> bool:
    if _kind(match) not in (None, "call"):
        return False
    if "server" in match and not _any_glob(match["server"], action.server or ""):
        return False
    if "tool" in match and not _any_glob(match["tool"], action.tool or ""):
        return False
    return all(
        name in action.args and _value(test, action.args[name])
        for name, test in match.get("args", {}).items()
    )


def _run_matches(match: dict[str, Any], argv: list[str]) -> bool:
    kind = _kind(match)
    if kind == "call":
        return False
    if kind is None:  # a rule for any action: its args name a call's arguments
        return not match.get("args")
    program, args = argv[0], argv[1:]
    if "program" in match and not _any_glob(match["program"], program):
        return False
    for key, test in match.get("args", {}).items():
        tests = [_value(test, arg) for arg in args]
        if key == "any":
            held = any(tests)
        elif key == "all":
            held = all(tests)
        elif key == "none":
            held = not any(tests)
        else:
            held = int(key) < len(args) and tests[int(key)]
        if not held:
            return False
    return True


def reference(rules: list[dict[str, Any]], default: str, action: Action) -> tuple[str, str | None]:
    for rule in rules:
        match = rule["match"]
        if action.kind == "call":
            held = _call_matches(match, action)
        else:
            held = _run_matches(match, (action.command or "").split())
        if held:
            return rule["risk"], rule["id"]
    return default, None


@fuzz(300)
@given(
    rules=RULES,
    default=st.sampled_from(["green", "red"]),
    actions=st.lists(st.one_of(CALL, RUN), min_size=1, max_size=8),
)
def test_the_engine_decides_as_the_first_matching_rule(
    rules: list[dict[str, Any]], default: str, actions: list[Action]
) -> None:
    rules = [{"id": f"r{i}", "reason": "why", **rule} for i, rule in enumerate(rules)]
    engine = PolicyEngine("p", PolicySpec.model_validate({"default": default, "rules": rules}))
    for action in [*actions, *reversed(actions)]:  # again, through the engine's caches
        decision = engine.decide(action)
        assert (decision.risk, decision.rule) == reference(rules, default, action), (action, rules)
