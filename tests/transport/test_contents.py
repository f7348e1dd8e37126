"""Non-text contents of a tool result: base64 strictly, a cap per item, MIME types checked."""

from __future__ import annotations

import base64

import mcp_types as types
import pytest

from luminaguard.transport import contents
from luminaguard.transport.mcp_session import tool_result


def image(data: str, mime: str = "image/png") -> types.ImageContent:
    return types.ImageContent(type="image", data=data, mime_type=mime)


def test_an_item_over_the_cap_is_dropped_before_it_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(contents, "ITEM_CAP", 3)
    small, large = base64.b64encode(b"abc").decode(), base64.b64encode(b"abcd").decode()
    result = tool_result(types.CallToolResult(content=[image(small), image(large)]))
    assert [(c.data, c.dropped) for c in result.contents] == [
        (b"abc", None),
        (b"", "over the 0 MiB cap per item"),
    ]


@pytest.mark.parametrize("data", ["YWJj\n", "YW Jj", "YWJ", "YWJj!"])
def test_base64_is_decoded_strictly(data: str) -> None:
    [item] = tool_result(types.CallToolResult(content=[image(data)])).contents
    assert item.dropped == "not valid base64"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("image/PNG; x=y", "image/png"),
        ("../../etc/passwd", "application/octet-stream"),
        ("image/png\n", "image/png"),
        ("", "application/octet-stream"),
    ],
)
def test_a_mime_type_is_kept_only_when_it_is_one(given: str, kept: str) -> None:
    assert contents.mime_type(given) == kept
