"""``luminaguard validate PATH...``: load, check and compile everything; change nothing."""

from __future__ import annotations

import argparse
from collections import Counter

from luminaguard.compiler import compile_paths
from luminaguard.compiler.lock import add_lock_option, find_lock
from luminaguard.ui.exit_codes import OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``validate`` subcommand."""
    parser = commands.add_parser("validate", help="check configuration files; change nothing")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="YAML files or folders")
    add_lock_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Validate every document and compile every workload; report all problems."""
    bundle, plans = compile_paths(args.paths, lock=find_lock(args.lock))
    kinds = Counter(document.kind for document in bundle.loaded.documents)
    listing = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    files = len(bundle.loaded.files)
    print(
        f"ok: {len(bundle.loaded.documents)} documents in {files} file{'s' if files != 1 else ''}"
        f" ({listing or 'none'}); {len(plans)} workload{'s' if len(plans) != 1 else ''} compiled"
    )
    return OK
