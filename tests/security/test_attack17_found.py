"""Attack round 17: the one-pass YAML loader, and template values from hostile outputs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from luminaguard.compiler.compile import compile_paths
from luminaguard.config.loader import load_documents
from luminaguard.config.location import SourceLocation
from luminaguard.config.render import (
    Namespace,
    TemplateProblem,
    render_command_text,
    render_text,
)
from luminaguard.config.yamlsource import MAX_ALIAS_NODES, MAX_DEPTH, parse_yaml
from luminaguard.transport.base import ToolInfo, ToolResult
from tests.scheduler.harness import HEAD, Harness, compile_steps


def _chain(links: int, depth: int = 90) -> str:
    """Anchors each ``depth`` deep, each holding an alias to the one before at its bottom."""
    lines = []
    for i in range(links):
        inner = f"*a{i - 1}" if i else "1"
        lines.append(f"a{i}: &a{i} " + "[" * depth + inner + "]" * depth)
    return "\n".join(lines) + "\n"


def test_aliases_cannot_nest_collections_past_the_depth_bound(tmp_path: Path) -> None:
    """Each anchor is 90 deep (under the bound), but an alias stands at the bottom of the
    next: replayed, the value nests 360 deep. Only the events read were checked for depth,
    so building it recursed past Python's limit: a RecursionError traceback from
    ``luminaguard validate``. The alias is now refused where it stands, with the file."""
    text = _chain(4)
    documents, problems = parse_yaml("f.yaml", text)
    assert documents == []
    assert [p.message for p in problems] == [
        f"collections are nested more than {MAX_DEPTH} deep (through an alias)"
    ]
    assert problems[0].location == SourceLocation("f.yaml", 2, 99)  # the alias *a0
    (tmp_path / "deep.yaml").write_text(_chain(12))
    result = load_documents([str(tmp_path)])
    assert [d.message.split(" (")[0] for d in result.diagnostics] == [
        f"collections are nested more than {MAX_DEPTH} deep"
    ]
    # as deep as the bound through an alias still loads
    shallow = "a: &a " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\nb: *a\n"
    assert parse_yaml("f.yaml", shallow)[1] == []


def test_many_documents_cannot_each_spend_the_alias_budget() -> None:
    """The alias budget was per document: a file of many documents, each expanding
    aliases just under MAX_ALIAS_NODES, built 50,000 nodes (and their locations) per
    document - 95 KB of YAML took 600 MB and 6 s, a megabyte would take gigabytes. The
    budget is now the file's."""
    per_document = MAX_ALIAS_NODES // 2 - 2_000  # under the bound alone
    aliases = per_document // 1000
    document = "---\na: &a [" + ",".join(["x"] * 999) + "]\n"
    document += "".join(f"k{i}: *a\n" for i in range(aliases))
    one, problems = parse_yaml("f.yaml", document)
    assert len(one) == 1 and problems == []
    documents, problems = parse_yaml("f.yaml", document * 3)
    assert documents == []
    assert [p.message for p in problems] == [
        f"aliases expand this file beyond {MAX_ALIAS_NODES} nodes"
    ]
    assert problems[0].location.line > 2 * document.count("\n")  # in the third document


