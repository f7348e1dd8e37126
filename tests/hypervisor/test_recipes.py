"""Image recipes: what a guest gets, where recipes are found."""

from __future__ import annotations

from pathlib import Path

import pytest

from luminaguard.hypervisor.base import BackendError
from luminaguard.hypervisor.vm.image.recipe import Recipe, find_recipe


def test_a_recipe_lists_tools_and_always_has_sh(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text("tools: [wc, cat, cat]\n")
    assert Recipe.load(path) == Recipe("tiny", ("cat", "sh", "wc"))


@pytest.mark.parametrize("text", ["tools: 3\n", "[1, 2\n", "- a list\n"])
def test_a_malformed_recipe_is_named(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BackendError, match=r"bad\.yaml: not a usable image recipe"):
        Recipe.load(path)


def test_recipes_are_found_above_the_agents_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "rootfs" / "tiny.yaml").write_text("tools: []\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_recipe("tiny", [deep]) == tmp_path / "rootfs" / "tiny.yaml"
    with pytest.raises(BackendError, match=r"no image recipe rootfs/huge\.yaml"):
        find_recipe("huge", [deep])


def test_the_repositorys_recipe_loads() -> None:
    recipe = Recipe.load(Path(__file__).resolve().parents[2] / "rootfs" / "agent-base.yaml")
    assert "sh" in recipe.tools and "ls" in recipe.tools


def _tree(root: Path) -> Path:
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    (root / "usr" / "bin" / "tool").chmod(0o755)
    (root / "etc").mkdir()
    (root / "etc" / "hosts").symlink_to("/run/hosts")
    (root / "data.txt").write_bytes(bytes(range(256)) * 64)
    return root


def test_an_image_is_the_same_bytes_for_the_same_content(tmp_path: Path) -> None:
    import shutil
    import time

    from luminaguard.hypervisor.vm.image.build import archive, squashfs

    first = _tree(tmp_path / "a")
    packed = archive(first)
    time.sleep(1.1)  # other times, other inodes: none of it may show
    second = _tree(tmp_path / "b")
    assert packed == archive(second)
    if shutil.which("mksquashfs") is None:
        pytest.skip("mksquashfs is not installed (scripts/install-vm-deps.sh installs it)")
    squashfs(first, tmp_path / "a.sqfs")
    squashfs(second, tmp_path / "b.sqfs")
    assert (tmp_path / "a.sqfs").read_bytes() == (tmp_path / "b.sqfs").read_bytes()
    (second / "data.txt").write_text("changed")
    assert archive(first) != archive(second)
