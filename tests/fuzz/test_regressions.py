"""What the fuzzers found, kept as plain tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from luminaguard.compiler import compile_paths
from luminaguard.config.diagnostics import ConfigError
from luminaguard.config.models.policy import PolicySpec
from luminaguard.config.yamlsource import parse_yaml
from luminaguard.policy.action import Action
from luminaguard.policy.engine import PolicyEngine


def _refused(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "f.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        compile_paths([str(path)])
    return [str(d) for d in caught.value.diagnostics]


def test_an_unknown_field_hiding_a_whole_model_error_is_a_config_error(tmp_path: Path) -> None:
    # the server's only key is unknown: without it, the server has no transport, which
    # only the model's own check (run once the fields are valid) finds
    found = _refused(
        tmp_path,
        "apiVersion: luminaguard.dev/v1\nkind: Agent\nmetadata: {name: a}\n"
        "spec:\n  policy: p\n  mcp_servers:\n    k: {fs: {command: srv}}\n",
    )
    assert any(
        line.endswith("f.yaml:7:8: error: spec.mcp_servers.k: an MCP server needs either"
                      " 'command' (stdio) or 'url'/'urls' (HTTP)")
        for line in found
    ), found  # fmt: skip
    assert any("unknown field 'fs'" in line for line in found)


@pytest.mark.parametrize(
    ("text", "where"),
    [("{", (1, 2)), ("a: [1, 2\n", (2, 1)), ("\r\x00", (2, 1)), ("a\r\nb: \x01", (2, 4)),
     ("\u2028x: \x02", (2, 4)), ("\u00e9\u00e9: \x00", (1, 5))],
)  # fmt: skip
def test_syntax_errors_are_located_inside_the_text(text: str, where: tuple[int, int]) -> None:
    _, (diagnostic,) = parse_yaml("f", text)
    assert (diagnostic.location.line, diagnostic.location.column) == where


@pytest.mark.parametrize(
    "match",
    [{"program": []}, {"kind": "run", "args": {"any": {"glob": []}}}, {"server": []}],
    ids=["program", "args-glob", "server"],
)
def test_an_empty_list_of_globs_matches_nothing(match: dict[str, object]) -> None:
    # an empty alternation compiled to a regex that matched every program: `program: []`
    # made a Green rule green every command
    rules = [{"id": "r", "match": match, "risk": "green", "reason": "why"}]
    engine = PolicyEngine("p", PolicySpec.model_validate({"rules": rules}))
    for action in (
        Action(kind="run", command="rm -rf /work"),
        Action(kind="call", server="fs", tool="delete"),
    ):
        decision = engine.decide(action)
        assert (decision.risk, decision.rule) == ("red", None)
