"""``luminaguard policy test|explain|replay|lint``: tools for policy authors."""

from __future__ import annotations

import argparse

from luminaguard.ui.commands import policy_explain, policy_lint, policy_replay, policy_test


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``policy`` and its actions."""
    parser = commands.add_parser("policy", help="test, explain, replay and lint policies")
    actions = parser.add_subparsers(dest="policy_action", required=True, metavar="ACTION")
    for module in (policy_test, policy_explain, policy_replay, policy_lint):
        module.register(actions)
