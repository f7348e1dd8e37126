"""``luminaguard policy explain --policy NAME ACTION``: the evaluation trace, rule by rule.

With a tool lock (``--lock FILE``, default ./luminaguard.lock when it exists) a call is
given its tool's locked annotations, as the compiler gives them, so that ``explain``
decides exactly as the plan does.
"""

from __future__ import annotations

import argparse
import json

import yaml
from pydantic import ValidationError

from luminaguard.compiler.compile import load_checked
from luminaguard.compiler.lock import add_lock_option, find_lock
from luminaguard.config.models.policy_test import ActionSpec
from luminaguard.errors import UsageError
from luminaguard.policy.action import Action, written
from luminaguard.policy.explain import RuleTrace, Trace, explain
from luminaguard.ui.commands.explain_lock import locked_annotations
from luminaguard.ui.exit_codes import OK
from luminaguard.ui.policy_report import decided

EXAMPLE = "'{call: filesystem.write_file, args: {path: /etc/passwd}}' or '{run: rm -rf /work}'"


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``policy explain``."""
    parser = actions.add_parser(
        "explain", help="show how a policy decides one action, rule by rule"
    )
    parser.add_argument("action", metavar="ACTION", help=f"the action, as in test files: {EXAMPLE}")
    parser.add_argument("--policy", required=True, metavar="NAME", help="the policy to ask")
    parser.add_argument(
        "--path", action="append", metavar="PATH", help="where the policy is (default: policies)"
    )
    parser.add_argument(
        "--agent",
        metavar="NAME",
        help="the agent whose locked tools to use (default: the agents of the policy)",
    )
    add_lock_option(parser)
    parser.set_defaults(handler=run)


def parse_action(text: str) -> Action:
    """The Action written on the command line (a YAML mapping), or a UsageError."""
    try:
        return written(ActionSpec.model_validate(yaml.safe_load(text)))
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        detail = f"{where}: {problem['msg']}" if where else problem["msg"]
    except yaml.YAMLError as exc:
        detail = f"not YAML: {str(exc).splitlines()[0]}"
    raise UsageError(f"ACTION is not an action ({detail}); write e.g. {EXAMPLE}")


def _describe(action: Action) -> str:
    if action.kind == "run":
        return action.describe()
    hints = f" annotations {json.dumps(action.annotations)}" if action.annotations else ""
    return f"{action.describe()} {json.dumps(action.args, sort_keys=True)}{hints}"


def _rule_lines(number: int, rule: RuleTrace) -> list[str]:
    head = f"{number:>3}  {rule.rule:<24} {rule.source:<32}"
    if not rule.evaluated:
        return [f"{head} not evaluated (an earlier rule decided)"]
    verdict = f"MATCH -> {rule.risk}" if rule.matched else "no match"
    lines = [f"{head} {verdict}"]
    lines += [f"       {'held  ' if c.held else 'FAILED'}  {c.text}" for c in rule.conditions]
    return lines


def _parse_lines(trace: Trace) -> list[str]:
    """The parsed command: each simple command and who decided it, then each one's rules."""
    if trace.undecidable is not None:
        return ["parsed: cannot be decided before it runs: " + trace.undecidable, ""]
    red = next((part for part in trace.parts if part.decision.risk == "red"), None)
    lines = [f"parsed: {len(trace.parts)} simple command(s)"]
    for number, part in enumerate(trace.parts, start=1):
        simple = part.part.simple
        rule = part.decision.rule or "(default)"
        mark = "  <- makes the whole Red" if part is red and len(trace.parts) > 1 else ""
        wrapped = f" (inside {' > '.join(simple.wrappers)})" if simple.wrappers else ""
        lines.append(f"{number:>3}. {simple.text!r}{wrapped}: {part.decision.risk} by {rule}{mark}")
        lines.append(f"       program {simple.program!r}, arguments {list(simple.args)!r}")
        for redirect in simple.redirects:
            lines.append(f"       redirection {redirect.operator} {redirect.target!r}")
    for number, part in enumerate(trace.parts, start=1):
        lines += ["", f"part {number}: {part.part.simple.text!r}"]
        if not part.rules:
            lines.append(f"       {part.decision.reason}")
        for index, traced in enumerate(part.rules, start=1):
            lines += _rule_lines(index, traced)
    return [*lines, ""]


def render(trace: Trace, where: str) -> str:
    """The trace as text: the action, each rule's conditions (per simple command), the decision."""
    lines = [f"policy {trace.policy} ({where})", f"action: {_describe(trace.action)}", ""]
    if trace.action.kind == "run":
        lines += _parse_lines(trace)
    else:
        for number, rule in enumerate(trace.rules, start=1):
            lines += _rule_lines(number, rule)
    decision = trace.decision
    lines += ["", f"decision: {decided(decision)}: {decision.reason}"]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Print the trace of the policy deciding the action."""
    action = parse_action(args.action)
    bundle = load_checked(args.path or ["policies"])
    document = bundle.catalog.get("Policy", args.policy)
    if document is None:
        known = ", ".join(bundle.catalog.names("Policy")) or "none"
        raise UsageError(f"no policy {args.policy!r} under the paths given (policies: {known})")
    lock = find_lock(args.lock)
    if lock is not None:  # as the compiler does: the plan's action has the lock's annotations
        hints = locked_annotations(lock, bundle.catalog, args.policy, args.agent, action)
        action = action if hints is None else action.model_copy(update={"annotations": hints})
    where = str(document.source.locations.value(("metadata", "name")).file)
    print(render(explain(bundle.engine(args.policy), action), where), end="")
    return OK
