"""`digits serve`: run the prediction server (gRPC, and HTTP/REST with --http-port); flags override
DIGITS_* environment variables."""

from __future__ import annotations

import argparse
from typing import Any

from cli.exits import ExitCode


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the registry's model over gRPC (and HTTP/REST with --http-port)",
        description="Serve the production model of a registry over gRPC (digits.v1, health, "
        "reflection, Open Inference Protocol) and, with --http-port, over HTTP/REST (the Open "
        "Inference Protocol's REST binding and a drawing page at /), hot-reloading new "
        "versions. Each flag has an "
        "environment variable DIGITS_<SETTING> (e.g. DIGITS_PORT, DIGITS_GRACE_S; see "
        "docs/service.md); flags win.",
    )
    from cli.flags import add_flags
    from service.settings import ServiceSettings

    add_flags(parser, ServiceSettings, ServiceSettings.model_fields)
    parser.add_argument(
        "--check-ports",
        action="store_true",
        help="only check that the ports are free, then exit (make run does it before training)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from service.preflight import check_ports

    settings = settings_from_args(args)
    check_ports(settings)  # a port in use: one line naming the address and the flag, no more
    if args.check_ports:
        return 0
    from service.rpc.server import serve

    return serve(settings)


def settings_from_args(args: argparse.Namespace) -> Any:
    """ServiceSettings from the flags given (env vars and defaults fill the rest)."""
    from pydantic import ValidationError

    from cli.flags import describe_validation_error, overrides
    from cli.main import CommandError
    from service.settings import ServiceSettings

    try:
        return ServiceSettings(**overrides(args, ServiceSettings.model_fields))
    except ValidationError as err:
        raise CommandError(describe_validation_error(err), exit_code=ExitCode.USAGE) from None
