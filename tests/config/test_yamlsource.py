"""Strict YAML: 1.2 core schema, duplicate/merge keys refused, locations kept."""

from __future__ import annotations

from typing import Any

import pytest

from luminaguard.config.location import SourceLocation
from luminaguard.config.yamlsource import parse_yaml


def parse_one(text: str) -> Any:
    documents, problems = parse_yaml("f.yaml", text)
    assert not problems, problems
    return documents[0].data


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("on", "on"),
        ("no", "no"),
        ("yes", "yes"),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("12:30", "12:30"),
        ("2024-01-01", "2024-01-01"),
        ("010", 10),
        ("0o17", 15),
        ("0x1f", 31),
        ("-3", -3),
        ("1.5e3", 1500.0),
        (".inf", float("inf")),
        ("-.inf", float("-inf")),
        ("1_000", "1_000"),
        ("'true'", "true"),
    ],
)
def test_core_schema_scalars(text: str, value: Any) -> None:
    assert parse_one(f"v: {text}\n") == {"v": value}


def test_nan() -> None:
    value = parse_one("v: .nan\n")["v"]
    assert value != value


def test_locations_of_values_and_keys() -> None:
    documents, _ = parse_yaml("f.yaml", "a:\n  b: [1, {c: 2}]\n")
    index = documents[0].locations
    assert index.value(("a", "b", 1, "c")) == SourceLocation("f.yaml", 2, 14)
    assert index.key(("a", "b")) == SourceLocation("f.yaml", 2, 3)
    assert index.value(("a", "b", 7, "zz")) == SourceLocation("f.yaml", 2, 6)
    assert index.deepest(("a", "b", 9)) == ("a", "b")
    assert index.value(("nope",)) == SourceLocation("f.yaml", 1, 1)


def test_several_documents_and_empty_ones() -> None:
    documents, problems = parse_yaml("f.yaml", "a: 1\n---\n---\nb: 2\n...\n")
    assert not problems
    assert [d.data for d in documents] == [{"a": 1}, {"b": 2}]
    assert documents[1].location.line == 4


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("a: 1\na: 2\n", "duplicate key 'a' (first defined at line 1)", 2),
        ("base: &b {x: 1}\nother:\n  <<: *b\n", "merge keys", 3),
        ("a: !python/object x\n", "unsupported YAML tag", 1),
        ("a: !!binary aGk=\n", "unsupported YAML tag", 1),
        ("? [a, b]\n: 1\n", "mapping key must be a plain value", 1),
        ("a: [1, 2\n", "YAML syntax error", 2),
        ("a: 'x\n", "YAML syntax error", 2),
    ],
)
def test_refused(text: str, message: str, line: int) -> None:
    _, problems = parse_yaml("f.yaml", text)
    assert problems and message in problems[0].message
    assert problems[0].location.line == line


def test_aliases_are_expanded() -> None:
    assert parse_one("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


def test_every_problem_in_a_document_is_reported() -> None:
    _, problems = parse_yaml("f.yaml", "a: 1\na: 2\nb: !x 3\nc: {d: 1, d: 2}\n")
    assert len(problems) == 3


def test_an_alias_has_the_anchored_nodes_values_and_locations() -> None:
    """Built from events in one pass, an alias replays the anchored node where it stands."""
    documents, problems = parse_yaml("f.yaml", "a: &x {b: [1, 2]}\nc: *x\n")
    assert not problems
    assert documents[0].data == {"a": {"b": [1, 2]}, "c": {"b": [1, 2]}}
    values = documents[0].locations.values
    assert values[("c", "b", 1)] == values[("a", "b", 1)] == SourceLocation("f.yaml", 1, 15)


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("a: *x\n", ["1:4: YAML syntax error: found undefined alias"]),
        (
            "a: &x 1\nb: &x 2\n",
            [
                "2:4: YAML syntax error: second occurrence (found duplicate anchor; "
                "first occurrence at line 1, column 4)"
            ],
        ),
        (
            "a: &y [&x [*y]]\nb: *x\n",
            [
                "1:4: an alias refers to a node that contains it",
                "1:8: an alias refers to a node that contains it",
            ],
        ),
        ("!!int a: 1\n", ["1:1: 'a' is not a valid int"]),  # was a ValueError, uncaught
        ("&k k: 1\n*k : 2\n", ["1:1: duplicate key 'k' (first defined at line 1)"]),
        ("a: 1\n---\n" + "[" * 101 + "]" * 101 + "\n", ["3:101: collections are nested"]),
        ("a: *x\n---\n" + "[" * 101 + "]" * 101 + "\n", ["3:101: collections are nested"]),
    ],
)
def test_alias_anchor_and_shape_problems_are_located(text: str, problems: list[str]) -> None:
    """Each problem where it is; a refused document (too deep) refuses the whole file."""
    documents, found = parse_yaml("f.yaml", text)
    said = [f"{p.location.line}:{p.location.column}: {p.message}" for p in found]
    assert len(said) == len(problems)
    assert all(s.startswith(p) for s, p in zip(said, problems, strict=True)), said
    if "nested" in problems[0]:
        assert documents == []
