"""The tool lock's annotations for ``policy explain``: the action as the plan would see it.

The compiler gives a call step's action its tool's annotations from the lock (keyed
``AGENT/SERVER``; see ``compiler.compile._action``), and the policy decides on them
(e.g. ``readOnlyHint``). ``policy explain`` names a policy, not an agent, so the locked
tool is looked for under the agents governed by the policy (or ``--agent``); agents
whose locks disagree must be told apart with ``--agent``.
"""

from __future__ import annotations

from luminaguard.compiler.catalog import Catalog
from luminaguard.compiler.lock import ToolLock
from luminaguard.errors import UsageError
from luminaguard.policy.action import Action


def _agents(catalog: Catalog, policy: str, agent: str | None) -> list[str]:
    """The agents whose lock entries apply: ``agent``, else those the policy governs."""
    if agent is not None:
        return [agent]
    governed = [
        name
        for name in catalog.names("Agent")
        if (found := catalog.agent(name)) is not None and found.spec.policy == policy
    ]
    return governed


def locked_annotations(
    lock: ToolLock, catalog: Catalog, policy: str, agent: str | None, action: Action
) -> dict[str, bool] | None:
    """The locked annotations of the called tool (None: not locked; the action as given).

    Without agents to look under (none found, none named), every locked server of that
    name counts.
    """
    if action.kind != "call":
        return None
    agents = _agents(catalog, policy, agent)
    keys = [f"{name}/{action.server}" for name in agents] or [
        key for key in lock.servers if key.split("/", 1)[-1] == action.server
    ]
    found: dict[str, dict[str, bool]] = {}
    for key in keys:
        server = lock.servers.get(key)
        tool = server.tools.get(action.tool or "") if server else None
        if tool is not None:
            found[key.split("/", 1)[0]] = dict(tool.annotations)
    if len({tuple(sorted(hints.items())) for hints in found.values()}) > 1:
        names = ", ".join(sorted(found))
        raise UsageError(
            f"agents {names} lock {action.describe()} with different annotations;"
            " choose one with --agent NAME"
        )
    return next(iter(found.values()), None)
