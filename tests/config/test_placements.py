"""Where a run: template's values stand, found once per text inside a compile."""

from __future__ import annotations

import pytest

from luminaguard.shell import template
from luminaguard.shell.template import PlacementError, placements_kept


def _marked(text: str) -> str:
    """``text`` with each ``{}`` a numbered marker, as a command template renders it."""
    parts = text.split("{}")
    return "".join(
        part + (f"{template._MARK}{i}z" if i < len(parts) - 1 else "")
        for i, part in enumerate(parts)
    )


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts whose placements were worked out (parsed), in order."""
    found: list[str] = []
    placements = template._placements
    monkeypatch.setattr(
        template, "_placements", lambda text: found.append(text) or placements(text)
    )
    return found


def test_the_same_text_is_parsed_once_and_each_value_quoted_for_itself(
    parsed: list[str],
) -> None:
    text = _marked('cat {} "{}"')
    with placements_kept():
        first = template.place(text, ["a b", "$x"])
        second = template.place(text, ["it's", '"'])
    assert first == "cat 'a b' \"\\$x\""
    assert second == "cat 'it'\\''s' \"\\\"\""
    assert parsed == [text]


def test_texts_that_differ_do_not_share_placements() -> None:
    with placements_kept():
        assert template.place(_marked("echo {}"), ["$HOME"]) == "echo '$HOME'"
        assert template.place(_marked('echo "{}"'), ["$HOME"]) == 'echo "\\$HOME"'
        assert template.place(_marked("echo '{}'"), ["it's"]) == "echo 'it'\\''s'"
        with pytest.raises(PlacementError, match="given to a shell"):
            template.place(_marked("sh -c {}"), ["x"])
        with pytest.raises(PlacementError, match="given to a shell"):
            template.place(_marked("sh -c {}"), ["y"])  # kept: refused again


def test_outside_a_compile_nothing_is_kept(parsed: list[str]) -> None:
    text = _marked("cat {}")
    with placements_kept():
        template.place(text, ["a"])
    template.place(text, ["b"])
    template.place(text, ["c"])
    assert parsed == [text, text, text]
