"""Path globs matched segment by segment, in time linear in the path (no backtracking).

A pattern is split at ``/``. A segment ``**`` stands for any number of directories
(zero or more in the middle, one or more at the end: ``/work/scratch/**`` is what lies
below the folder); any other segment is a glob on one name (``*`` any text, ``?`` one
character; ``**`` inside a name is ``*``). Matching walks the path's segments once,
keeping the set of pattern positions reached (a Thompson simulation), so a hostile path
of thousands of segments costs thousands of steps, never an exponential search; each
name glob is itself compiled by ``fnmatch``, whose stars do not backtrack.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

_ANY_DIRS = None  # a segment that is "**"


@dataclass(frozen=True)
class _Name:
    """One segment's test: a literal name, or a compiled glob."""

    literal: str | None
    glob: re.Pattern[str] | None

    def matches(self, name: str) -> bool:
        if self.literal is not None:
            return name == self.literal
        assert self.glob is not None
        return self.glob.match(name) is not None


def _name(segment: str) -> _Name | None:
    if segment == "**":
        return _ANY_DIRS
    if "*" not in segment and "?" not in segment:
        return _Name(segment, None)
    escaped = segment.replace("[", "[[]").replace("**", "*")
    return _Name(None, re.compile(fnmatch.translate(escaped)))


class PathGlob:
    """One or more path globs; ``match`` says whether a (normalised) path fits any of them."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self._compiled = [tuple(_name(s) for s in p.split("/")) for p in patterns]

    def match(self, value: str) -> bool:
        """Whether ``value`` matches any of the globs."""
        parts = value.split("/")
        return any(_matches(pattern, parts) for pattern in self._compiled)


def _closure(pattern: tuple[_Name | None, ...], reached: set[int]) -> set[int]:
    """Add the positions reachable without a segment: past each ``**`` but a final one."""
    last = len(pattern) - 1
    todo = list(reached)
    while todo:
        position = todo.pop()
        if position < last and pattern[position] is _ANY_DIRS and position + 1 not in reached:
            reached.add(position + 1)
            todo.append(position + 1)
    return reached


def _matches(pattern: tuple[_Name | None, ...], parts: list[str]) -> bool:
    size = len(pattern)
    reached = _closure(pattern, {0})
    for part in parts:
        following: set[int] = set()
        for position in reached:
            if position == size:
                continue
            test = pattern[position]
            if test is _ANY_DIRS:
                following.update((position, position + 1))
            elif test.matches(part):
                following.add(position + 1)
        if not following:
            return False
        reached = _closure(pattern, following)
    return size in reached
