"""`digits train --sweep`: the sweep options, the SweepSpec they make and the trial table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli.exits import ExitCode

__all__ = ["add_sweep_options", "sweep_spec", "trials_text"]


def add_sweep_options(parser: argparse.ArgumentParser) -> None:
    """--sweep, --sweep-file, --dask-address and --workers."""
    sweep = parser.add_argument_group(
        "sweep (each trial a Prefect task on a Dask cluster; the best by validation is published)"
    )
    sweep.add_argument(
        "--sweep",
        action="append",
        metavar="NAME=V1,V2",
        help="grid values of one setting, e.g. lr=1e-3,2e-3; repeat for more settings",
    )
    sweep.add_argument(
        "--sweep-file",
        type=Path,
        metavar="FILE",
        help="YAML/JSON sweep: grid or random search with a trial budget (docs/pipeline.md)",
    )
    sweep.add_argument(
        "--dask-address",
        metavar="ADDR",
        help="scheduler of an existing Dask cluster, e.g. tcp://host:8786 (default: a local "
        "cluster, one single-threaded worker process per core, started for this run)",
    )
    sweep.add_argument(
        "--workers", type=int, metavar="N", help="local cluster size (default: usable cores)"
    )


def sweep_spec(args: argparse.Namespace) -> Any:
    """The SweepSpec from --sweep-file or the --sweep options; None when not a sweep."""
    from pydantic import ValidationError

    from cli.main import CommandError
    from pipeline.sweep import SweepSpec, parse_sweep_option

    if args.sweep and args.sweep_file:
        raise CommandError("give --sweep or --sweep-file, not both", ExitCode.USAGE)
    try:
        if args.sweep_file:
            import yaml

            try:
                document = yaml.safe_load(args.sweep_file.read_text())
            except yaml.YAMLError as err:
                raise CommandError(
                    f"{args.sweep_file}: not valid YAML ({err})", ExitCode.USAGE
                ) from None
            if not isinstance(document, dict):
                raise CommandError(
                    f"{args.sweep_file}: expected a mapping of sweep fields", ExitCode.USAGE
                )
            return SweepSpec(**document)
        if args.sweep:
            return SweepSpec(parameters=dict(parse_sweep_option(o) for o in args.sweep))
    except ValidationError as err:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
        raise CommandError(f"invalid sweep: {problems}", ExitCode.USAGE) from None
    except ValueError as err:
        raise CommandError(f"invalid sweep: {err}", ExitCode.USAGE) from None
    return None


def trials_text(rows: list[dict[str, Any]]) -> str:
    """The trial table, best first, as aligned text."""
    fixed = ("index", "val_accuracy", "val_loss", "seconds", "worker", "rank")
    swept = [key for key in (rows[0] if rows else {}) if key not in fixed]
    lines = [
        "  rank  " + "  ".join(f"{k:>10}" for k in swept) + "  val_acc  val_loss  secs  worker"
    ]
    for row in rows:
        values = "  ".join(f"{row[k]!s:>10}" for k in swept)
        lines.append(
            f"  {row['rank']:>4}  {values}  {row['val_accuracy']:.4f}  {row['val_loss']:8.4f}"
            f"  {row['seconds']:4.1f}  {row['worker']}"
        )
    return "\n".join(lines)
