"""``LocalRuntime``: what a one-off ``luminaguard reconcile`` applies in its own process.

Nothing outlives the command, so what only a running server holds is recorded, not
applied live: the pools' sizes and the policies in force take effect in
``luminaguard serve`` (which applies the recorded state when it starts). Images are
built here. A triggered workload's run is recorded when the reconciler starts it and
driven here once the pass has ended, like ``luminaguard run`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from luminaguard.compiler.plan import Plan
from luminaguard.hypervisor.vm.image.build import build
from luminaguard.hypervisor.vm.image.recipe import Recipe
from luminaguard.scheduler.outcomes import RunResult
from luminaguard.scheduler.runner import Runner
from luminaguard.ui.exit_codes import OK
from luminaguard.ui.session import Session


class LocalRuntime:
    """The runtime of one ``reconcile`` command."""

    def __init__(self, session: Session, backend: str) -> None:
        self.session = session
        self.backend = backend
        self.started: list[str] = []
        self._runner: Runner | None = None

    @property
    def runner(self) -> Runner:
        """The runner of the command's backend (opened on first use)."""
        if self._runner is None:
            self._runner = Runner(self.session.store, self.session.backend(self.backend))
        return self._runner

    def apply_pool(self, name: str, spec: dict[str, Any] | None) -> None:
        """Recorded only: a pool's VMs live in a server."""

    def apply_policies(self, revision: str, policies: dict[str, dict[str, Any]]) -> None:
        """Recorded only: each run's plan carries the policies it was compiled with."""

    def build_image(self, name: str, recipe: Path) -> None:
        """Build the image from its recipe (cached by content: a changed recipe builds)."""
        built = build(Recipe.load(recipe))
        print(f"image {name}: {recipe.name} -> {built.initrd}")

    def start(self, plan: Plan, run_id: str, why: str) -> None:
        """Record the run now; it is driven when the pass has ended (``drive_started``)."""
        self.runner.create(plan, run_id, {"by": "reconciler", "how": why})
        self.started.append(run_id)

    async def drive_started(self) -> int:
        """Drive the runs started in the pass; the highest of their exit codes."""
        code = OK
        for run_id in self.started:
            result: RunResult = await self.runner.drive(run_id)
            print(f"run {run_id}: {result.state}")
            code = max(code, result.exit_code)
        return code
