"""Bad input is refused with FILE:LINE:COL, exit 1, nothing else; errors.py draws every error."""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from luminaguard import errors
from tests.conftest import FIXTURES, CliRunner, Writer

BAD = FIXTURES / "bad"
CASES = sorted(path.stem for path in BAD.glob("*.yaml"))
LOCATED = re.compile(r"^bad/[a-z_]+\.yaml:\d+:\d+: error: .+$")

# case -> (line, column, a phrase the message must contain)
WHERE = {
    "yaml_syntax": (23, 1, "YAML syntax error"),
    "duplicate_key": (23, 7, "duplicate key 'run'"),
    "unknown_field": (26, 7, "did you mean 'needs'"),
    "wrong_type": (24, 16, "expected an integer, got string 'three'"),
    "missing_field": (20, 7, "missing required field 'agent'"),
    "unknown_kind": (16, 7, "unknown kind 'Workflow'"),
    "unknown_api_version": (15, 13, "unknown apiVersion"),
    "duplicate_name": (17, 18, "duplicate Agent 'a'"),
    "unknown_needs": (21, 53, "needs unknown step 'fetsh'; did you mean 'fetch'"),
    "cycle": (21, 49, "dependency cycle: build -> ship -> test -> build"),
    "undefined_template_variable": (24, 12, "undefined template variable params.reop"),
    "sandbox_escape": (22, 12, "may not reach Python internals"),
    "unquoted_template": (28, 16, "quote it"),
}


def test_every_case_has_an_expected_location() -> None:
    assert set(WHERE) <= set(CASES)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_bad_input_is_refused(
    cli: CliRunner, case: str, command: str, snapshot: SnapshotAssertion
) -> None:
    result = cli(command, f"bad/{case}.yaml", cwd=FIXTURES)
    assert result.code == 1
    assert result.out == ""  # no plan, no "ok": nothing else happened
    errors = [line for line in result.err.splitlines() if ": error: " in line]
    assert errors and all(LOCATED.match(line) for line in errors)
    assert result.err.endswith("nothing was compiled\n")
    assert result.err == snapshot


@pytest.mark.parametrize("case", sorted(WHERE))
def test_error_points_at_the_offending_node(cli: CliRunner, case: str) -> None:
    line, column, phrase = WHERE[case]
    first = cli("validate", f"bad/{case}.yaml", cwd=FIXTURES).err.splitlines()[0]
    assert first.startswith(f"bad/{case}.yaml:{line}:{column}: error: ")
    assert phrase in first


def test_all_errors_of_a_file_are_reported(cli: CliRunner) -> None:
    err = cli("validate", "bad/many_errors.yaml", cwd=FIXTURES).err
    assert err.count(": error: ") == 8
    for phrase in (
        "expected 'green' or 'red'",
        "invalid regex",
        "duplicate rule id 'r1'",
        "did you mean 'limits'",
        "params.nope",
        "no MCP server 'git'",
        "add 'two' to needs",
        "unknown step 'five'",
    ):
        assert phrase in err


def test_errors_of_several_files_are_reported_together(cli: CliRunner, write: Writer) -> None:
    other = write("other.yaml", "apiVersion: luminaguard.dev/v1\nkind: Pol\n")
    result = cli("validate", "bad/cycle.yaml", str(other), cwd=FIXTURES)
    assert "2 errors in 2 files" in result.err
    assert f"{other}:2:7: error: unknown kind 'Pol'" in result.err


def test_error_shows_the_source_line_with_a_caret(cli: CliRunner) -> None:
    err = cli("validate", "bad/unknown_field.yaml", cwd=FIXTURES).err
    assert "26 |       nedds: [one]\n   |       ^\n" in err


def _exception_classes(package: Path) -> dict[str, str]:
    """Every exception class defined under ``package``, by name: the file defining it.

    Read from the source (the sandbox helper and the guest agent are not imported on
    the host): a class is an exception when a base is a built-in exception, one found
    here, or a third-party name ending in Error or Exception.
    """
    classes = [
        (node.name, [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases], str(path))
        for path in sorted(package.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
    ]
    builtin = {
        name
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    found: dict[str, str] = {}
    while True:
        known = builtin | set(found)
        new = {
            name: path
            for name, bases, path in classes
            if name not in found
            and any(base in known or base.endswith(("Error", "Exception")) for base in bases)
        }
        if not new:
            return found
        found.update(new)


def test_the_errors_docstring_names_every_exception_class() -> None:
    """The drawing in ``luminaguard/errors.py`` cannot go stale: each class is in it."""
    defined = _exception_classes(Path(errors.__file__).parent)
    assert {"LuminaGuardError", "GuestError", "SetupError", "Missing", "_TooLarge"} <= set(defined)
    drawn = errors.__doc__ or ""
    missing = {
        name: path for name, path in defined.items() if not re.search(rf"(?<!\w){name}\b", drawn)
    }
    assert not missing, f"draw these in luminaguard/errors.py's docstring: {missing}"
