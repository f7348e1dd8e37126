"""Attack round 15: questions from tools (MCP elicitation) and the GitOps source."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tarfile
import time
from pathlib import Path

import pytest

from luminaguard.gitops.trees import _extract
from luminaguard.scheduler.asking import RunAsker
from luminaguard.scheduler.questions import QuestionBook
from luminaguard.scheduler.redact import Redactor
from luminaguard.scheduler.store import RunStore
from luminaguard.transport.forms import FormError, parse_form

SECRET = "s3cr3t-Token-9f8e7d6c5b4a"


def _schema(**properties: object) -> dict[str, object]:
    return {"type": "object", "properties": properties}


# --- 1. a secret a hostile server puts in its question reaches runs.db in clear ---


def test_a_secret_in_a_question_is_redacted_in_runs_db(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "state", redact=Redactor([SECRET]))
    form = parse_form(_schema(a={"type": "string", "title": f"t {SECRET}"}))
    QuestionBook(store).ask("r", "s", "a/q", f"leak {SECRET}", form, time.time() + 60)
    store.db.commit()
    dump = "\n".join(sqlite3.connect(tmp_path / "state" / "runs.db").iterdump())
    assert SECRET not in dump


# --- 2. refusals are audited without bound: a server floods the audit log ---


def test_refusals_of_a_server_are_audited_a_bounded_number_of_times(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "state")
    asker = RunAsker(QuestionBook(store), "r", "a/q", {}, 5.0)

    async def flood() -> None:
        for _ in range(500):
            await asker.refuse("sampling", "no model")

    asyncio.run(flood())
    assert len(store.audit.records("r")) <= 60


# --- 3. schemas that crash the parser instead of being refused ---

DEEP: list[object] = []
_here = DEEP
for _ in range(3000):
    _next: list[object] = []
    _here.append(_next)
    _here = _next


@pytest.mark.parametrize(
    "schema",
    [
        {**_schema(a={"type": "string"}), "required": [["a"]]},
        {**_schema(a={"type": "string"}), "required": [{"a": 1}]},
        _schema(a={"type": "string", "oneOf": 5}),
        _schema(a={"type": "array", "items": {"anyOf": True}}),
        _schema(a={"type": "number", "minimum": 10**400}),
        _schema(a={"type": "number", "default": 10**400}),
        {**_schema(a={"type": "string"}), "ignored": DEEP},
    ],
    ids=["list-required", "dict-required", "oneOf-int", "anyOf-bool", "huge-bound", "big", "deep"],
)
def test_a_hostile_schema_is_refused_as_a_form_error(schema: dict[str, object]) -> None:
    with pytest.raises(FormError):
        parse_form(schema)


def test_a_huge_number_answer_is_refused_as_a_form_error() -> None:
    form = parse_form(_schema(a={"type": "number"}))
    with pytest.raises(FormError):
        form.check({"a": 10**400})


# --- 4. tar extraction: the data filter of this Python is fooled by long paths ---


def _escaping_archive(archive: Path) -> None:
    """Symlinks and folders only (what any git tree holds): a link out of the tree."""
    comp, steps, path = "d" * 247, "abcdefghijklmnop", ""
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for step in steps:
            folder = tarfile.TarInfo(os.path.join(path, comp))
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(folder)
            link = tarfile.TarInfo(os.path.join(path, step))
            link.type, link.linkname = tarfile.SYMTYPE, comp
            tar.addfile(link)
            path = os.path.join(path, comp)
        long_link = os.path.join(*steps, "l" * 254)
        up = tarfile.TarInfo(long_link)
        up.type, up.linkname = tarfile.SYMTYPE, os.path.join(*[".."] * len(steps))
        tar.addfile(up)
        escape = tarfile.TarInfo("escape.yaml")
        escape.type, escape.linkname = tarfile.SYMTYPE, long_link + "/../../../outside.yaml"
        tar.addfile(escape)
        through = tarfile.TarInfo("a/written.yaml")
        through.size = 0
        tar.addfile(through)


def test_an_exported_tree_has_no_link_leading_out_of_it(tmp_path: Path) -> None:
    (tmp_path / "outside.yaml").write_text("secret: outside\n")
    tree = tmp_path / "trees" / "x" / "tree"
    tree.mkdir(parents=True)
    archive = tmp_path / "archive.tar"
    _escaping_archive(archive)
    _extract(archive, tree)
    escape = tree / "escape.yaml"
    assert not escape.exists() or tmp_path / "outside.yaml" != escape.resolve()
    for folder, _, files in os.walk(tree):
        for name in files:
            target = Path(folder, name)
            if os.path.exists(target):
                assert Path(os.path.realpath(target)).is_relative_to(tree.resolve())
    assert not (tree / "a" / "written.yaml").exists()


def test_a_token_in_a_query_or_a_user_token_pair_is_never_shown() -> None:
    from luminaguard.gitops.urls import redact

    assert redact("https://host/r.git?private_token=s3cret") == "https://host/r.git?***"
    assert redact("user:s3cret@host:o/r.git") == "***@host:o/r.git"
    assert redact("git@host:o/r.git") == "git@host:o/r.git"  # a user name alone is no secret
