"""Finding the rules that can apply to a (kind, server, tool) without testing every rule.

Each rule goes into buckets keyed by (kind, server, tool), where a part is the literal
name the rule requires or ``None`` when the rule leaves it open or gives a glob. A
lookup reads the eight buckets an action's key can fall into, then tests only those
rules' prefilters, in policy order. A 500-rule policy then costs, on the first
decision for a new tool, the rules about that server or tool rather than all 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

from luminaguard.config.models.policy import Match, Patterns, pattern_list
from luminaguard.policy.matchers import GLOB_WILDCARD, effective_kind

Key = tuple[str | None, str | None, str | None]


def _globbed(patterns: Patterns | None) -> bool:
    return any(GLOB_WILDCARD.search(pattern) for pattern in pattern_list(patterns))


def _literals(patterns: Patterns | None) -> list[str | None]:
    """The literal names ``patterns`` require, or ``[None]`` when any name may match."""
    if patterns is None or _globbed(patterns):
        return [None]
    return list(pattern_list(patterns))


def keys(match: Match) -> list[Key]:
    """Every bucket the rule belongs in."""
    kinds = [effective_kind(match)]
    return list(product(kinds, _literals(match.server), _literals(match.tool)))


class RuleIndex:
    """Rule positions by bucket; ``lookup`` returns, in order, those worth testing."""

    def __init__(self, matches: Sequence[Match]) -> None:
        self.buckets: dict[Key, list[int]] = {}
        self.exact: set[int] = set()  # rules with no globs: being found is being admitted
        for position, match in enumerate(matches):
            for key in keys(match):
                self.buckets.setdefault(key, []).append(position)
            if not (_globbed(match.server) or _globbed(match.tool)):
                self.exact.add(position)

    def lookup(self, kind: str, server: str | None, tool: str | None) -> list[int]:
        """Positions of the rules whose literal parts allow this kind, server and tool."""
        found: set[int] = set()
        for key in product((kind, None), (server, None), (tool, None)):
            found.update(self.buckets.get(key, ()))
        return sorted(found)
