"""Entry point of the `digits` command: builds the parser and dispatches to one sub-command.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``; that module
imports only the standard library at import time, so `digits serve` never pays for Prefect
and `digits --help` stays instant. Handlers return an exit code; any exception deriving from
``CommandError`` or ``ValueError``/``LookupError``/``OSError`` becomes a one-line reason on
stderr and a non-zero exit code instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cli.exits import ExitCode, describe_exit_codes

# Order is the order shown by `digits --help`.
_SUBCOMMANDS = ("train", "schedule", "serve", "predict", "models")


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit code ``exit_code``."""

    def __init__(self, message: str, exit_code: int = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digits",
        description="Train, publish and serve the MNIST digit classifier.",
        epilog=describe_exit_codes(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _SUBCOMMANDS:
        module = importlib.import_module(f"cli.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except CommandError as err:
        print(f"digits {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except (ValueError, LookupError, OSError) as err:
        print(f"digits {args.command}: error: {err}", file=sys.stderr)
        return ExitCode.FAILED
    except KeyboardInterrupt:
        print(f"digits {args.command}: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
