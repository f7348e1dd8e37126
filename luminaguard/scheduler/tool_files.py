"""The images, audio and resources of a tool result, saved as files of the step's outputs.

Each is written to ``runs/RUN/steps/STEP/outputs/`` (folders 0700, files 0600) under
its SHA-256 and an extension from a small allow-list of MIME types (``.bin`` for any
other) -- never under a name the server chose. A step keeps at most ``STEP_CAP``
bytes; an item past it (or dropped by the transport: too large, not base64, a link) is
recorded in ``dropped`` with the reason, and not written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from luminaguard.scheduler.private import FILE_MODE, private_folder
from luminaguard.transport.base import Content

#: The most a step's outputs keep in files, bytes.
STEP_CAP = 64 << 20
#: The most items a step's outputs record (``files`` and ``dropped`` each); the rest are
#: counted, not written: a million tiny items would be a million files and entries.
MAX_ITEMS = 256

EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "application/pdf": ".pdf",
    "application/json": ".json",
    "text/plain": ".txt",
    "text/csv": ".csv",
    "text/markdown": ".md",
}


def _write(folder: Path, name: str, data: bytes) -> None:
    """Write a new 0600 file (an existing one has the same content: same hash)."""
    path = folder / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        return
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _folder(run: Path, step: str) -> Path:
    for path in (run / "steps", run / "steps" / step, run / "steps" / step / "outputs"):
        private_folder(path)
    return run / "steps" / step / "outputs"


def _saved(run: Path, step: str, item: Content) -> dict[str, Any]:
    """Write one item; its entry in ``files``."""
    sha256 = hashlib.sha256(item.data).hexdigest()
    name = sha256 + EXTENSIONS.get(item.mime, ".bin")
    _write(_folder(run, step), name, item.data)
    entry: dict[str, Any] = {"path": f"steps/{step}/outputs/{name}", "sha256": sha256}
    entry.update(mime=item.mime, size=len(item.data))
    if item.uri is not None:
        entry["uri"] = item.uri
    return entry


def save(run: Path, step: str, contents: Iterable[Content]) -> dict[str, list[dict[str, Any]]]:
    """Write the contents of a step's result; ``files`` and ``dropped``, as outputs.

    A file's ``path`` is relative to the run's folder.
    """
    files: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    total = 0
    uncounted = 0
    for item in contents:
        reason = item.dropped
        if reason is None and total + len(item.data) > STEP_CAP:
            reason = f"over the {STEP_CAP >> 20} MiB cap per step"
        if reason is None and len(files) >= MAX_ITEMS:
            reason = f"over the {MAX_ITEMS} files per step"
        if reason is not None:
            if len(dropped) >= MAX_ITEMS:
                uncounted += 1
                continue
            dropped.append({"kind": item.kind, "mime": item.mime, "uri": item.uri})
            dropped[-1]["reason"] = reason
            continue
        total += len(item.data)
        files.append(_saved(run, step, item))
    if uncounted:
        dropped.append({"kind": "more", "count": uncounted, "reason": "too many items"})
    return {"files": files, "dropped": dropped}
