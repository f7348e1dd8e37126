"""The one place that turns a command's outcome into an exit code.

| code | meaning                                             |
| ---- | --------------------------------------------------- |
| 0    | done                                                |
| 1    | invalid input (configuration or command line), or   |
|      | the environment: a full disk under the state folder |
|      | (``DiskFull``: the folder and its free space named) |
| 2    | a step failed or was denied                         |
| 3    | halted awaiting approval                            |
| 4    | internal error (a bug in LuminaGuard: please report) |
| 130  | interrupted (Ctrl-C)                                |

Codes 2 and 3 end ``run`` and ``resume`` only: a run's outcome gives them
(``luminaguard.scheduler.outcomes.EXIT_CODES``), not an exception.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import TextIO

from luminaguard.config.diagnostics import ConfigError
from luminaguard.errors import LuminaGuardError
from luminaguard.hostile_text import visible
from luminaguard.ui.diagnostics import render_config_error

OK = 0
INVALID = 1
INTERNAL = 4
INTERRUPTED = 130


def guarded(command: Callable[[], int], stderr: TextIO | None = None) -> int:
    """Run ``command``; report LuminaGuard errors and bugs on stderr as exit codes."""
    err = stderr or sys.stderr
    try:
        return command()
    except ConfigError as exc:
        err.write(visible(render_config_error(exc), multiline=True))
        return INVALID
    except LuminaGuardError as exc:
        err.write(visible(f"error: {exc}", multiline=True) + "\n")
        return INVALID
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return INTERRUPTED
    except Exception:
        err.write("internal error: this is a bug in LuminaGuard; please report it\n")
        err.write(visible(traceback.format_exc(), multiline=True))
        return INTERNAL
