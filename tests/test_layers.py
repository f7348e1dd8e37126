"""The layering of docs/architecture.md, checked on every import in the package.

A package imports only packages of lower layers; the hypervisor and transport layers
are siblings and never import each other (what both need is ``luminaguard.process``).
Inside ``hypervisor/``, a backend's folder imports no other backend's folder: only the
registry knows them all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "luminaguard"
GUEST_PROGRAMS = PACKAGE / "hypervisor" / "vm" / "guest" / "agent"  # data, never imported

#: Lowest first. A package may import packages of strictly lower layers.
LAYERS: list[set[str]] = [
    {"__init__", "errors", "process", "hostile_text", "nofollow", "backoff", "lazy"},
    {"hostile_files"},
    {"space"},
    {"shell"},
    {"config"},
    {"policy"},
    {"hypervisor", "transport"},
    {"compiler"},
    {"scheduler"},
    {"gitops"},
    {"server"},
    {"ui"},
    {"__main__"},
]
#: The backends' own folders under hypervisor/: each imports none of the others.
BACKEND_FOLDERS = ("sandbox", "gvisor", "vm/qemu", "vm/firecracker")


def _layer(package: str) -> int:
    return next(index for index, names in enumerate(LAYERS) if package in names)


def _modules() -> Iterator[Path]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if GUEST_PROGRAMS not in path.parents:
            yield path


def _imports(path: Path) -> Iterator[str]:
    """Every ``luminaguard.…`` module the file imports, as written."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "luminaguard":
                yield from (f"luminaguard.{alias.name}" for alias in node.names)
            elif node.module.startswith("luminaguard."):
                yield node.module
                yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("luminaguard."))


def _package(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imported_package(module: str) -> str:
    name = module.split(".")[1]
    return "__init__" if name == "__version__" else name


def test_every_package_is_in_a_layer() -> None:
    packages = {_package(path) for path in _modules()}
    assert packages <= set().union(*LAYERS)


@pytest.mark.parametrize("path", list(_modules()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_lower_layers(path: Path) -> None:
    own = _package(path)
    wrong = sorted(
        module
        for module in _imports(path)
        if (imported := _imported_package(module)) != own
        and (PACKAGE / imported).exists() | (PACKAGE / f"{imported}.py").exists()
        and _layer(imported) >= _layer(own)
    )
    assert not wrong, f"{path.relative_to(ROOT)} imports a layer at or above its own: {wrong}"


def _backend_folder(module_path: str) -> str | None:
    """``sandbox``, ``vm/qemu``… for a path below hypervisor/, else None."""
    return next(
        (f for f in BACKEND_FOLDERS if module_path == f or module_path.startswith(f + "/")),
        None,
    )


@pytest.mark.parametrize(
    "path",
    [p for p in _modules() if p.is_relative_to(PACKAGE / "hypervisor")],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_backend_imports_another(path: Path) -> None:
    own = _backend_folder("/".join(path.relative_to(PACKAGE / "hypervisor").parts))
    crossing = []
    for module in _imports(path):
        parts = module.split(".")
        if parts[:2] != ["luminaguard", "hypervisor"]:
            continue
        theirs = _backend_folder("/".join(parts[2:]))
        if theirs is not None and theirs != own and path.name != "registry.py":
            crossing.append(module)
    assert not crossing, f"{path.relative_to(ROOT)} reaches into another backend: {crossing}"


def test_the_checks_see_a_crossing() -> None:
    """The parser finds what the rules forbid (so the tests above can fail)."""
    sample = PACKAGE / "hypervisor" / "vm" / "qemu" / "boot.py"
    assert "luminaguard.hypervisor.vm.machine" in set(_imports(sample))
    assert _backend_folder("vm/firecracker/backend") == "vm/firecracker"
    assert _layer("transport") == _layer("hypervisor") > _layer("policy")
