"""Start-up: a command imports what it needs, not every subcommand's libraries.

Checked by what a fresh interpreter has imported, not by timing (a loaded machine makes
timings flaky): ``bench/startup_bench.py`` has the figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from luminaguard.ui import cli

#: Libraries ``luminaguard --version`` must not import: each costs tens of milliseconds up.
HEAVY = (
    *("mcp", "mcp_types", "textual", "starlette", "uvicorn", "jinja2", "tree_sitter"),
    *("httpx2", "httpx", "pydantic", "rich", "yaml", "jsonschema"),
)

#: What the state-reading commands must not import (no plan read, no agent run).
NOT_FOR_READING = (
    *("mcp", "mcp_types", "textual", "tree_sitter", "starlette", "uvicorn", "jinja2"),
    *("pydantic", "luminaguard.compiler", "luminaguard.hypervisor"),
)

PROBE = """
import contextlib, io, json, sys
from luminaguard.ui import cli
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def imported_by(*argv: str) -> tuple[int, set[str]]:
    """The exit code of ``luminaguard ARGV`` in a fresh interpreter, and what it imported."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True
    )
    found = json.loads(done.stdout)
    return found["code"], set(found["modules"])


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Those of ``names`` imported (a package counts when any module of it is)."""
    return [n for n in names if any(m == n or m.startswith(f"{n}.") for m in modules)]


def test_version_imports_no_subcommand_and_no_heavy_library() -> None:
    code, modules = imported_by("--version")
    assert code == 0
    assert loaded(modules, HEAVY) == []
    assert not [m for m in modules if m.startswith("luminaguard.ui.commands.")]


def test_building_the_parser_imports_no_subcommand() -> None:
    code = (
        "import sys; from luminaguard.ui import cli; cli.build_parser();"
        " print(sorted(m for m in sys.modules if m.startswith('luminaguard.ui.commands.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("argv", "exit_code"),
    [(["status"], 0), (["approvals"], 0), (["approve", "r1", "s1"], 1), (["deny", "r1", "s1"], 1)],
    ids=["status", "approvals", "approve", "deny"],
)
def test_reading_the_state_imports_no_agent_machinery(
    argv: list[str], exit_code: int, tmp_path: Path
) -> None:
    code, modules = imported_by(*argv, "--state", str(tmp_path / "state"))
    assert code == exit_code  # approve, deny: no run r1 in an empty state
    assert loaded(modules, NOT_FOR_READING) == []


def test_the_table_gives_each_command_its_modules_own_help() -> None:
    listed = {name: (module, text) for name, module, text in cli.COMMANDS}
    registered: dict[str, tuple[str, str]] = {}
    for module in dict.fromkeys(module for _, module, _ in cli.COMMANDS):
        commands = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"{cli.PACKAGE}.{module}").register(commands)
        for choice in commands._choices_actions:
            registered[choice.dest] = (module, str(choice.help))
    assert registered == listed


def test_a_deferred_parser_shows_its_modules_arguments() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["approve", "r1", "s1", "--as", "ann"])
    assert (args.run_id, args.step_id, args.identity) == ("r1", "s1", "ann")
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert "--reason" in commands.choices["deny"].format_help()  # its sibling, loaded with it
    assert "--server" in commands.choices["approve"].format_usage()
