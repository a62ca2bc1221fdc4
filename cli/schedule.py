"""`digits schedule`: serve the training flow as a cron-scheduled Prefect deployment."""

from __future__ import annotations

import argparse

from cli.train import add_training_options, prefer_quiet_prefect_defaults, settings_from_args


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "schedule",
        help="retrain on a cron schedule (Prefect deployment served by this process)",
        description="Register the training flow as a Prefect deployment on a cron schedule "
        "and run its flow runs until interrupted. Needs a Prefect server: start "
        "`prefect server start` and set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api). "
        "The training options become the deployment's parameters.",
    )
    parser.add_argument(
        "--cron",
        required=True,
        metavar="EXPR",
        help='cron expression, e.g. "0 3 * * *" (03:00 every day)',
    )
    parser.add_argument(
        "--timezone",
        default="UTC",
        help="IANA time zone the cron is evaluated in, e.g. Europe/Berlin (%(default)s)",
    )
    parser.add_argument(
        "--on-collision",
        choices=("enqueue", "cancel"),
        default="enqueue",
        help="one run at a time: a run due while another is active waits (enqueue) or is "
        "cancelled (%(default)s)",
    )
    parser.add_argument(
        "--stale-after",
        type=float,
        metavar="SECONDS",
        help="skip a scheduled run that starts this late, e.g. after an outage (21600)",
    )
    parser.add_argument("--name", default="digits-retrain", help="deployment name (%(default)s)")
    add_training_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cli.main import CommandError

    settings = settings_from_args(args)
    if args.stale_after is not None:
        settings = type(settings)(**{**settings.model_dump(), "stale_after_s": args.stale_after})
    prefer_quiet_prefect_defaults()
    from pipeline.schedule import api_url, build_deployment, serve_deployment

    deployment = build_deployment(settings, args.cron, args.name, args.timezone, args.on_collision)
    if api_url() is None:
        raise CommandError(
            "no Prefect server configured: run `prefect server start` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (a schedule needs a server that stays up)"
        )
    print(
        f"serving deployment digits-train/{args.name} on {args.cron!r} ({args.timezone}) "
        f"against {api_url()}; Ctrl-C stops it",
        flush=True,
    )
    serve_deployment(deployment)
    return 0
