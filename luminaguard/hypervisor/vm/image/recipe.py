"""Image recipes: what a guest holds besides its kernel, python and the guest agent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from luminaguard.hypervisor.base import BackendError


@dataclass(frozen=True)
class Recipe:
    """What goes into a guest besides the kernel, python and the agent: the tools it lists.

    Read from ``rootfs/NAME.yaml``: ``tools`` names programs of this machine (found on
    PATH) copied into the guest with the libraries they need; ``sh`` (dash) always, since
    the agent runs commands through it. Nothing else is there: no busybox, no coreutils.
    """

    name: str
    tools: tuple[str, ...]
    disk_programs: tuple[str, ...] = ()
    disk_folders: tuple[tuple[str, Path], ...] = ()

    @classmethod
    def load(cls, path: Path) -> Recipe:
        """Read a recipe file; a malformed one is a BackendError naming it.

        ``disk`` (optional) puts ``programs`` (at /opt/bin) and ``folders`` (NAME: host
        folder, relative to the recipe; at /opt/NAME) on a read-only tools disk.
        """
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            tools = sorted({"sh", *(str(tool) for tool in data.get("tools", []))})
            disk = data.get("disk") or {}
            programs = tuple(sorted(str(p) for p in disk.get("programs", [])))
            folders = tuple(
                sorted(
                    (str(k), (path.parent / str(v)).resolve())
                    for k, v in disk.get("folders", {}).items()
                )
            )
        except (OSError, yaml.YAMLError, AttributeError, TypeError) as exc:
            raise BackendError(f"{path}: not a usable image recipe: {exc}") from exc
        return cls(path.stem, tuple(tools), programs, folders)


DEFAULT_TOOLS = "cat find grep head hostname ls mkdir od rm sh sleep tr uname wc"
DEFAULT_RECIPE = Recipe("default", tuple(DEFAULT_TOOLS.split()))


def find_recipe(name: str, near: list[Path]) -> Path:
    """``rootfs/NAME.yaml`` in the current folder, or in a folder above one of ``near``."""
    candidates = [Path.cwd()] + [folder for start in near for folder in [start, *start.parents]]
    for folder in candidates:
        path = folder / "rootfs" / f"{name}.yaml"
        if path.is_file():
            return path
    raise BackendError(
        f"no image recipe rootfs/{name}.yaml near {', '.join(map(str, near)) or 'here'}"
    )
