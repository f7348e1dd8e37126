"""Large plans print as aligned lines, one a step, in time linear in the plan."""

from __future__ import annotations

import io

from rich.console import Console

from luminaguard.compiler import compile_paths
from luminaguard.ui.plan_view import LARGE_PLAN, print_plan
from tests.compiler.test_compile_growth import HEADER, wide
from tests.conftest import Writer


def test_a_large_plan_prints_one_line_a_step(write: Writer) -> None:
    steps = LARGE_PLAN + 100
    path = write("w.yaml", HEADER + wide(steps))
    _, plans = compile_paths([str(path)])
    out = io.StringIO()
    print_plan(plans[0], Console(file=out, width=100))
    lines = out.getvalue().splitlines()
    assert lines[0] == "Plan for workload 'w'"
    assert lines[1].split() == ["#", "step", "agent", "action", "risk", "rule", "reason"]
    assert len(lines) == 2 + steps + 1  # title, header, a line a step, the summary
    assert lines[3].startswith("2 ") and "s1 (needs: s0)" in lines[3]
    assert lines[-1].startswith(f"{steps} steps: ")
    last = lines[-2]  # the step that needs all the others runs on; the others stay narrow
    assert "needs: s1, s2, " in last and len(last) > 1000
    assert max(len(line) for line in lines[2:-2]) < 400
