"""An Image is built when it is new and again when its recipe changes (and only then)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from luminaguard.gitops.applied import AppliedState
from luminaguard.gitops.reconcile import Reconciler
from luminaguard.gitops.source import FolderSource
from luminaguard.scheduler.store import RunStore

IMAGE = """\
apiVersion: luminaguard.dev/v1
kind: Image
metadata: {name: tools}
spec: {rootfs: tools}
"""


class Recording:
    """Records what a pass asks of the runtime (a unit test's stand-in for a server)."""

    def __init__(self) -> None:
        self.built: list[tuple[str, Path]] = []
        self.pools: list[tuple[str, Any]] = []

    def build_image(self, name: str, recipe: Path) -> None:
        self.built.append((name, recipe))

    def apply_pool(self, name: str, spec: dict[str, Any] | None) -> None:
        self.pools.append((name, spec))

    def apply_policies(self, revision: str, policies: dict[str, dict[str, Any]]) -> None:
        pass

    def start(self, plan: Any, run_id: str, why: str) -> None:
        pass


def test_a_changed_recipe_builds_the_image_again(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "images" / "rootfs").mkdir(parents=True)
    (source / "images" / "image.yaml").write_text(IMAGE)
    recipe = source / "images" / "rootfs" / "tools.yaml"
    recipe.write_text("packages: [busybox]\n")
    runtime = Recording()
    reconciler = Reconciler(FolderSource(source), AppliedState(RunStore(tmp_path / "s")), runtime)
    reconciler.reconcile()
    assert runtime.built == [("tools", recipe)]
    reconciler.reconcile()
    assert len(runtime.built) == 1  # unchanged: not built again
    recipe.write_text("packages: [busybox, jq]\n")
    outcome = reconciler.reconcile()
    assert [f.path for c in outcome.changes for f in c.fields] == ["spec.recipe_sha256"]
    assert runtime.built == [("tools", recipe)] * 2


def test_a_recipe_outside_the_source_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "rootfs" / "tools.yaml").write_text("packages: [busybox]\n")  # above the source
    source = tmp_path / "source"
    source.mkdir()
    (source / "image.yaml").write_text(IMAGE)
    runtime = Recording()
    Reconciler(FolderSource(source), AppliedState(RunStore(tmp_path / "s")), runtime).reconcile()
    assert runtime.built == []
