"""The ``luminaguard`` command: parse the command line, dispatch to a subcommand.

Starting is cheap: the parser lists every subcommand from ``COMMANDS`` without importing
its module. A subcommand's module (its arguments, its handler and whatever they import:
the MCP SDK, the compiler, Textual...) is imported when that subcommand is parsed, or
its help shown: ``luminaguard --version`` loads none of them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from luminaguard import __version__

TYPE_CHECKING = False  # mypy treats this name as true; importing typing costs start time
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

PACKAGE = "luminaguard.ui.commands"

# (name, module under PACKAGE, help) in the order ``luminaguard --help`` lists them; the
# module's ``register`` adds the arguments (a test checks it gives the same help).
COMMANDS = (
    ("validate", "validate", "check configuration files; change nothing"),
    ("plan", "plan", "show what would run, Green or Red, without running it"),
    ("run", "run", "compile and run a workload; Red steps halt for approval"),
    ("status", "status", "list runs, or show one run's steps"),
    ("resume", "resume", "continue a run after approvals or a crash"),
    (
        "retry",
        "retry",
        "re-open a failed step (and the steps it skipped) to run again on resume",
    ),
    (
        "diff",
        "gitops",
        "what reconciling a source would change (exit 0 none, 1 some, 2 error)",
    ),
    (
        "reconcile",
        "gitops",
        "apply a source once: pools, policies, images, triggered workloads",
    ),
    ("serve", "serve", "serve the state folder: runs, approvals and events over HTTP"),
    ("approvals", "approvals", "list approval requests waiting for a decision"),
    (
        "approve",
        "approvals",
        "approve a Red step's exact action (or re-running an unknown step)",
    ),
    ("deny", "approvals", "deny a Red step (or decline re-running an unknown step)"),
    ("mark-done", "approvals", "declare an unknown step done without running it again"),
    ("audit", "audit", "show or verify the HMAC-chained audit log"),
    ("policy", "policy", "test, explain, replay and lint policies"),
    ("lock", "lock", "start each agent's MCP servers and pin their tools"),
    ("image", "image", "build and list guest images for micro-VMs"),
    ("pool", "pool", "warm pools of micro-VMs"),
    ("token", "token", "create, list or revoke the bearer tokens of `luminaguard serve`"),
    ("doctor", "doctor", "report which backends this machine can run"),
    ("schema", "schema", "write the JSON Schemas of the kinds"),
)


class Deferred(argparse.ArgumentParser):
    """A subcommand's parser whose module adds its arguments when it is first needed."""

    # the subcommands, while the module is still to be imported
    commands: argparse._SubParsersAction[Deferred] | None = None
    module = ""

    def load(self) -> None:
        """Import the subcommand's module and let it register (once)."""
        commands, self.commands = self.commands, None
        if commands is not None:
            importlib.import_module(f"{PACKAGE}.{self.module}").register(commands)

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        """Parse, the module's arguments added first."""
        self.load()
        return super().parse_known_args(*args, **kwargs)

    def format_usage(self) -> str:
        """The usage line, the module's arguments added first."""
        self.load()
        return super().format_usage()

    def format_help(self) -> str:
        """The help, the module's arguments added first."""
        self.load()
        return super().format_help()


class Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The subcommands: a module registering a listed one gets the parser already made."""

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        """The parser of ``name``: the listed one (its module loading), else a new one."""
        made = self._name_parser_map.get(name)
        if isinstance(made, Deferred):
            made.commands = None  # loaded: its module adds the arguments now
            return made
        return super().add_parser(name, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered (their modules not imported)."""
    parser = argparse.ArgumentParser(
        prog="luminaguard",
        description="Run AI-agent work declaratively and contained: Red steps halt for approval.",
        epilog="exit codes: 0 done, 1 invalid input, 2 step failed or denied, "
        "3 halted awaiting approval, 4 internal error",
    )
    parser.add_argument("--version", action="version", version=f"luminaguard {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", action=Commands, parser_class=Deferred
    )
    for name, module, text in COMMANDS:  # listed now, each module imported when parsed
        listed = commands.add_parser(name, help=text)
        listed.module, listed.commands = module, commands
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse reports usage errors itself (--version: not an error)
        from luminaguard.ui.exit_codes import INVALID

        return INVALID if exc.code not in (0, None) else 0
    from luminaguard.ui.exit_codes import guarded

    return guarded(lambda: int(args.handler(args)))


if __name__ == "__main__":
    sys.exit(main())
