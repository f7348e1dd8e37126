"""One line per headline figure, for ``bench/measure.py`` to put in the README's table.

A bench prints its own report as before, and beside it, for each figure the README
quotes, one line ``figure: {json}``: what was measured, our figure, the peer measured in
the same run (or None where there is none), the target and whether it was met.
"""

from __future__ import annotations

import json

PREFIX = "figure: "


def emit(what: str, ours: str, peer: str | None, target: str, met: bool | None) -> None:
    """Print one figure line (``met`` None: no pass/fail, a figure to know)."""
    line = {"what": what, "ours": ours, "peer": peer, "target": target, "met": met}
    print(PREFIX + json.dumps(line, ensure_ascii=False), flush=True)
