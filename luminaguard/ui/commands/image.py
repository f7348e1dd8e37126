"""``luminaguard image build PATH...`` and ``luminaguard image list``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from luminaguard.compiler import load_checked
from luminaguard.hypervisor.vm.image.build import build, built_images
from luminaguard.hypervisor.vm.image.recipe import Recipe, find_recipe
from luminaguard.ui.exit_codes import INVALID, OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``image`` subcommand."""
    parser = commands.add_parser("image", help="build and list guest images for micro-VMs")
    actions = parser.add_subparsers(dest="image_action", required=True, metavar="ACTION")
    build_parser = actions.add_parser("build", help="build every Image defined under PATH")
    build_parser.add_argument("paths", nargs="+", metavar="PATH", help="YAML files or folders")
    build_parser.set_defaults(handler=run_build)
    listing = actions.add_parser("list", help="the built images")
    listing.set_defaults(handler=run_list)


def run_build(args: argparse.Namespace) -> int:
    """Build (or find in the cache) the image of each Image document."""
    bundle = load_checked(args.paths)
    names = bundle.catalog.names("Image")
    if not names:
        print("no Image documents found")
        return INVALID
    for name in names:
        document = bundle.catalog.get("Image", name)
        image = bundle.catalog.image(name)
        assert document is not None and image is not None
        recipe = find_recipe(image.spec.rootfs, [Path(document.source.file).parent])
        started = time.perf_counter()
        built = build(Recipe.load(recipe))
        print(f"{name}: {recipe} -> {built.initrd} ({time.perf_counter() - started:.1f} s)")
    return OK


def run_list(args: argparse.Namespace) -> int:
    """One row per cached image."""
    table = Table("key", "recipe", "tools", "size", "built")
    for image in built_images():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(image["built"]))
        table.add_row(
            image["key"], image["recipe"], " ".join(image["tools"]), f"{image['size_mb']} MB", when
        )
    Console().print(table)
    return OK
