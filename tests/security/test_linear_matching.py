"""Class 9: matching is linear in the path, whatever the path.

Before commit ff0f11b ("policy: path globs matched segment by segment in linear time"), a
``/work/**/**/**/*.md`` rule took over 30 s on a 4 KB path (the regex backtracked), and
``/work/*a*a*a*a*a*.md`` never finished: a hostile agent choosing the path of a call held
the runner. Now each match walks the path once.
"""

from __future__ import annotations

import re
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from luminaguard.policy.matchers import normal_path, path_regex


def old_translate(pattern: str) -> str:
    """The regex translation the engine used before (the oracle for the meaning)."""
    parts = re.split(r"(\*\*/?|\*|\?)", pattern)
    table = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return "".join(table.get(part, re.escape(part)) for part in parts) + r"\Z"


HOSTILE = [
    "/work/**/**/**/*.md",
    "/work/**/a/**/a/**/a/**/*.md",
    "/work/*a*a*a*a*a*.md",
    "/work/**/*a*a*a*a*/**/*b",
]
PATHS = [
    "/work/" + "a/" * 2000 + "x",
    "/work/" + "a" * 4000 + "x",
    "/work/" + "ab/" * 1300,
    "/work/" + "a/" * 1000 + "a" * 2000,
]


def test_hostile_paths_against_hostile_patterns_are_fast() -> None:
    for pattern in HOSTILE:
        matcher = path_regex(pattern)
        for path in PATHS:
            start = time.perf_counter()
            matcher.match(normal_path(path))
            assert time.perf_counter() - start < 0.5, (pattern, len(path))


SEGMENTS = st.sampled_from(["a", "b", "ab", "*", "?", "**", "a*", "*b", "a?", "x.md", "*.md"])
NAMES = st.sampled_from(["a", "b", "ab", "ba", "x.md", "a.md", "aab"])


@settings(max_examples=500, deadline=None)
@given(st.lists(SEGMENTS, min_size=1, max_size=5), st.lists(NAMES, min_size=1, max_size=6))
def test_the_meaning_is_the_old_one(segments: list[str], names: list[str]) -> None:
    """On paths the old regex could handle, both agree."""
    pattern = "/" + "/".join(segments)
    path = "/" + "/".join(names)
    expected = re.match(old_translate(pattern), path) is not None
    assert path_regex(pattern).match(path) is expected, (pattern, path)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from(["**", "*", "a*", "*a*a*", "?"]), min_size=2, max_size=8),
    st.integers(min_value=200, max_value=2000),
    st.sampled_from(["a/", "a", "ab/", "a/b"]),
)
def test_time_is_bounded_on_adversarial_paths(segments: list[str], count: int, unit: str) -> None:
    matcher = path_regex("/work/" + "/".join(segments) + "/end")
    path = "/work/" + unit * count
    start = time.perf_counter()
    matcher.match(path)
    assert time.perf_counter() - start < 0.5
