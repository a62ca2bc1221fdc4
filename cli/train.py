"""`digits train`: download MNIST, train, evaluate, gate and publish a model (the Prefect flow)."""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from cli.exits import ExitCode
from cli.locations import registry_location
from cli.sweep_options import add_sweep_options, sweep_spec, trials_text

_NOT_PUBLISHED_EXIT = ExitCode.NOT_PUBLISHED

# TrainSettings fields by flag group; each flag is generated from its field (cli/flags.py).
_GROUPS = {
    "data": (
        "mirrors", "data_dir", "offline", "download_deadline_s", "download_min_rate",
        "download_rate_window_s", "download_retries", "download_backoff_s", "extra_data",
    ),
    "model and training": (
        "epochs", "batch_size", "lr", "schedule", "min_lr_ratio", "warmup_steps", "beta1",
        "beta2", "eps", "shift_pixels", "seed", "loss", "layer_sizes", "validation_split",
        "train_limit", "threads",
    ),
    "publishing": ("registry_dir", "model_name", "min_accuracy", "tolerance", "promote_ties"),
    "rollout (a canary instead of promoting outright; docs/rollout.md)": (
        "rollout_metrics", "rollout_steps", "rollout_interval_s",
    ),
}  # fmt: skip
_FLAG_NAMES = {"mirrors": "--mirror", "registry_dir": "--registry", "model_name": "--model"}


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by `digits train` and `digits schedule`."""
    from cli.flags import add_flags
    from pipeline.settings import TrainSettings

    groups = {title: parser.add_argument_group(title) for title in _GROUPS}
    for title, fields in _GROUPS.items():
        add_flags(groups[title], TrainSettings, fields, names=_FLAG_NAMES)
    groups["data"].add_argument(
        "--file-sha256",
        action="append",
        type=_name_digest,
        metavar="NAME=SHA256",
        help="expected sha256 of one dataset file, replacing MNIST's (other IDX datasets); "
        "repeatable",
    )


def _name_digest(text: str) -> tuple[str, str]:
    name, sep, digest = text.partition("=")
    if not sep or not name or not digest:
        raise argparse.ArgumentTypeError(f"expected NAME=SHA256, got {text!r}")
    return name, digest.lower()


def settings_from_args(args: argparse.Namespace) -> Any:
    """Build a validated TrainSettings; bad values become one CommandError line."""
    from pydantic import ValidationError

    from cli.flags import describe_validation_error, overrides
    from cli.main import CommandError
    from pipeline.settings import TrainSettings

    fields = overrides(args, [field for group in _GROUPS.values() for field in group])
    if args.file_sha256:
        fields["file_sha256"] = dict(args.file_sha256)
    # absolute, so scheduled runs find the same dirs
    for key in ("registry_dir", "data_dir", "extra_data"):
        location = registry_location(str(fields[key])) if fields.get(key) is not None else None
        if isinstance(location, Path):
            fields[key] = location.expanduser().resolve()
    try:
        settings = TrainSettings(**fields)
    except ValidationError as err:
        raise CommandError(
            "invalid training settings: " + describe_validation_error(err, _FLAG_NAMES),
            ExitCode.USAGE,
        ) from None
    if isinstance(settings.registry_dir, Path):
        return settings.model_copy(update={"registry_dir": settings.registry_dir.resolve()})
    return settings


def prefer_quiet_prefect_defaults() -> None:
    """Before Prefect loads: no analytics, and time for the ephemeral server on a busy machine.

    Only defaults: a value the user set in the environment wins.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train, evaluate, gate and publish a model (Prefect flow)",
        description="Download MNIST (verified), train the MLP, evaluate it on the test set and "
        "publish it to the registry when it passes the gate and is not identical to a published "
        "version; promote it to 'production' when it beats the current one. With --sweep, "
        "trials run on a Dask cluster and only the best is published. Exit codes: 0 published "
        "(or identical, or skipped by --if-empty), 1 error, 2 bad option, 3 not published "
        "(gate, divergence, data).",
    )
    add_training_options(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--if-empty",
        action="store_true",
        help="do nothing when the registry already has a version of the model",
    )
    add_sweep_options(parser)
    parser.set_defaults(handler=run)


def _existing_version(settings: Any) -> int | None:
    """Latest version of the model, None when it has none; also checks the registry is usable
    (an unreachable store, wrong credentials or a missing bucket fail here, before training)."""
    from cli.main import CommandError
    from registry import NotFoundError, Registry, RegistryError

    try:
        versions = Registry(settings.registry_dir).list_versions(settings.model_name)
    except NotFoundError:
        return None
    except RegistryError as err:
        raise CommandError(str(err)) from None
    return versions[-1].version if versions else None


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # An exception, not an exit at the signal: finally blocks stop the temporary Prefect
    # server and the Dask cluster, and partial downloads are deleted.
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    from cli.main import CommandError
    from pipeline.preflight import check_destinations

    settings = settings_from_args(args)
    check_destinations(settings)  # fail fast: before --if-empty, the download and training
    spec = sweep_spec(args)
    latest = _existing_version(settings)
    if args.if_empty and latest is not None:
        message = f"{settings.model_name} already has v{latest} in {settings.registry_dir}"
        print(
            json.dumps({"skipped": True, "reason": message})
            if args.json
            else f"skipped: {message} (--if-empty)"
        )
        return 0
    if spec is not None:
        from pipeline.sweep import expand

        try:
            expand(spec, settings)  # every trial's settings valid before any cluster starts
        except ValueError as err:
            raise CommandError(f"invalid sweep: {err}", ExitCode.USAGE) from None
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    prefer_quiet_prefect_defaults()
    from core.train import DivergenceError
    from pipeline.api_server import prefect_api
    from pipeline.download import DownloadError
    from pipeline.gate import GateRejected
    from pipeline.report import describe
    from registry import RegistryError, StoreUnavailableError

    try:
        with prefect_api():
            summary = _run_flow(settings, spec, args)
    except StoreUnavailableError as err:  # the store failed: an error to fix, not a verdict
        if args.json:
            print(json.dumps({"published": False, "reason": str(err)}))
        raise CommandError(str(err)) from None  # exit 1, one line
    except (GateRejected, DivergenceError, DownloadError, RegistryError) as err:
        if args.json:  # scripts read stdout; the one-line reason also goes to stderr
            print(json.dumps({"published": False, "reason": str(err)}))
        raise CommandError(f"not published: {err}", _NOT_PUBLISHED_EXIT) from None
    assert isinstance(summary, dict)  # the flow returns its summary, or raises
    print(json.dumps(summary, indent=2) if args.json else describe(summary))
    if spec is not None and not args.json:
        print(trials_text(summary.get("trials", [])))
    return 0


def _run_flow(settings: Any, spec: Any, args: argparse.Namespace) -> Any:
    if spec is None:
        from pipeline.flows import train_flow

        return train_flow(settings)
    from pipeline.cluster import dask_cluster
    from pipeline.sweep_flow import run_sweep

    with dask_cluster(args.dask_address, args.workers) as address:
        return run_sweep(settings, spec, address)
