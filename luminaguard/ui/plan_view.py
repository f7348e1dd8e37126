"""Printing a plan as a table, like ``terraform plan``: what will run, and what halts."""

from __future__ import annotations

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


def plan_table(plan: Plan) -> Table:
    """The plan's steps as a rich table."""
    title = Text(visible(f"Plan for workload {plan.workload!r}"))
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("#", "step", "agent", "action", "risk", "rule", "reason"):
        table.add_column(column, overflow="fold")
    for step in plan.steps:
        label, style = _RISK_STYLE[step.risk]
        reason = step.decision.reason if step.decision else "arguments use outputs of earlier steps"
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


def print_plan(plan: Plan, console: Console) -> None:
    """Print the table and the summary line."""
    console.print(plan_table(plan))
    console.print(summary(plan), highlight=False, soft_wrap=True)
