"""Templates: sandboxed, strict, bounded; native values for a lone expression."""

from __future__ import annotations

from typing import Any

import pytest

from luminaguard.config.render import (
    Namespace,
    StringTemplate,
    TemplateProblem,
    check_expression,
    evaluate_expression,
    referenced_steps,
    render_text,
)

CONTEXT: dict[str, Any] = {
    "params": Namespace("params", {"repo": "/r", "n": 5, "tags": ["a", "b"]}),
    "steps": Namespace(
        "steps",
        {"a": Namespace("steps.a", {"outputs": Namespace("steps.a.outputs", {"stdout": "x\n"})})},
    ),
}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("plain", "plain"),
        ("{{ params.repo }}/x", "/r/x"),
        ("{{ params.n }}", 5),
        ("  {{ params.tags }} ", ["a", "b"]),
        ("{{ params.n + 1 }} items", "6 items"),
        ("{% for t in params.tags %}{{ t }}{% endfor %}", "ab"),
        ("{{ steps.a.outputs.stdout | trim }}", "x"),
        ("{{ params['repo'] }}", "/r"),
    ],
)
def test_renders(text: str, value: Any) -> None:
    assert render_text(text, CONTEXT) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ params.rpo }}", "undefined template variable params.rpo; did you mean 'repo'?"),
        ("{{ nothing }}", "undefined template variable 'nothing'"),
        ("{{ params.repo.nope }}", "undefined template variable"),
        ("{{ ''.__class__ }}", "may not reach Python internals"),
        ("{{ params.__class__.__mro__ }}", "may not reach Python internals"),
        ("{{ cycler.__init__.__globals__ }}", "may not reach Python internals"),
        ("{{ lipsum.__globals__['os'] }}", "may not reach Python internals"),
        ("{{ ().__class__.__base__.__subclasses__() }}", "may not reach Python internals"),
        ("{{ 'a' * 10000000 }}", "repetition"),
        ("{{ [1] * 10000000 }}", "repetition"),
        ("{{ 10 ** 100000 }}", "exponent"),
        ("{{ range(10000000) | list }}", "a size of 10000000 is larger than 1000000"),
        ("{{ 'x' | center(10**10) }}", "a size of 10000000000 is larger than 1000000"),
        ("{{ '{:>9999999999}'.format(1) }}", "a size of 9999999999 is larger than 1000000"),
        ("{{ '%9999999999s' % 'x' }}", "a size of 9999999999 is larger than 1000000"),
        ("{{ 1 / 0 }}", "template error"),
        ("{{ x", "template syntax error"),
        ("{% if %}", "template syntax error"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(TemplateProblem, match=None) as caught:
        render_text(text, CONTEXT)
    assert message in str(caught.value)


def test_small_repetition_and_power_are_fine() -> None:
    assert render_text("{{ '-' * 3 }}{{ 2 ** 3 }}", CONTEXT) == "---8"


def test_referenced_steps() -> None:
    assert referenced_steps("{{ steps.a.outputs.x }} {{ steps['b'].outputs }} {{ params.c }}") == {
        "a",
        "b",
    }
    with pytest.raises(TemplateProblem):
        referenced_steps("{{ steps.")


def test_expressions() -> None:
    check_expression("steps.a.outputs.stdout == 'x\\n' and params.n > 1", CONTEXT)
    assert evaluate_expression("params.n > 1", CONTEXT) is True
    check_expression("params.repo > 1", CONTEXT)  # placeholder type clash is not an error
    for bad, message in [
        ("params.m", "params.m"),
        ("params.n >", "syntax"),
        ("params.__class__", "Python internals"),
    ]:
        with pytest.raises(TemplateProblem) as caught:
            check_expression(bad, CONTEXT)
        assert message in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "{{ params.root }}/r1/f1",
        "  {{ params.n }} ",
        "{{ params.n }}",
        "{{ params.nested.deep }}-{{ params.root }}",
        "{{ params.flag }}",
        "{{ params.nested }}",
        "{{ params.missing }}",
        "{{ params.nested.missing }}",
        "{{ nothing.here }}",
        "{{ params.__class__ }}",
        "{{ params.root.__class__.__mro__ }}",
    ],
)
def test_plain_lookups_render_as_the_compiled_template_does(text: str) -> None:
    """Text and ``a.b.c`` lookups are rendered without compiling; the result is the same."""
    context = {
        "params": Namespace(
            "params", {"root": "/w", "n": 3, "flag": False, "nested": {"deep": [1, 2]}}
        )
    }
    fast, compiled = StringTemplate(text), StringTemplate(text)
    compiled._lookups = None

    def outcome(template: StringTemplate) -> tuple[str, object]:
        try:
            return "value", template.render(context)
        except TemplateProblem as exc:
            return "problem", str(exc)

    assert fast._lookups is not None
    assert outcome(fast) == outcome(compiled)
