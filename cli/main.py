"""Entry point of the `digits` command: builds the parser and dispatches to one sub-command.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``; that module
imports only the standard library at import time, so `digits serve` never pays for Prefect
and `digits --help` stays instant. Handlers return an exit code; any exception deriving from
``CommandError`` or ``ValueError``/``LookupError``/``OSError`` becomes a one-line reason on
stderr and a non-zero exit code instead of a traceback; any other exception becomes one line
too, naming its type. ``digits --debug COMMAND`` adds the traceback (and gRPC core's own log).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback
from collections.abc import Sequence

from cli.exits import ExitCode, describe_exit_codes

# Order is the order shown by `digits --help`.
_SUBCOMMANDS = ("train", "schedule", "serve", "predict", "models", "rollout", "logs", "monitor")


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
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the traceback of a failure (and gRPC core's log lines)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _SUBCOMMANDS:
        module = importlib.import_module(f"cli.{name}")
        try:
            module.add_parser(subparsers)
        except ModuleNotFoundError as err:  # e.g. the serve image: no pipeline package at all
            _add_unavailable(subparsers, name, err)
    return parser


# Top-level packages that an install may leave out (`pip install digits` without the pipeline
# extra, the serve container image); a sub-command needing one says so instead of breaking all.
_OPTIONAL = {"pipeline": "pipeline", "prefect": "pipeline", "matplotlib": "pipeline"}


def _add_unavailable(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    err: ModuleNotFoundError,
) -> None:
    """Register `name` as a sub-command that explains what is missing (or re-raise a real bug)."""
    missing = (err.name or "").split(".")[0]
    if missing not in _OPTIONAL:
        raise err
    reason = (
        f"needs the {_OPTIONAL[missing]} extra ({missing!r} is not installed here): "
        f"pip install 'digits[{_OPTIONAL[missing]}]'"
    )
    parser = subparsers.choices.get(name) or subparsers.add_parser(name, help=f"({reason})")

    def unavailable(args: argparse.Namespace) -> int:
        raise CommandError(reason, ExitCode.USAGE)

    # Its own flags could not be built: main() accepts whatever follows and answers the reason.
    parser.set_defaults(handler=unavailable, unavailable=True)


def quiet_grpc_core(command: str, debug: bool) -> None:
    """Before grpc is imported: silence its C core's log in client commands unless asked.

    A TLS handshake failure otherwise prints an `I1129 ... ssl_transport_security.cc` line next
    to the one-line error that already says what happened. The server (`serve`) keeps gRPC's
    default (errors), since a long-running process's core errors matter; it checks its ports
    itself first. A value the user set wins.
    """
    if command != "serve" or debug:
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR" if debug else "NONE")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "unavailable", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    quiet_grpc_core(args.command, args.debug)
    try:
        code = args.handler(args)
    except CommandError as err:
        return _fail(args, str(err), err.exit_code)
    except BrokenPipeError:  # e.g. `digits logs tail ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit either
        return 128 + signal.SIGPIPE  # 141, as coreutils report it
    except (ValueError, LookupError, OSError) as err:
        return _fail(args, str(err), ExitCode.FAILED)
    except KeyboardInterrupt:
        print(f"digits {args.command}: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as err:  # a bug: still one line, the traceback with --debug
        hint = "" if args.debug else " (digits --debug ... prints the traceback)"
        return _fail(args, f"unexpected {type(err).__name__}: {err}{hint}", ExitCode.FAILED)
    return int(code or 0)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    """One line on stderr, after the traceback when --debug is on."""
    if args.debug:
        traceback.print_exc()
    print(f"digits {args.command}: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
