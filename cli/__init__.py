"""The `digits` command line: one module per sub-command, heavy imports deferred to run time."""

from cli.main import main

__all__ = ["main"]