def test_a_tag_on_a_collection_is_not_dropped() -> None:
    """Tags were checked on scalars only: ``!!python/object/apply:os.system [ls]`` loaded
    as the list ``['ls']``, ``!!set {a, b}`` as a mapping of nulls, ``!!omap`` as a list,
    ``!custom {...}`` as a mapping, and ``!!binary aGk=: 1`` the key ``aGk=`` - the file
    said one thing and was read as another. A collection's tag other than its own, and a
    key's unsupported tag, are now the same located problem as a scalar value's."""
    for text, tag in [
        (
            "a: !!python/object/apply:os.system [ls]\n",
            "tag:yaml.org,2002:python/object/apply:os.system",
        ),
        ("a: !!set {x, y}\n", "tag:yaml.org,2002:set"),
        ("a: !!omap [b: 1]\n", "tag:yaml.org,2002:omap"),
        ("a: !custom {b: 1}\n", "!custom"),
        ("a: !!seq {b: 1}\n", "tag:yaml.org,2002:seq"),
        ("a: !!str [1]\n", "tag:yaml.org,2002:str"),
    ]:
        documents, problems = parse_yaml("f.yaml", text)
        assert [(p.location, p.message) for p in problems] == [
            (SourceLocation("f.yaml", 1, 4), f"unsupported YAML tag {tag!r}")
        ], text
        assert documents[0].data == {"a": None}
    for text, tag in [
        ("!!binary aGk=: 1\n", "tag:yaml.org,2002:binary"),
        ("!!python/name:os.system : 1\n", "tag:yaml.org,2002:python/name:os.system"),
        ("!custom k: 1\n", "!custom"),
    ]:  # a key's tag was dropped likewise: 'aGk=', '', 'k'
        documents, problems = parse_yaml("f.yaml", text)
        assert [(p.location, p.message) for p in problems] == [
            (SourceLocation("f.yaml", 1, 1), f"unsupported YAML tag {tag!r}")
        ], text
        assert documents[0].data == {}
    ok, problems = parse_yaml("f.yaml", "a: !!map {b: !!seq [1]}\nc: ! [2]\n!!str 1: x\n")
    assert problems == [] and ok[0].data == {"a": {"b": [1]}, "c": [2], "1": "x"}


LOOKUP = ToolInfo("lookup", "Look a key up.", {"type": "object"}, {"readOnlyHint": True})
CALLS = """\
    - {id: ask, agent: a, call: tools.lookup, args: {key: colour}, timeout: 5s}
    - id: use
      agent: a
      needs: [ask]
      call: tools.lookup
      args:
        key: "{{ steps.ask.outputs.structured.values }}"
        note: "x {{ steps.ask.outputs.structured.r.title }}"
"""


def test_a_hostile_output_cannot_make_a_template_value_a_method(tmp_path: Path) -> None:
    """A lookup prefers attributes, so ``structured.values`` on a tool's hostile result
    ``{"values": [...]}`` is the dict's bound method (and ``r.title``, where the result
    gives a string for ``r``, is ``str.title``). The method went into the next call's
    arguments and the run crashed with a PydanticSerializationError traceback (hashing
    the action); written as text it disclosed a memory address. It is now refused: the
    step fails with a message saying how to read such a key; the run goes on."""
    harness = Harness(tmp_path / "state")
    harness.tools.tools = [LOOKUP]
    harness.tools.on("lookup", ToolResult(text="t", structured={"values": ["x"], "r": "s"}))
    try:
        assert harness.start(compile_steps(tmp_path, CALLS)).state == "failed"
        use = harness.store.steps("r")["use"]
        assert use.state == "failed"
        assert "not data" in (use.error or "") and "x['items']" in (use.error or "")
        assert len(harness.tools.calls) == 1  # only ask was called
    finally:
        harness.store.close()
    context = {"steps": {"a": {"r": "s", "values": [1]}}}
    for text in ("{{ steps.a.values }}", "x {{ steps.a.r.title }}", "{{ (steps.a.r).title }}"):
        with pytest.raises(TemplateProblem, match="not data"):
            render_text(text, context)
        with pytest.raises(TemplateProblem, match="not data"):
            render_command_text("echo " + text, context)
    assert render_text("{{ steps.a['values'] }}", context) == [1]


PARAM_STEPS = """\
  params: {who: "x"}
  steps:
    - {id: secret, agent: a, call: tools.lookup, args: {key: s}}
    - {id: ask, agent: a, call: tools.lookup, args: {key: colour}}
    - id: use
      agent: a
      needs: [ask]
      call: tools.lookup
      args: {a: "{{ params.who }}", b: "{{ steps.ask.outputs.text }}"}
"""


