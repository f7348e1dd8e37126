"""``python -m luminaguard``."""

from __future__ import annotations

import sys

from luminaguard.ui.cli import main

sys.exit(main())
