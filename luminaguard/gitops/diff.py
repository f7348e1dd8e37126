"""What would change: the desired state against the applied one, down to each field.

A change is ``added``, ``changed`` (with the fields that differ, as dotted paths such
as ``spec.rules[0].risk``) or ``removed``. Changes come in a stable order (the order
kinds apply in, then by name), so the text is fit for a pull request and for snapshot
tests; ``to_json`` is the same for machines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from luminaguard.gitops.applied import AppliedObject
from luminaguard.gitops.desired import KINDS, Desired, Key

Action = Literal["added", "changed", "removed"]
_MISSING = object()


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: its path, the applied value and the desired one."""

    path: str
    old: Any = None
    new: Any = None


@dataclass(frozen=True)
class Change:
    """One object to add, change or remove."""

    kind: str
    name: str
    action: Action
    fields: tuple[FieldChange, ...] = field(default_factory=tuple)
    path: str = ""  # the file (desired; the applied one for a removal)
    revision: str = ""

    @property
    def key(self) -> Key:
        """(kind, name)."""
        return (self.kind, self.name)


def diff(desired: Desired, applied: dict[Key, AppliedObject]) -> list[Change]:
    """Every change that applying ``desired`` would make, in order."""
    changes: list[Change] = []
    for key, wanted in desired.objects.items():
        have = applied.get(key)
        if have is None:
            changes.append(Change(*key, "added", (), wanted.path, wanted.revision))
        elif have.hash != wanted.hash:
            fields = tuple(field_changes(have.spec, wanted.spec, "spec"))
            changes.append(Change(*key, "changed", fields, wanted.path, wanted.revision))
    for key, have in applied.items():
        if key not in desired.objects:
            changes.append(Change(*key, "removed", (), have.path, have.revision))
    return sorted(changes, key=lambda c: (_order(c.kind), c.name))


def _order(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def field_changes(old: Any, new: Any, path: str) -> list[FieldChange]:
    """The leaves that differ between two JSON values, as dotted paths."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[FieldChange] = []
        for name in sorted(set(old) | set(new), key=str):
            before, after = old.get(name, _MISSING), new.get(name, _MISSING)
            found += field_changes(before, after, f"{path}.{name}")
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        found = []
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            found += field_changes(before, after, f"{path}[{index}]")
        return found
    if old == new:
        return []
    return [FieldChange(path, _value(old), _value(new))]


def _value(value: Any) -> Any:
    return None if value is _MISSING else value


def _shown(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


_SIGNS = {"added": "+", "changed": "~", "removed": "-"}


def render(changes: list[Change], prune: bool = False) -> str:
    """The changes as text: one line per object, one indented line per field."""
    if not changes:
        return "no changes\n"
    lines = []
    for change in changes:
        where = f" ({change.path})" if change.path else ""
        note = " (kept: --prune removes it)" if change.action == "removed" and not prune else ""
        lines.append(f"{_SIGNS[change.action]} {change.kind}/{change.name}{where}{note}")
        for one in change.fields:
            lines.append(f"    {one.path}: {_shown(one.old)} -> {_shown(one.new)}")
    counts = {action: sum(c.action == action for c in changes) for action in _SIGNS}
    summary = ", ".join(f"{n} {action}" for action, n in counts.items() if n)
    return "\n".join(lines) + f"\n{summary}\n"


def to_json(changes: list[Change]) -> list[dict[str, Any]]:
    """The changes for machines."""
    return [
        {
            "kind": c.kind,
            "name": c.name,
            "action": c.action,
            "path": c.path,
            "revision": c.revision,
            "fields": [{"path": f.path, "old": f.old, "new": f.new} for f in c.fields],
        }
        for c in changes
    ]
