"""`digits train`: download MNIST, train, evaluate, gate and publish a model (the Prefect flow)."""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from cli.sweep_options import add_sweep_options, sweep_spec, trials_text

_NOT_PUBLISHED_EXIT = 3  # trained (or tried to) but the gate, divergence or data said no

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
    "threads": "threads",
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


def _name_digest(text: str) -> tuple[str, str]:
    name, sep, digest = text.partition("=")
    if not sep or not name or not digest:
        raise argparse.ArgumentTypeError(f"expected NAME=SHA256, got {text!r}")
    return name, digest.lower()


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
    data.add_argument(
        "--file-sha256",
        action="append",
        type=_name_digest,
        metavar="NAME=SHA256",
        help="expected sha256 of one dataset file, replacing MNIST's (other IDX datasets); "
        "repeatable",
    )
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
    model.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="BLAS threads for training, recorded in the manifest (default: the cores this "
        "process may use; sweep trials always use 1)",
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
        help="promote when better than production minus this (0)",
    )
    gate.add_argument(
        "--promote-ties",
        action="store_true",
        help="also promote a model that ties with production (default: keep production)",
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
    fields["promote_ties"] = args.promote_ties
    if args.file_sha256:
        fields["file_sha256"] = dict(args.file_sha256)
    for key in ("registry_dir", "data_dir"):  # absolute, so scheduled runs find the same dirs
        if key in fields:
            fields[key] = fields[key].expanduser().resolve()
    try:
        settings = TrainSettings(**fields)
    except ValidationError as err:
        raise CommandError(describe_validation_error(err), 2) from None
    return settings.model_copy(update={"registry_dir": settings.registry_dir.resolve()})


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
    add_sweep_options(parser)
    parser.set_defaults(handler=run)


def _existing_version(settings: Any) -> int | None:
    from registry import NotFoundError, Registry

    try:
        versions = Registry(settings.registry_dir).list_versions(settings.model_name)
    except NotFoundError:
        return None
    return versions[-1].version if versions else None


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # An exception, not an exit at the signal: finally blocks stop the temporary Prefect
    # server and the Dask cluster, and partial downloads are deleted.
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    from cli.main import CommandError

    settings = settings_from_args(args)
    spec = sweep_spec(args)
    if args.if_empty and (latest := _existing_version(settings)) is not None:
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
            raise CommandError(f"invalid sweep: {err}", 2) from None
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    prefer_quiet_prefect_defaults()
    from core.train import DivergenceError
    from pipeline.api_server import prefect_api
    from pipeline.download import DownloadError
    from pipeline.gate import GateRejected
    from pipeline.report import describe

    try:
        with prefect_api():
            summary = _run_flow(settings, spec, args)
    except (GateRejected, DivergenceError, DownloadError) as err:
        if args.json:  # scripts read stdout; the one-line reason also goes to stderr
            print(json.dumps({"published": False, "reason": str(err)}))
        raise CommandError(f"not published: {err}", _NOT_PUBLISHED_EXIT) from None
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
