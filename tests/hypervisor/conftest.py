"""Fixtures shared by the hypervisor tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture
def running() -> Iterator[subprocess.Popen[bytes]]:
    """A VMM that keeps running."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()
