"""``luminaguard policy lint [PATH...]``: shadowed rules, duplicate ids, tools nobody locked."""

from __future__ import annotations

import argparse

from luminaguard.compiler.compile import load_checked
from luminaguard.compiler.lock import LOCK_FILE, ToolLock, add_lock_option, find_lock
from luminaguard.config.models import PolicyDocument
from luminaguard.config.validate import Document
from luminaguard.policy.lint import Finding, shadowed, unknown_tools
from luminaguard.ui.exit_codes import INVALID, OK


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``policy lint``."""
    parser = actions.add_parser(
        "lint", help="find rules that can never match and rules about tools no lock knows"
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="default: policies")
    add_lock_option(parser)
    parser.set_defaults(handler=run)


def _known(lock: ToolLock) -> list[tuple[str, str]]:
    return [
        (key.split("/", 1)[-1], tool)
        for key, server in lock.servers.items()
        for tool in server.tools
    ]


def _findings(document: Document, lock: ToolLock | None, lock_name: str) -> list[str]:
    assert isinstance(document.model, PolicyDocument)
    rules = document.model.spec.rules
    where = [document.source.locations.value(("spec", "rules", i)) for i in range(len(rules))]
    found: list[Finding] = list(shadowed(rules, [f"{w.file}:{w.line}" for w in where]))
    if lock is not None:
        found += unknown_tools(rules, _known(lock), lock_name)
    return [f"{where[f.index]}: {f.severity}: {f.message}" for f in found]


def run(args: argparse.Namespace) -> int:
    """Exit 1 on errors (a rule that can never match, or invalid files); warnings exit 0."""
    bundle = load_checked(args.paths or ["policies"])  # duplicate ids are errors here
    lock = find_lock(args.lock)
    lock_name = args.lock or LOCK_FILE
    lines: list[str] = []
    for name in bundle.catalog.names("Policy"):
        document = bundle.catalog.get("Policy", name)
        assert document is not None
        lines += _findings(document, lock, lock_name)
    for line in lines:
        print(line)
    errors = sum(": error: " in line for line in lines)
    policies = len(bundle.catalog.names("Policy"))
    note = "" if lock is not None else "; no lock file, so tools were not checked"
    print(f"{policies} policies: {errors} errors, {len(lines) - errors} warnings{note}")
    return INVALID if errors else OK
