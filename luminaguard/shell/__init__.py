"""Shell commands parsed into the simple commands they run (tree-sitter-bash)."""

from __future__ import annotations

from luminaguard.shell.command import ParsedCommand, Redirect, SimpleCommand
from luminaguard.shell.parse import parse_command

__all__ = ["ParsedCommand", "Redirect", "SimpleCommand", "parse_command"]
