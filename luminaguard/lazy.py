"""A package's public names, imported when first used rather than with the package.

``luminaguard.hypervisor`` is imported by the sandbox helper on every spawn (for its
standard-library-only ``linux`` modules) and ``luminaguard.scheduler`` by every command:
their ``__init__`` must not import the layer. ``exports`` gives such a package a module
``__getattr__`` (PEP 562) that imports a public name from the module defining it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # mypy treats this name as true; importing typing costs spawn time
if TYPE_CHECKING:
    from collections.abc import Callable


def exports(package: str, where: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: ``where`` maps each name to its module."""

    def attribute(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(__import__(where[name], fromlist=[name]), name)

    return attribute
