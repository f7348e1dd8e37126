"""Compiling workloads: order, runtime steps, references, params."""

from __future__ import annotations

import pytest

from luminaguard.compiler import compile_paths
from luminaguard.config.diagnostics import ConfigError
from luminaguard.errors import UsageError
from tests.conftest import FIXTURES, Writer

HEADER = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - {id: echo, match: {kind: run, command: {regex: '^echo '}}, risk: green, reason: prints}
    - {id: reads, match: {tool: "read_*"}, risk: green, reason: reads}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  mcp_servers:
    fs: {command: srv, tools: ["read_*", write_file]}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
"""


def compile_text(write: Writer, body: str, workload: str | None = None, **params: object):  # type: ignore[no-untyped-def]
    path = write("w.yaml", HEADER + body)
    _, plans = compile_paths([str(path)], workload, params or None)
    return plans[0]


def errors(write: Writer, body: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        compile_text(write, body)
    return [d.message for d in caught.value.diagnostics]


def test_order_is_topological_with_declaration_order_among_ready(write: Writer) -> None:
    plan = compile_text(
        write,
        """\
  steps:
    - {id: d, agent: a, run: echo d, needs: [b, c]}
    - {id: c, agent: a, run: echo c}
    - {id: b, agent: a, run: echo b, needs: [c]}
    - {id: e, agent: a, run: echo e}
""",
    )
    assert [s.id for s in plan.steps] == ["c", "b", "d", "e"]
    assert [s.order for s in plan.steps] == [1, 2, 3, 4]


def test_runtime_step_is_not_classified_and_keeps_its_template(write: Writer) -> None:
    plan = compile_text(
        write,
        """\
  params: {dir: /w}
  steps:
    - {id: r, agent: a, call: fs.read_text_file, args: {path: "{{ params.dir }}/x"}}
    - id: w
      agent: a
      needs: [r]
      call: fs.write_file
      args: {path: "{{ params.dir }}/y", content: "{{ steps.r.outputs.text }}"}
""",
    )
    read, written = plan.steps
    assert read.decision is not None and read.decision.rule == "reads"
    assert read.action.args == {"path": "/w/x"}
    assert written.runtime and written.decision is None and written.risk == "runtime"
    assert written.action.args["content"] == "{{ steps.r.outputs.text }}"
    assert plan.counts() == {"green": 1, "red": 0, "runtime": 1}


def test_when_is_checked_but_does_not_make_the_step_runtime(write: Writer) -> None:
    plan = compile_text(
        write,
        """\
  steps:
    - {id: a1, agent: a, run: echo 1}
    - {id: a2, agent: a, run: echo 2, needs: [a1], when: "steps.a1.outputs.exit_code == 0"}
""",
    )
    assert plan.steps[1].when == "steps.a1.outputs.exit_code == 0"
    assert not plan.steps[1].runtime and plan.steps[1].risk == "green"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "  steps:\n    - {id: s, agent: a, run: echo, when: 'steps.s.outputs.stdout'}\n",
            "does not need it",
        ),
        ("  steps:\n    - {id: s, agent: a, call: fs.delete}\n", "not in the allow-list"),
        (
            "  steps:\n    - {id: s, agent: a, call: fz.read_x}\n",
            "has no MCP server 'fz' (servers: fs)",
        ),
        (
            "  steps:\n    - {id: s, agent: a, run: echo}\n    - {id: s, agent: a, run: echo}\n",
            "duplicate step id",
        ),
        ("  steps:\n    - {id: s, agent: a, run: echo, needs: [s]}\n", "dependency cycle: s -> s"),
        ("  steps:\n    - {id: s, agent: a, run: echo, when: 'params.x'}\n", "params.x"),
        ("  steps:\n    - {id: s, agent: a, run: echo, when: 'a ='}\n", "syntax error"),
        (
            "  steps:\n    - {id: s, agent: a, run: 'echo {{ steps.t.outputs.stdout }}'}\n",
            "steps.t",
        ),
        ("  steps:\n    - {id: s, agent: a, run: 'echo {{ steps. }}'}\n", "syntax error"),
    ],
)
def test_workload_problems(write: Writer, body: str, message: str) -> None:
    assert any(message in m for m in errors(write, body))


def test_params_can_be_overridden(write: Writer) -> None:
    body = "  params: {who: x}\n  steps:\n    - {id: s, agent: a, run: 'echo {{ params.who }}'}\n"
    assert compile_text(write, body, "w", who="y").steps[0].action.command == "echo 'y'"
    with pytest.raises(UsageError, match="has no param 'whom'"):
        compile_text(write, body, "w", whom="y")


def test_unknown_workload_is_a_usage_error(write: Writer) -> None:
    with pytest.raises(UsageError, match=r"no workload 'v' \(workloads: w\)"):
        compile_text(write, "  steps:\n    - {id: s, agent: a, run: echo}\n", "v")


def test_an_invalid_document_does_not_cause_knock_on_errors(write: Writer) -> None:
    body = "  steps:\n    - {id: s, agent: a, run: echo}\n"
    text = (HEADER + body).replace("  policy: p\n", "  policy: p\n  limits: {memory_mib: lots}\n")
    with pytest.raises(ConfigError) as caught:
        compile_paths([str(write("w.yaml", text))])
    assert [d.message for d in caught.value.diagnostics] == [
        "spec.limits.memory_mib: expected an integer, got string 'lots'"
    ]


def test_param_overrides_need_a_workload_when_there_are_several() -> None:
    with pytest.raises(UsageError, match="--param needs --workload"):
        compile_paths([str(FIXTURES.parent.parent / "examples"), "policies"], None, {"x": 1})
