"""`digits train`: download MNIST, train, evaluate, gate and publish a model (the Prefect flow)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from cli.exits import ExitCode

_NOT_PUBLISHED_EXIT = ExitCode.NOT_PUBLISHED

# Option dest -> TrainSettings field; options left unset keep the settings' defaults.
_FIELDS = {
    "mirrors": "mirrors",
    "data_dir": "data_dir",
    "registry": "registry_dir",
    "model": "model_name",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "seed": "seed",
    "loss": "loss",
    "layer_sizes": "layer_sizes",
    "validation_split": "validation_split",
    "train_limit": "train_limit",
    "min_accuracy": "min_accuracy",
    "tolerance": "tolerance",
}


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by `digits train` and `digits schedule`."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--mirror",
        dest="mirrors",
        action="append",
        metavar="URL",
        help="MNIST base URL, tried in order; repeatable (default: "
        "$DIGITS_MNIST_MIRRORS, comma-separated, else the public mirrors)",
    )
    data.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="dataset cache (default: the per-user cache dir, digits/mnist)",
    )
    data.add_argument("--offline", action="store_true", help="use only the cache")
    model = parser.add_argument_group("model and training")
    model.add_argument("--epochs", type=int, metavar="N", help="passes over the data (20)")
    model.add_argument("--batch-size", type=int, metavar="N", help="rows per Adam step (128)")
    model.add_argument("--lr", type=float, metavar="X", help="Adam learning rate (0.002)")
    model.add_argument("--seed", type=int, metavar="N", help="random seed (0)")
    model.add_argument("--loss", choices=("cross_entropy", "mse"), help="loss (cross_entropy)")
    model.add_argument(
        "--layer-sizes", type=_sizes, metavar="A,B,...", help="layer sizes (784,128,40,10)"
    )
    model.add_argument(
        "--validation-split",
        type=float,
        metavar="X",
        help="fraction held out for per-epoch validation (0)",
    )
    model.add_argument(
        "--train-limit", type=int, metavar="N", help="train on the first N rows only (quick runs)"
    )
    gate = parser.add_argument_group("publishing")
    gate.add_argument(
        "--registry",
        type=Path,
        metavar="DIR",
        help="registry directory (default: $DIGITS_REGISTRY or ./models)",
    )
    gate.add_argument("--model", metavar="NAME", help="model name (digits)")
    gate.add_argument(
        "--min-accuracy",
        type=float,
        metavar="X",
        help="publish nothing below this test accuracy (0.97)",
    )
    gate.add_argument(
        "--tolerance",
        type=float,
        metavar="X",
        help="promote unless worse than production by more than this (0)",
    )


def settings_from_args(args: argparse.Namespace) -> Any:
    """Build a validated TrainSettings; bad values become one CommandError line."""
    from pydantic import ValidationError

    from cli.main import CommandError
    from pipeline.settings import TrainSettings, describe_validation_error

    fields: dict[str, Any] = {
        field: getattr(args, dest)
        for dest, field in _FIELDS.items()
        if getattr(args, dest) is not None
    }
    fields["offline"] = args.offline
    for key in ("registry_dir", "data_dir"):  # absolute, so scheduled runs find the same dirs
        if key in fields:
            fields[key] = fields[key].expanduser().resolve()
    try:
        settings = TrainSettings(**fields)
    except ValidationError as err:
        message = describe_validation_error(err, _flag_names())
        raise CommandError(message, ExitCode.USAGE) from None
    return settings.model_copy(update={"registry_dir": settings.registry_dir.resolve()})


def _flag_names() -> dict[str, str]:
    """TrainSettings field -> the flag a user types, so errors speak in flags."""
    names = {field: "--" + dest.replace("_", "-") for dest, field in _FIELDS.items()}
    return names | {"mirrors": "--mirror"}


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
        "publish it to the registry when it passes the gate; promote it to 'production' when "
        "it is not worse than the current one. Exit codes: 0 published (or skipped by "
        "--if-empty), 1 error, 2 bad option, 3 not published (gate, divergence, data).",
    )
    add_training_options(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--if-empty",
        action="store_true",
        help="do nothing when the registry already has a version of the model",
    )
    parser.set_defaults(handler=run)


def _existing_version(settings: Any) -> int | None:
    from registry import NotFoundError, Registry

    try:
        versions = Registry(settings.registry_dir).list_versions(settings.model_name)
    except NotFoundError:
        return None
    return versions[-1].version if versions else None


def run(args: argparse.Namespace) -> int:
    from cli.main import CommandError
    from pipeline.preflight import check_destinations

    settings = settings_from_args(args)
    check_destinations(settings)  # fail fast: before --if-empty, the download and training
    if args.if_empty and (latest := _existing_version(settings)) is not None:
        message = f"{settings.model_name} already has v{latest} in {settings.registry_dir}"
        print(
            json.dumps({"skipped": True, "reason": message})
            if args.json
            else f"skipped: {message} (--if-empty)"
        )
        return 0
    prefer_quiet_prefect_defaults()
    from core.train import DivergenceError
    from pipeline.download import DownloadError
    from pipeline.flows import train_flow
    from pipeline.gate import GateRejected
    from pipeline.report import describe

    try:
        summary = train_flow(settings)
    except (GateRejected, DivergenceError, DownloadError) as err:
        if args.json:  # scripts read stdout; the one-line reason also goes to stderr
            print(json.dumps({"published": False, "reason": str(err)}))
        raise CommandError(f"not published: {err}", _NOT_PUBLISHED_EXIT) from None
    assert isinstance(summary, dict)  # the flow returns its summary, or raises
    print(json.dumps(summary, indent=2) if args.json else describe(summary))
    return 0
