"""Attack round 16: tool-result files written by a hostile MCP server."""

from __future__ import annotations

from pathlib import Path

from luminaguard.scheduler import tool_files
from luminaguard.transport.base import Content


def test_many_tiny_items_do_not_fan_out_into_a_file_each(tmp_path: Path) -> None:
    # a 64 MiB message of 4-byte base64 images holds over a million distinct items:
    # each would be a file (a 4 KiB block, an inode) and an entry in the outputs
    items = [Content("image", "image/png", i.to_bytes(3, "big")) for i in range(5000)]
    out = tool_files.save(tmp_path, "step", items)
    written = list((tmp_path / "steps" / "step" / "outputs").iterdir())
    assert len(written) <= 256
    assert len(out["files"]) <= 256 and len(out["dropped"]) <= 257


def test_many_dropped_links_do_not_grow_the_outputs_without_bound(tmp_path: Path) -> None:
    items = [Content("link", "image/png", uri="x" * 2048, dropped="a link") for _ in range(5000)]
    out = tool_files.save(tmp_path, "step", items)
    assert len(out["dropped"]) <= 257
