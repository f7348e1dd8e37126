"""Printing a plan as a table, like ``terraform plan``: what will run, and what halts.

rich lays out and wraps every cell of a Table: about 1 ms a row, 9 s for 10,000 steps.
Plans longer than ``LARGE_PLAN`` steps are printed as aligned text lines instead, one
line a step, in time linear in the plan and with no per-cell layout.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from luminaguard.compiler.plan import Plan, PlannedStep
from luminaguard.hostile_text import visible

_RISK_STYLE = {
    "green": ("GREEN", "bold green"),
    "red": ("RED", "bold red"),
    "runtime": ("AT RUN", "yellow"),
}


def _action_text(step: PlannedStep) -> str:
    action = step.action
    if action.kind == "run":
        command = visible((action.command or "").strip())  # a newline shows: it separates commands
        return f"$ {command[:60]}{'…' if len(command) > 60 else ''}"
    args = ", ".join(f"{key}={value!r}" for key, value in sorted(action.args.items()))
    text = f"{action.describe()}({args})"
    return text[:70] + ("…" if len(text) > 70 else "")


def _rule_text(step: PlannedStep) -> str:
    decision = step.decision
    if decision is None:
        return "decided at run time"
    rule = decision.rule or "(default)"
    return f"{decision.policy}/{rule}" + (f"\n{decision.source}" if decision.source else "")


def _shown(text: str) -> Text:
    """A cell shown as it is: no rich markup read, no control character obeyed."""
    return Text(visible(text, multiline=True))


#: Above this many steps the plan is printed as plain aligned lines (``plan_lines``).
LARGE_PLAN = 500

_COLUMNS = ("#", "step", "agent", "action", "risk", "rule", "reason")

#: Columns are padded to their widest cell up to this width; a longer cell (a step that
#: needs thousands) runs on in its own line rather than widening every line.
_MAX_PADDED = 72


def _reason(step: PlannedStep) -> str:
    return step.decision.reason if step.decision else "arguments use outputs of earlier steps"


def plan_table(plan: Plan) -> Table:
    """The plan's steps as a rich table."""
    title = Text(visible(f"Plan for workload {plan.workload!r}"))
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("#", "step", "agent", "action", "risk", "rule", "reason"):
        table.add_column(column, overflow="fold")
    for step in plan.steps:
        label, style = _RISK_STYLE[step.risk]
        reason = _reason(step)
        needs = f"\nneeds: {', '.join(step.needs)}" if step.needs else ""
        table.add_row(
            str(step.order),
            _shown(step.id + needs),
            _shown(step.agent),
            _shown(_action_text(step)),
            Text(label, style=style),
            _shown(_rule_text(step)),
            _shown(reason),
        )
    return table


def summary(plan: Plan) -> str:
    """One line: how many steps run by themselves, halt, or are decided at run time."""
    counts = plan.counts()
    return (
        f"{len(plan.steps)} steps: {counts['green']} green, "
        f"{counts['red']} red (halt for approval), "
        f"{counts['runtime']} decided at run time.  hash {plan.hash}"
    )


def _cells(step: PlannedStep) -> list[str]:
    """One step's cells on one line each: a cell's own lines are joined by ' | '."""
    needs = f" (needs: {', '.join(step.needs)})" if step.needs else ""
    cells = [
        str(step.order),
        step.id + needs,
        step.agent,
        _action_text(step),
        _RISK_STYLE[step.risk][0],
        _rule_text(step),
        _reason(step),
    ]
    return [visible(cell.replace("\n", " | ")) for cell in cells]


def plan_lines(plan: Plan) -> Text:
    """The plan's steps as aligned text lines, risk labels coloured (for large plans)."""
    rows = [list(_COLUMNS), *(_cells(step) for step in plan.steps)]
    widths = [min(_MAX_PADDED, max(cell_len(row[i]) for row in rows)) for i in range(len(_COLUMNS))]
    text = Text(visible(f"Plan for workload {plan.workload!r}") + "\n")
    risk_column = _COLUMNS.index("risk")
    for number, row in enumerate(rows):
        for i, cell in enumerate(row):
            style = _RISK_STYLE[plan.steps[number - 1].risk][1] if number else "bold"
            padded = cell + " " * max(0, widths[i] - cell_len(cell)) if i < len(row) - 1 else cell
            text.append(padded, style=style if i == risk_column or not number else None)
            text.append("  " if i < len(row) - 1 else "\n")
    return text


def print_plan(plan: Plan, console: Console) -> None:
    """Print the table (plain aligned lines for a large plan) and the summary line."""
    if len(plan.steps) > LARGE_PLAN:
        console.print(plan_lines(plan), highlight=False, soft_wrap=True, end="")
    else:
        console.print(plan_table(plan))
    console.print(summary(plan), highlight=False, soft_wrap=True)
