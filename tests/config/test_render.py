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


PLAIN_EDGES = [
    "",
    "plain text",
    "{{ a }}",
    "{{a.b}}",
    "{{\ta.b_c.D9\t}}",
    " {{ a.b }} ",
    "{{ a }}{{ b.c }}",
    "x }} y {{ z }}",
    "{{{ a }}",
    "{{ a }}}",
    "{ {{ a }} }",
    "{{ true }}",
    "{{ a.none }}",
    "{{ not.a }}",
    "{{ a.0 }}",
    "{{ a[0] }}",
    "{{ a | e }}",
    "{{ a() }}",
    "{{- a }}",
    "{{ a -}}",
    "{{+ a }}",
    "{{ a.b\n}}",
    "line\r\n{{ a }}",
    "{% raw %}{{ a }}{% endraw %}",
    "{# c #}{{ a }}",
    "{{ 'x' }}",
    "{{ é }}",
    "{{ steps }}",
    "{{ steps.s1 }} and {{ steps.s2.outputs.stdout }}",
    "{{ params.root }}/r1/{{ steps.s0.outputs.text }}\n",
]


def _plain_cases() -> list[str]:
    """The edges, and random strings of template pieces (seeded: the same every run)."""
    from random import Random

    pieces = ["{{", "}}", "{", "}", " ", "\t", "\n", "a", "b1", ".", "steps", "true", "-", "x/"]
    chooser = Random(16)
    return PLAIN_EDGES + [
        "".join(chooser.choices(pieces, k=chooser.randint(1, 12))) for _ in range(3000)
    ]


def test_plain_parts_read_templates_as_jinja2_parses_them() -> None:
    """Read without jinja2, a template has jinja2's parts, steps and lone-expression answer;
    anything else is left to jinja2 (None)."""
    from jinja2 import TemplateSyntaxError

    from luminaguard.config import render

    accepted = 0
    for text in _plain_cases():
        parts = render.plain_parts(text)
        if parts is None:
            continue
        try:
            ast = render.ENVIRONMENT.parse(text)
        except TemplateSyntaxError:  # pragma: no cover - a failure names the text
            pytest.fail(f"read without jinja2, but jinja2 refuses it: {text!r}")
        accepted += 1
        assert parts == (render._lookups(ast) or []) or (parts == [] and text == ""), text
        steps, lone = render._plain_facts(parts)
        assert steps == frozenset(render._step_refs(ast)), text
        assert lone == (render._lone_expression(ast) is not None), text
    assert accepted > 100  # the fast reading is exercised, not only the fallback


@pytest.mark.parametrize(
    "text",
    [
        "cmd {{ params.repo }}/x",
        "cmd '{{ params.repo }}' \"{{ params.n }}\" {{ params.tags }}",
        "echo {{ steps.a.outputs.stdout }}",
        "echo {{ params.missing }}",
        "echo {{ params.__class__ }}",
        "sh -c {{ params.repo }}",
        "echo $(cat {{ params.repo }})",
        "echo {{ params.repo | upper }}",
    ],
)
def test_commands_looked_up_render_as_compiled_ones_do(text: str) -> None:
    """A command of plain lookups is rendered without compiling; the same words result."""
    from luminaguard.config.render import CommandTemplate

    fast, compiled = CommandTemplate(text), CommandTemplate(text)
    compiled._lookups = None

    def outcome(template: CommandTemplate) -> tuple[str, object]:
        try:
            return "value", template.render(CONTEXT)
        except TemplateProblem as exc:
            return "problem", str(exc)

    assert outcome(fast) == outcome(compiled)


def test_a_template_is_parsed_once_for_its_steps_and_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``string_template`` keeps the parsed template: a second use parses nothing."""
    from luminaguard.config import render

    parsed: list[str] = []
    real = render.ENVIRONMENT.parse

    def counted(source: str, *args: Any, **kwargs: Any) -> Any:
        parsed.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(render.ENVIRONMENT, "parse", counted)
    text = "{{ steps.a.outputs.stdout | trim }}-once"
    render.string_template.cache_clear()
    assert render.string_template(text).steps == {"a"}
    assert render.render_text(text, CONTEXT) == "x-once"
    assert parsed == [text]
    assert render_text("{{ params.repo }}/{{ params.n }}", CONTEXT) == "/r/5"
    assert parsed == [text]  # plain lookups: jinja2 not asked at all
