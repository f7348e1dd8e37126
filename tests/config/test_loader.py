"""Loading from files and folders; validation details."""

from __future__ import annotations

from pathlib import Path

import pytest

from luminaguard.config import load_documents
from luminaguard.config.models.common import parse_duration
from luminaguard.errors import UsageError
from tests.conftest import Writer

POLICY = "apiVersion: luminaguard.dev/v1\nkind: Policy\nmetadata: {name: %s}\nspec: {}\n"


def test_folders_are_walked_in_order_skipping_hidden(tmp_path: Path, write: Writer) -> None:
    write("b/two.yml", POLICY % "two")
    write("a/one.yaml", POLICY % "one")
    write(
        "a/one.test.yaml",
        "apiVersion: luminaguard.dev/v1\nkind: PolicyTest\nmetadata: {name: t}\n"
        "spec: {policy: one, tests: [{name: x, run: ls, expect: red}]}\n",
    )
    write(".hidden/x.yaml", "broken: [\n")
    write("notes.txt", "ignored")
    result = load_documents([str(tmp_path)])
    assert [(d.kind, d.name) for d in result.documents] == [
        ("PolicyTest", "t"),  # one.test.yaml sorts before one.yaml
        ("Policy", "one"),
        ("Policy", "two"),
    ]
    assert not result.diagnostics


def test_a_file_named_twice_is_read_once(tmp_path: Path, write: Writer) -> None:
    path = write("p.yaml", POLICY % "p")
    result = load_documents([str(path), str(tmp_path)])
    assert len(result.documents) == 1


def test_missing_path_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no such file or directory: /nope"):
        load_documents(["/nope"])


def test_declared_names_include_invalid_documents(write: Writer) -> None:
    path = write(
        "p.yaml",
        "apiVersion: luminaguard.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec: {x: 1}\n",
    )
    result = load_documents([str(path)])
    assert result.documents == [] or result.documents[0].name == "p"
    assert result.declared("Policy") == {"p"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]\n", "a document must be a mapping"),
        ("kind: Policy\n", "missing apiVersion"),
        ("apiVersion: luminaguard.dev/v1\n", "missing kind"),
        ("apiVersion: luminaguard.dev/v1\nkind: 3\n", "unknown kind 3"),
    ],
)
def test_envelope_problems(write: Writer, text: str, message: str) -> None:
    result = load_documents([str(write("x.yaml", text))])
    assert message in result.diagnostics[0].message


SPEC_PROBLEMS = [
    ("Image", "rootfs: x\negress: [a:1]\n", "needs network: egress-allowlist"),
    ("Pool", "image: i\nwarm: 9\nmax: 2\n", "warm (9) must not exceed max (2)"),
    ("Agent", "policy: p\npool: a\nimage: b\n", "either 'pool' or 'image'"),
    ("Agent", "policy: p\nmcp_servers: {s: {url: u, urls: [v]}}\n", "either 'url' or 'urls'"),
    ("Agent", "policy: p\nmcp_servers: {s: {url: u, args: [x]}}\n", "only apply to a stdio server"),
    ("Agent", "policy: p\nmcp_servers: {s: {}}\n", "either 'command'"),
    ("Agent", "policy: p\nenv: {A: {from_env: 'bad name'}}\n", "is not valid here"),
    (
        "Workload",
        "steps: [{id: a, agent: b, run: ls, args: {x: 1}}]\n",
        "'args' belong to a 'call'",
    ),
    ("Workload", "steps: [{id: a, agent: b, call: nodot}]\n", "SERVER.TOOL"),
    ("Workload", "steps: [{id: Bad-Id, agent: b, run: ls}]\n", "usable in templates"),
    ("Workload", "steps: []\n", "at least 1 item"),
    ("Workload", "steps: [{id: a, agent: b, run: ls, timeout: soon}]\n", "is not a duration"),
    ("Workload", "steps: [{id: a, agent: b, run: ls, timeout: true}]\n", "timeout"),
    ("Workload", "steps: [{id: a, agent: b, run: ls, timeout: -1}]\n", "greater than 0"),
    (
        "Policy",
        "rules: [{id: r, match: {}, risk: green, reason: x, zap: 1}]\n",
        "unknown field 'zap'",
    ),
    (
        "Policy",
        "rules: [{id: r, match: {args: {p: {glob: a, regex: b}}}, risk: red, reason: x}]\n",
        "exactly one",
    ),
    ("Policy", "rules: [{id: r, match: {}, risk: green}]\n", "missing required field 'reason'"),
    (
        "Policy",
        "rules: [{id: r, match: {annotations: {readOnly: true}}, risk: red, reason: x}]\n",
        "readOnlyHint",
    ),
]


@pytest.mark.parametrize(("kind", "spec", "message"), SPEC_PROBLEMS)
def test_spec_problems(write: Writer, kind: str, spec: str, message: str) -> None:
    text = f"apiVersion: luminaguard.dev/v1\nkind: {kind}\nmetadata: {{name: x}}\nspec:\n"
    text += "".join(f"  {line}\n" for line in spec.splitlines())
    result = load_documents([str(write("x.yaml", text))])
    assert result.diagnostics, "expected a problem"
    assert any(message in d.message for d in result.diagnostics), result.diagnostics


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), (1.5, 1.5), ("30s", 30.0), ("500ms", 0.5), ("5m", 300.0), ("1h", 3600.0)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds
