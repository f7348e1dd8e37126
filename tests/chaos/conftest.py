from __future__ import annotations

from tests.integration.conftest import sandbox

__all__ = ["sandbox"]
