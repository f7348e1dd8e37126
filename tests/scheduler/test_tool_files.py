"""Files of a step's results: named by hash, private, capped per step."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from luminaguard.scheduler import tool_files
from luminaguard.transport.base import Content


def test_past_the_step_cap_items_are_dropped_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tool_files, "STEP_CAP", 5)
    items = [Content("image", "image/png", b"abc"), Content("image", "image/gif", b"def")]
    items.append(Content("resource", "text/plain", b"gh", uri="x"))
    saved = tool_files.save(tmp_path, "s", items)
    assert [entry["mime"] for entry in saved["files"]] == ["image/png", "text/plain"]
    assert saved["dropped"] == [
        {"kind": "image", "mime": "image/gif", "uri": None, "reason": "over the 0 MiB cap per step"}
    ]
    names = sorted(p.name for p in (tmp_path / "steps/s/outputs").iterdir())
    assert names == sorted([hashlib.sha256(b"abc").hexdigest() + ".png",
                            hashlib.sha256(b"gh").hexdigest() + ".txt"])  # fmt: skip


def test_the_same_content_twice_is_one_file(tmp_path: Path) -> None:
    item = Content("image", "image/png", b"abc")
    first = tool_files.save(tmp_path, "s", [item, item])
    assert first["files"][0] == first["files"][1]
    assert len(list((tmp_path / "steps/s/outputs").iterdir())) == 1
