"""A plan's DAG as nodes and edges, and as Mermaid or Graphviz DOT text.

``plan_graph`` gives the model: one node per step (its id, agent, kind, risk and,
when drawn from a run, its state) and one edge per ``needs`` entry. ``to_mermaid``
and ``to_dot`` render it. It lives below ``ui`` and ``server`` so both can draw it.

Everything in a node comes from user YAML (or from a submitted plan), so the
renderers never put it where the language reads structure: nodes are named
``n0``, ``n1``... in step order, and the text goes into quoted labels, escaped for
each language after ``hostile_text.visible`` has made control characters visible.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from luminaguard.compiler.plan import Plan, PlannedStep
from luminaguard.hostile_text import visible

#: How each risk reads in a label.
RISK_TEXT = {"green": "Green", "red": "Red", "runtime": "decided at run time"}


@dataclass(frozen=True)
class Node:
    """One step: ``key`` is the renderers' safe name for it (``n0``, ``n1``...)."""

    key: str
    id: str
    agent: str
    kind: str
    target: str | None
    risk: str
    state: str | None = None

    def lines(self) -> list[str]:
        """The label's lines, unescaped: id, agent, what it does, risk (and state)."""
        action = f"call {self.target}" if self.target else self.kind
        lines = [self.id, f"agent {self.agent}", action, RISK_TEXT.get(self.risk, self.risk)]
        if self.state is not None:
            lines.append(f"state {self.state}")
        return [visible(line) for line in lines]


@dataclass(frozen=True)
class Edge:
    """``source`` is needed by ``target`` (both node keys)."""

    source: str
    target: str


@dataclass(frozen=True)
class Graph:
    """The nodes in step order, and the edges in the order of the steps' ``needs``."""

    name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


def _node(key: str, step: PlannedStep, state: str | None) -> Node:
    action = step.action
    target = f"{action.server}.{action.tool}" if action.kind == "call" else None
    return Node(key, step.id, step.agent, action.kind, target, step.risk, state)


def plan_graph(plan: Plan, states: Mapping[str, str] | None = None) -> Graph:
    """The plan's steps as nodes, its ``needs`` as edges.

    ``states`` maps step ids to a run's step states, for a graph drawn from a run.
    A need that names no step of the plan (a compiled plan has none) draws no edge.
    """
    keys = {step.id: f"n{index}" for index, step in enumerate(plan.steps)}
    nodes = tuple(_node(keys[step.id], step, (states or {}).get(step.id)) for step in plan.steps)
    edges = tuple(
        Edge(keys[need], keys[step.id])
        for step in plan.steps
        for need in step.needs
        if need in keys
    )
    return Graph(plan.workload, nodes, edges)


# Mermaid: a quoted label ends at '"'; '#...;' is its entity syntax; the label is HTML;
# a line with 'style' or 'classDef', a ':' and then '#' loses a ';' to its style parsing.
_MERMAID_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,/()=+@-]")
_MERMAID_STYLE = {
    "green": "fill:#dcfce7,stroke:#15803d,color:#14532d",
    "red": "fill:#fee2e2,stroke:#b91c1c,stroke-width:3px,color:#7f1d1d",
    "runtime": "fill:#fef9c3,stroke:#a16207,stroke-dasharray:5 3,color:#713f12",
}


def _mermaid_char(match: re.Match[str]) -> str:
    char = match.group()
    return "#quot;" if char == '"' else f"#{ord(char)};"


def mermaid_text(text: str) -> str:
    """``text`` for inside a Mermaid quoted label: all but plain characters as entities."""
    return _MERMAID_UNSAFE.sub(_mermaid_char, text)


def to_mermaid(graph: Graph) -> str:
    """A Mermaid flowchart: one node line per step, one edge line per need, risk classes."""
    out = ["flowchart TD"]
    for node in graph.nodes:
        label = "<br>".join(mermaid_text(line) for line in node.lines())
        out.append(f'    {node.key}["{label}"]')
    out.extend(f"    {edge.source} --> {edge.target}" for edge in graph.edges)
    for risk, style in _MERMAID_STYLE.items():
        keys = [node.key for node in graph.nodes if node.risk == risk]
        if keys:
            out.append(f"    classDef {risk} {style}")
            out.append(f"    class {','.join(keys)} {risk}")
    return "\n".join(out) + "\n"


_DOT_STYLE = {
    "green": 'style=filled, fillcolor="#dcfce7", color="#15803d"',
    "red": 'style="filled,bold", fillcolor="#fee2e2", color="#b91c1c", penwidth=3',
    "runtime": 'style="filled,dashed", fillcolor="#fef9c3", color="#a16207"',
}


def dot_string(text: str) -> str:
    """``text`` as a DOT double-quoted string: backslashes and quotes escaped.

    ``text`` holds no line breaks or other control characters (``visible`` first).
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_label(lines: list[str]) -> str:
    r"""Label lines as a DOT string: ``&`` as ``&amp;`` (dot reads entities), ``\n`` between."""
    text = "\n".join(line.replace("&", "&amp;") for line in lines)
    # a newline is now only a line break of ours: the text's backslashes are '\\' by then
    return dot_string(text).replace("\n", "\\n")


def to_dot(graph: Graph) -> str:
    """A Graphviz digraph: one node per step, styled by risk, one edge per need."""
    out = [
        f"digraph {dot_string(visible(graph.name))} {{",
        "    rankdir=TB;",
        '    node [shape=box, fontname="Helvetica"];',
    ]
    for node in graph.nodes:
        label = dot_label(node.lines())
        style = _DOT_STYLE.get(node.risk, "")
        out.append(f"    {node.key} [label={label}{', ' + style if style else ''}];")
    out.extend(f"    {edge.source} -> {edge.target};" for edge in graph.edges)
    out.append("}")
    return "\n".join(out) + "\n"