def test_a_param_value_is_not_rendered_again_at_run_time(tmp_path: Path) -> None:
    """A call step's arguments were rendered at compile time (params), then all of them
    again at run time when any one used a step's output: a param value (``--param``, or
    a run's params posted to the server) holding ``{{ steps.secret.outputs.text }}
    {{ 7*7 }}`` was evaluated as a template - it read the output of a step ``use`` does
    not need (past the needs check) and computed 49. A runtime step's arguments are now
    kept as written and rendered once, at run time: the param is data."""
    harness = Harness(tmp_path / "state")
    harness.tools.tools = [LOOKUP]
    harness.tools.on("lookup", lambda args: ToolResult(text=f"T-{args.get('key')}"))
    path = tmp_path / "w.yaml"
    path.write_text((HEAD % {"approval": "1h"}).replace("  steps:\n", "") + PARAM_STEPS)
    injected = "{{ steps.secret.outputs.text }} {{ 7*7 }}"
    _, plans = compile_paths([str(path)], None, {"who": injected})
    try:
        assert harness.start(plans[0]).state == "succeeded"
        assert harness.tools.calls[-1].arguments == {"a": injected, "b": "T-colour"}
    finally:
        harness.store.close()


def test_a_param_or_step_named_like_a_namespace_attribute_is_read() -> None:
    """``params`` and ``steps`` are Namespaces (dicts with a ``label``): a lookup prefers
    attributes, so ``{{ params.label }}`` rendered "params" - silently the wrong value -
    and a step with ID ``label``, ``items`` or ``values`` could not be referenced at all
    (``steps.label`` was the text "steps"). A Namespace's own names now come first."""
    outputs = Namespace("steps.items.outputs", {"stdout": "out"})
    context = {
        "params": Namespace("params", {"label": "L", "items": [1], "get": "g"}),
        "steps": Namespace("steps", {"items": Namespace("steps.items", {"outputs": outputs})}),
    }
    assert render_text("{{ params.label }}", context) == "L"
    assert render_text("{{ (params).label }}", context) == "L"  # compiled by jinja2
    assert render_text("{{ params.items }}", context) == [1]
    assert render_text("x{{ params.get }}", context) == "xg"
    assert render_text("{{ steps.items.outputs.stdout }}", context) == "out"
    assert render_command_text("echo {{ params.label }}", context) == "echo 'L'"
    with pytest.raises(TemplateProblem, match=r"undefined template variable params\.nope"):
        render_text("{{ params.nope }}", context)
    with pytest.raises(TemplateProblem, match="Python internals"):
        render_text("{{ params.label.__class__ }}", context)


class _StepsView(Mapping[str, Any]):
    """A read-only mapping naming itself with a class ``label``, as a runner's view may."""

    label = "steps"

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def test_a_step_named_like_a_mapping_attribute_is_read_from_a_labelled_view() -> None:
    """The same holds when ``steps`` is a labelled read-only mapping, not a Namespace:
    ``steps.label`` would be the view's own label and ``steps.items`` its method."""
    found = {k: Namespace(f"steps.{k}", {"outputs": {"text": k}}) for k in ("label", "items")}
    context = {"params": Namespace("params", {}), "steps": _StepsView(found)}
    assert render_text("{{ steps.label.outputs.text }}", context) == "label"
    assert render_text("x{{ steps.items.outputs.text }}", context) == "xitems"
    assert render_text("{{ (steps).items.outputs.text }}", context) == "items"
    with pytest.raises(TemplateProblem, match="not data"):
        render_text("{{ steps.values }}", context)


def test_a_huge_hexadecimal_integer_is_a_located_problem(tmp_path: Path) -> None:
    """A decimal integer past Python's 4,300-digit limit was already 'not a valid int',
    but ``0x`` + 4,000 ``f`` was read (hexadecimal has no limit) and every later ``str``
    or ``json.dumps`` of it raised ValueError: ``luminaguard validate`` and ``plan``
    ended in a traceback. It is now the same located problem, its text shortened."""
    text = "a: 0x" + "f" * 4000 + "\nb: 0x" + "f" * 100 + "\n"
    documents, problems = parse_yaml("f.yaml", text)
    assert [(p.location, p.message) for p in problems] == [
        (
            SourceLocation("f.yaml", 1, 4),
            "'0xffffffffffffffffffffffffffffffffffffff'... (4002 characters) is not a valid int",
        )
    ]
    assert documents[0].data == {"a": None, "b": 16**100 - 1}
    path = tmp_path / "h.yaml"
    path.write_text("n: 0o" + "7" * 6000 + "\n")
    result = load_documents([str(path)])
    assert [str(d.location) for d in result.diagnostics][:1] == [f"{path}:1:4"]
