"""A question's form: a hostile server's schema parsed (or refused), an answer checked."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from luminaguard.transport.forms import MAX_FIELDS, MAX_VALUE, FormError, parse_form

FULL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Name", "minLength": 2, "maxLength": 5},
        "count": {"type": "integer", "minimum": 1, "maximum": 9, "default": 2},
        "ratio": {"type": "number", "maximum": 1.5},
        "sure": {"type": "boolean", "description": "really?"},
        "colour": {"type": "string", "enum": ["red", "blue"]},
        "size": {"type": "string", "oneOf": [{"const": "s", "title": "Small"}, {"const": "l"}]},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 2},
    },
    "required": ["name", "colour"],
}


def test_every_kind_of_field_is_parsed_in_order() -> None:
    form = parse_form(FULL)
    kinds = [(f.name, f.kind, f.required) for f in form.fields]
    assert kinds == [
        ("name", "string", True), ("count", "integer", False), ("ratio", "number", False),
        ("sure", "boolean", False), ("colour", "choice", True), ("size", "choice", False),
        ("tags", "choices", False),
    ]  # fmt: skip
    name, count, *_ = form.fields
    assert (name.title, name.minimum, name.maximum) == ("Name", 2, 5)
    assert (count.minimum, count.maximum, count.default) == (1, 9, 2)
    assert form.fields[5].choices == ("s", "l")


def test_a_valid_answer_is_returned_typed() -> None:
    form = parse_form(FULL)
    answer = form.check({"name": "Ada", "colour": "red", "count": 3.0, "tags": ["a", "c"]})
    assert answer == {"name": "Ada", "colour": "red", "count": 3, "tags": ["a", "c"]}
    assert isinstance(answer["count"], int)
    assert form.check({"name": "Ada", "colour": "blue", "ratio": None}) == {
        "name": "Ada",
        "colour": "blue",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([], "an answer is an object"),
        ({"colour": "red"}, "name: required"),
        ({"name": "Ada", "colour": "red", "evil": 1}, "no such field: evil"),
        ({"name": "A", "colour": "red"}, "name: below the minimum (2)"),
        ({"name": "Adaaaa", "colour": "red"}, "name: above the maximum (5)"),
        ({"name": 5, "colour": "red"}, "name: a text is expected"),
        ({"name": "Ada", "colour": "green"}, "colour: not one of the choices"),
        ({"name": "Ada", "colour": "red", "count": True}, "count: a whole number is expected"),
        ({"name": "Ada", "colour": "red", "count": "3"}, "count: a whole number is expected"),
        ({"name": "Ada", "colour": "red", "count": 2.5}, "count: a whole number is expected"),
        ({"name": "Ada", "colour": "red", "count": 10}, "count: above the maximum (9)"),
        ({"name": "Ada", "colour": "red", "ratio": float("nan")}, "ratio: a number is expected"),
        ({"name": "Ada", "colour": "red", "sure": "yes"}, "sure: true or false is expected"),
        ({"name": "Ada", "colour": "red", "tags": ["a", "z"]}, "tags: a list of the choices"),
        ({"name": "Ada", "colour": "red", "tags": ["a", "a"]}, "tags: a choice is listed twice"),
        ({"name": "Ada", "colour": "red", "tags": ["a", "b", "c"]}, "tags: above the maximum"),
    ],
)
def test_an_answer_the_form_refuses_names_the_field(content: Any, message: str) -> None:
    with pytest.raises(FormError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_form(FULL).check(content)


def test_an_overlong_text_is_refused_whatever_the_schema_says() -> None:
    form = parse_form({"type": "object", "properties": {"t": {"type": "string"}}})
    assert form.check({"t": "x" * MAX_VALUE}) == {"t": "x" * MAX_VALUE}
    with pytest.raises(FormError, match="over 10000 characters"):
        form.check({"t": "x" * (MAX_VALUE + 1)})


def _one(spec: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"f": spec}}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("x", "is not an object"),
        ({"type": "array"}, "not of type 'object'"),
        ({"type": "object"}, "has no properties"),
        ({"type": "object", "properties": {}}, "has no properties"),
        (_one({"type": "object", "properties": {}}), "type 'object' is not a form field's type"),
        (_one({"type": "string", "enum": [1, 2]}), "each choice must be a short string"),
        (_one({"type": "string", "enum": []}), "choices must be a list of 1 to 100"),
        (_one({"type": "array", "items": {"type": "string"}}), "must list its choices"),
        (_one({"type": "integer", "minimum": True}), "a bound must be a finite number"),
        (_one({"type": "number", "maximum": "9"}), "a bound must be a finite number"),
        (_one({"type": "integer", "default": "x"}), "the default is not a valid value"),
        (_one({"type": "string", "title": ["x"]}), "a title or description must be a string"),
        (_one({"type": "string", "description": "d" * 1001}), "must be a string of 1000"),
        (_one("string"), "the field's schema is not an object"),
        ({**_one({"type": "string"}), "required": ["g"]}, "'required' names a field"),
        ({"type": "object", "properties": {"__proto__": {"type": "string"}}}, "not a plain name"),
        ({"type": "object", "properties": {"a\x1b[2J": {"type": "string"}}}, "not a plain name"),
        ({"type": "object", "properties": {"x" * 65: {"type": "string"}}}, "not a plain name"),
        (
            {"type": "object", "properties": {f"f{i}": {"type": "string"} for i in range(33)}},
            f"over {MAX_FIELDS} fields",
        ),
        (_one({"type": "string", "description": "d" * 999, "x": "y" * 40_000}), "over 32768"),
    ],
)
def test_a_schema_that_is_not_a_flat_form_is_refused(schema: Any, message: str) -> None:
    with pytest.raises(FormError, match=message.replace("(", r"\(")):
        parse_form(schema)


def test_typed_text_becomes_a_value_of_the_fields_kind() -> None:
    fields = {f.name: f for f in parse_form(FULL).fields}
    assert fields["count"].from_text("7") == 7
    assert fields["ratio"].from_text("0.5") == 0.5
    assert fields["sure"].from_text("yes") is True and fields["sure"].from_text("no") is False
    assert fields["tags"].from_text("a, c") == ["a", "c"]
    assert fields["name"].from_text(" x ") == " x "
    with pytest.raises(FormError, match="count: 'seven' is not a integer"):
        fields["count"].from_text("seven")


def test_the_form_round_trips_through_its_json() -> None:
    from luminaguard.scheduler.questions import form_of

    form = parse_form(FULL)
    assert form_of(json.loads(json.dumps(form.to_json()))) == form


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    properties=st.dictionaries(st.text(max_size=10), JSON, max_size=5),
    required=st.lists(st.text(max_size=10), max_size=3),
    answer=JSON,
)
def test_any_schema_and_answer_is_parsed_or_refused_with_a_form_error(
    properties: dict[str, Any], required: list[str], answer: Any
) -> None:
    schema = {"type": "object", "properties": properties, "required": required}
    try:
        form = parse_form(schema)
    except FormError:
        return
    try:
        checked = form.check(answer)
    except FormError:
        return
    assert set(checked) <= {f.name for f in form.fields}
    assert form.check(checked) == checked  # what is accepted is accepted again unchanged
