"""``policy lint``: rules that can never match, and rules about tools nobody has.

Shadowing is decided conservatively: an earlier rule shadows a later one only when
each of its conditions provably holds for every action the later one matches
(same or wider kind, server and tool patterns; the same command, argument and
annotation tests). So every finding is real; some shadowing of unusual shapes
(e.g. a regex that happens to contain another) goes unreported.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from luminaguard.config.models.policy import Match, Patterns, Rule, pattern_list
from luminaguard.policy.matchers import GLOB_WILDCARD, Prefilter, effective_kind, glob_regex


@dataclass(frozen=True)
class Finding:
    """One lint finding about the rule at ``index``."""

    index: int
    severity: str  # error | warning
    message: str


def _patterns_cover(wide: Patterns | None, narrow: Patterns | None) -> bool:
    """Whether every name ``narrow`` admits is admitted by ``wide`` (None: any name)."""
    if wide is None:
        return True
    if narrow is None:
        return False
    regex, wide_list = glob_regex(wide), pattern_list(wide)
    return all(
        (regex.match(p) is not None)
        if not GLOB_WILDCARD.search(p)
        else (p in wide_list or "*" in wide_list)
        for p in pattern_list(narrow)
    )


def _annotations_cover(wide: Match, narrow: Match) -> bool:
    if wide.annotations is None:
        return True
    wanted = wide.annotations.model_dump(exclude_none=True)
    given = narrow.annotations.model_dump(exclude_none=True) if narrow.annotations else {}
    return all(given.get(hint) == value for hint, value in wanted.items())


def _shell_cover(wide: Match, narrow: Match, wide_risk: str, narrow_risk: str) -> bool:
    """Shell conditions: the same program glob or none, the same redirects test.

    A Green rule without ``redirects`` admits only ``/dev/null``, a Red one anything, so
    two rules without it cover each other only when a Red one is the wider.
    """
    if wide.program is not None and wide.program != narrow.program:
        return False
    if wide.redirects is not None or narrow.redirects is not None:
        return wide.redirects == narrow.redirects
    return wide_risk == "red" or narrow_risk == "green" or effective_kind(narrow) == "call"


def covers(wide: Match, narrow: Match, wide_risk: str = "red", narrow_risk: str = "red") -> bool:
    """Whether ``wide`` matches every action that ``narrow`` matches."""
    kind = effective_kind(wide)
    return (
        (kind is None or kind == effective_kind(narrow))
        and _shell_cover(wide, narrow, wide_risk, narrow_risk)
        and _patterns_cover(wide.server, narrow.server)
        and _patterns_cover(wide.tool, narrow.tool)
        and (wide.command is None or wide.command == narrow.command)
        and all(narrow.args.get(name) == test for name, test in wide.args.items())
        and _annotations_cover(wide, narrow)
    )


def shadowed(rules: Sequence[Rule], where: Sequence[str]) -> Iterator[Finding]:
    """Each rule that an earlier rule keeps from ever matching."""
    for index, rule in enumerate(rules):
        for earlier in range(index):
            if covers(rules[earlier].match, rule.match, rules[earlier].risk, rule.risk):
                yield Finding(
                    index,
                    "error",
                    f"rule {rule.id!r} can never match: rule {rules[earlier].id!r} "
                    f"({where[earlier]}) comes first and matches every action it matches",
                )
                break


def unknown_tools(
    rules: Sequence[Rule], known: Sequence[tuple[str, str]], lock_name: str
) -> Iterator[Finding]:
    """Each rule naming servers or tools that match none of the ``known`` (server, tool)."""
    servers = len({server for server, _ in known})
    for index, rule in enumerate(rules):
        if rule.match.server is None and rule.match.tool is None:
            continue
        admits = Prefilter(rule.match).admits
        if not any(admits("call", server, tool) for server, tool in known):
            yield Finding(
                index,
                "warning",
                f"rule {rule.id!r} matches no tool in {lock_name} "
                f"({len(known)} tools of {servers} servers)",
            )
