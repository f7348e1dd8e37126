"""Compiling a rule's conditions into fast predicates over an Action.

Semantics, per condition:
- ``server``/``tool``: fnmatch globs (``*`` matches any text), case-sensitive; a list
  means any of them. A rule with either only matches ``call`` actions.
- ``args.NAME`` and ``command``: ``equals`` (type-exact: ``1`` is not ``true``),
  ``glob`` (fnmatch on a string), ``regex`` (searched in a string) or ``path`` (the
  value is normalised first, ``..`` resolved, then ``*`` stays within one directory
  and ``**`` crosses directories). A missing argument never matches.
- ``annotations``: each hint given must equal the tool's hint, MCP defaults filling
  the hints the server did not give (so an unknown tool is destructive, open-world).
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from luminaguard.config.models.policy import (
    AnnotationsMatch,
    Match,
    Patterns,
    ValueMatch,
    pattern_list,
)
from luminaguard.policy.action import Action
from luminaguard.policy.pathglob import PathGlob
from luminaguard.policy.shell_match import (
    CommandPart,
    argv_test,
    program_matches,
    redirects_test,
)

#: What a rule's conditions test: a tool call, or one simple command of a ``run:``.
Subject = Action | CommandPart
Predicate = Callable[[Any], bool]
ValueTest = Callable[[Any], bool]


#: A character that makes an fnmatch pattern a glob rather than a literal name.
GLOB_WILDCARD = re.compile(r"[*?\[]")
_NOTHING = re.compile(r"(?!)")


def glob_regex(patterns: str | Sequence[str]) -> re.Pattern[str]:
    """One compiled regex that fully matches any of the fnmatch ``patterns``.

    An empty list matches nothing (an empty alternation would match everything).
    """
    given = pattern_list(patterns)
    if not given:
        return _NOTHING
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in given))


def path_regex(patterns: str | Sequence[str]) -> PathGlob:
    """A matcher for path globs: ``*`` within a directory, ``**`` across (linear time)."""
    return PathGlob(pattern_list(patterns))


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, dict | list) or isinstance(right, dict | list):
        return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)
    return type(left) is type(right) and left == right


def value_test(spec: ValueMatch) -> ValueTest:
    """A test of one value, compiled from a ``ValueMatch``."""
    operator = spec.operator
    if operator == "equals":
        expected = spec.equals
        return lambda value: _same(value, expected)
    if operator == "regex":
        searched = re.compile(spec.regex or "")
        return lambda value: isinstance(value, str) and searched.search(value) is not None
    if operator == "glob":
        globbed = glob_regex(spec.glob or [])
        return lambda value: isinstance(value, str) and globbed.match(value) is not None
    matched = path_regex(spec.path or [])
    return lambda value: isinstance(value, str) and matched.match(normal_path(value))


@lru_cache(maxsize=1024)
def normal_path(value: str) -> str:
    """``value`` with ``..`` and ``.`` resolved and slashes collapsed (posixpath.normpath)."""
    # memoised: every rule with a path test would otherwise normalise the same value again
    return posixpath.normpath(value) if value else value


def _string_test(spec: ValueMatch) -> Callable[[str], bool]:
    """The compiled test of a ``path``, ``glob`` or ``regex`` condition."""
    if spec.operator == "path":
        return path_regex(spec.path or []).match
    searched = (
        glob_regex(spec.glob or []).match
        if spec.operator == "glob"
        else re.compile(spec.regex or "").search
    )
    return lambda text: searched(text) is not None


def _args_predicate(name: str, spec: ValueMatch) -> Predicate:
    """A predicate on one argument; string tests are inlined (this is the hot path)."""
    operator = spec.operator
    if operator == "equals":
        test = value_test(spec)
        return lambda action: name in action.args and test(action.args[name])
    pattern = _string_test(spec)
    normal = normal_path if operator == "path" else str

    def holds(action: Action) -> bool:
        value = action.args.get(name)
        return isinstance(value, str) and pattern(normal(value))

    return holds


def _annotations_predicate(wanted: AnnotationsMatch) -> Predicate:
    required = wanted.model_dump(exclude_none=True).items()

    def holds(action: Action) -> bool:
        effective = action.effective_annotations()
        return all(effective[hint] == value for hint, value in required)

    return holds


def _command_predicate(test: ValueTest) -> Predicate:
    return lambda action: action.command is not None and test(action.command)


def _program_predicate(patterns: Patterns) -> Predicate:
    regex = glob_regex(patterns).match
    return lambda part: (
        isinstance(part, CommandPart) and program_matches(part.simple.program, regex, part.name)
    )


def _shell_predicates(match: Match, risk: str) -> list[Predicate]:
    checks: list[Predicate] = []
    if match.program is not None:
        checks.append(_program_predicate(match.program))
    if match.command is not None:
        checks.append(_command_predicate(value_test(match.command)))
    for key, spec in match.args.items():
        checks.append(_on_parts(argv_test(key, value_test(spec))))
    if match.redirects is not None or risk == "green":
        given = value_test(match.redirects) if match.redirects is not None else None
        checks.append(_on_parts(redirects_test(given)))
    return checks


def _on_parts(test: Callable[[CommandPart], bool]) -> Predicate:
    """A shell condition: it never holds for anything but a simple command."""
    return lambda subject: isinstance(subject, CommandPart) and test(subject)


def detail_predicates(match: Match, risk: str = "red") -> list[Predicate]:
    """Predicates for the conditions beyond kind, server and tool.

    ``risk`` matters for shell rules only: a Green one without ``redirects`` admits no
    writing redirection but to ``/dev/null``.
    """
    if effective_kind(match) == "run":
        return _shell_predicates(match, risk)
    checks: list[Predicate] = []
    if risk == "green" and effective_kind(match) is None:
        default = redirects_test(None)
        checks.append(lambda subject: not isinstance(subject, CommandPart) or default(subject))
    if match.command is not None:
        checks.append(_command_predicate(value_test(match.command)))
    for name, spec in match.args.items():
        checks.append(_args_predicate(name, spec))
    if match.annotations is not None:
        checks.append(_annotations_predicate(match.annotations))
    return checks


def effective_kind(match: Match) -> str | None:
    """The kind a rule matches: a server or tool means tool calls, a program shell commands."""
    if match.kind is not None:
        return match.kind
    if match.program is not None or match.redirects is not None:
        return "run"
    if match.server is not None or match.tool is not None:
        return "call"
    return None


class Prefilter:
    """The cheap part of a match (kind, server, tool), evaluated once per distinct tool."""

    def __init__(self, match: Match) -> None:
        self.kind = effective_kind(match)
        self.server = glob_regex(match.server) if match.server is not None else None
        self.tool = glob_regex(match.tool) if match.tool is not None else None

    def admits(self, kind: str, server: str | None, tool: str | None) -> bool:
        """Whether an action of this kind on this server and tool can match the rule."""
        if self.kind is not None and kind != self.kind:
            return False
        if self.server is not None and (server is None or not self.server.match(server)):
            return False
        return self.tool is None or (tool is not None and self.tool.match(tool) is not None)
