"""A plan's DAG as Mermaid and DOT: what each shows, and hostile step text kept in labels."""

from __future__ import annotations

import re
import shutil
import subprocess
from html import unescape

import pytest
from syrupy.assertion import SnapshotAssertion

from luminaguard.compiler import compile_paths
from luminaguard.compiler.graph import plan_graph, to_dot, to_mermaid
from luminaguard.compiler.plan import Plan
from tests.conftest import ROOT, CliRunner

HOSTILE = [
    'say "hi"',
    "a] --> b[x",
    'x"]; n0 --> n1; %%{init',
    "c}; digraph { d",
    "line\nbreak",
    "back\\slash\\n\\N",
    "#quot; <b>&amp;</b> `md` &#8238;",
    "\u202etxt.exe",
    'style:x"',
]


def _plan(workload: str = "repo-report") -> Plan:
    _, plans = compile_paths([str(ROOT / "examples"), str(ROOT / "policies")], workload)
    return plans[0]


def _hostile_plan() -> Plan:
    """repo-report with each step's id and agent replaced by hostile text, needs kept."""
    plan = _plan()
    names = {step.id: HOSTILE[i] for i, step in enumerate(plan.steps)}
    steps = [
        step.model_copy(
            update={
                "id": names[step.id],
                "agent": HOSTILE[-1 - i],
                "needs": [names[need] for need in step.needs],
            }
        )
        for i, step in enumerate(plan.steps)
    ]
    return plan.model_copy(update={"steps": steps, "workload": 'w" { }'})


def _dot_binary() -> str:
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz's dot is not installed (make unit installs it as root with apt)")
    return dot


def _svg(text: str) -> str:
    done = subprocess.run(
        [_dot_binary(), "-Tsvg"], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def _svg_texts(svg: str) -> list[str]:
    """The text lines an SVG from dot draws, as a person reads them."""
    return [unescape(text) for text in re.findall(r"<text [^>]*>([^<]*)</text>", svg)]


def test_graph_model_has_a_node_per_step_and_an_edge_per_need() -> None:
    plan = _plan()
    graph = plan_graph(plan, {"publish": "awaiting_approval"})
    assert [(n.key, n.id, n.kind, n.risk) for n in graph.nodes] == [
        ("n0", "listing", "call", "green"),
        ("n1", "readme", "call", "green"),
        ("n2", "count", "run", "green"),
        ("n3", "draft", "call", "runtime"),
        ("n4", "publish", "call", "red"),
    ]
    assert [(e.source, e.target) for e in graph.edges] == [
        ("n0", "n3"),
        ("n2", "n3"),
        ("n3", "n4"),
        ("n1", "n4"),
    ]
    assert graph.nodes[4].lines() == [
        "publish",
        "agent repo-reader",
        "call filesystem.write_file",
        "Red",
        "state awaiting_approval",
    ]
    assert graph.nodes[3].lines()[-1] == "decided at run time"
    assert graph.nodes[0].state is None


def test_mermaid_snapshot(cli: CliRunner, snapshot: SnapshotAssertion) -> None:
    result = cli(
        "plan", "examples/", "policies/", "--workload", "repo-report", "--format", "mermaid"
    )
    assert result.code == 0
    assert result.out == snapshot
    assert result.out == to_mermaid(plan_graph(_plan()))


def test_dot_renders_with_graphviz(cli: CliRunner) -> None:
    result = cli("plan", "examples/", "policies/", "--workload", "repo-report", "--format", "dot")
    assert result.code == 0
    svg = _svg(result.out)
    for step in _plan().steps:
        assert step.id in _svg_texts(svg)
    assert svg.count('class="node"') == 5
    assert svg.count('class="edge"') == 4
    assert "#fee2e2" in svg  # the Red step is filled red, the others not
    assert svg.count("#fee2e2") == 1


def test_mermaid_keeps_hostile_text_in_labels() -> None:
    plan = _hostile_plan()
    text = to_mermaid(plan_graph(plan))
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes = [line for line in lines if re.fullmatch(r'    n\d+\["[^"\n]*"\]', line)]
    edges = [line for line in lines if re.fullmatch(r"    n\d+ --> n\d+", line)]
    assert len(nodes) == len(plan.steps)
    assert len(edges) == sum(len(step.needs) for step in plan.steps)
    styles = [line for line in lines if line.startswith(("    classDef ", "    class "))]
    assert len(lines) == 1 + len(nodes) + len(edges) + len(styles)
    # no character that Mermaid reads as structure, entity or markup is left in a label
    for line in nodes:
        label = line.split('["', 1)[1][:-2].replace("<br>", "")
        assert re.fullmatch(r"([A-Za-z0-9 _.,/()=+@-]|#quot;|#\d+;)*", label), label
    assert "say #quot;hi#quot;" in nodes[0]
    assert "line#92;nbreak" in nodes[4]  # the newline shows as \n, on the node's own line


def test_dot_keeps_hostile_text_in_labels() -> None:
    plan = _hostile_plan()
    text = to_dot(plan_graph(plan))
    assert 'label="say \\"hi\\"\\n' in text
    assert "back\\\\slash\\\\n\\\\N" in text  # the text's backslashes never escape in DOT
    svg = _svg(text)
    assert svg.count('class="node"') == len(plan.steps)
    assert svg.count('class="edge"') == sum(len(step.needs) for step in plan.steps)
    # every label line drawn as it was given (a newline shown as \n), none more
    lines = [line for node in plan_graph(plan).nodes for line in node.lines()]
    assert sorted(_svg_texts(svg)) == sorted(lines)
    assert "agent back\\slash\\n\\N" in lines
    assert "line\\nbreak" in lines


def test_graph_formats_print_one_plan(cli: CliRunner) -> None:
    result = cli("plan", "examples/", "policies/", "--format", "dot")
    assert result.code != 0
    assert "--format dot prints one plan; choose one with --workload" in result.err
