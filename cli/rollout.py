"""`digits rollout VERSION`: step a canary through percents, check guards, promote or roll back.

Exit codes: 0 promoted, 6 rolled back (a guard failed; production never changed), 1 error.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from cli.exits import ExitCode

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """``60s``, ``1.5m``, ``500ms``, ``2h`` or plain seconds -> seconds."""
    match = _DURATION.match(text)
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 60s, 2m, 500ms)")
    return float(match[1]) * _UNIT_S[match[2] or "s"]


def percents(text: str) -> list[float]:
    """``10,50,100`` -> [10.0, 50.0, 100.0]."""
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a list of percents: {text!r} (e.g. 10,50,100)"
        ) from None


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rollout",
        help="canary a version step by step; promote it or roll back automatically",
        description="Run VERSION as a canary of the alias at each percent of --steps and as a "
        "shadow of production throughout; after each --interval read every replica's "
        "Prometheus /metrics and abort (all traffic back to production) when the canary's error "
        "rate, p99 latency ratio or top-1 agreement breaks a limit; after the last step promote "
        "it. Exit codes: 0 promoted, 6 rolled back, 1 error.",
    )
    add = parser.add_argument
    add("version", metavar="VERSION", help="number, alias or 'latest'")
    add("--metrics", nargs="+", required=True, metavar="URL",
        help="each replica's metrics endpoint, e.g. http://10.0.0.5:9100/metrics")  # fmt: skip
    add("--steps", type=percents, default=[10.0, 50.0, 100.0], metavar="P,P,...",
        help="canary percents, ascending (10,50,100)")  # fmt: skip
    add("--interval", type=duration, default=60.0, metavar="DURATION",
        help="time per step before its guards are checked (60s)")  # fmt: skip
    add("--max-error-rate", type=float, metavar="R", help="canary failures / requests (0.01)")
    add("--max-p99-ratio", type=float, metavar="X", help="canary p99 / production p99 (1.5)")
    add("--min-agreement", type=float, metavar="A", help="top-1 agreement with production (0.95)")
    add("--min-requests", type=int, metavar="N", help="canary requests a step needs (20)")
    add("--shadow-percent", type=float, default=100.0, metavar="P",
        help="share of production's requests the candidate also runs (100)")  # fmt: skip
    add(
        "--registry",
        type=Path,
        metavar="DIR",
        help="registry (default: $DIGITS_REGISTRY or ./models)",
    )
    add("--model", default="digits", metavar="NAME", help="model name (%(default)s)")
    add("--alias", default="production", help="alias to roll out to (%(default)s)")
    add("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from cli.main import CommandError
    from pipeline.canary import Guards, run_rollout
    from registry import Registry, RegistryError, default_root

    limits = {"max_error_rate": args.max_error_rate, "max_p99_ratio": args.max_p99_ratio,
              "min_agreement": args.min_agreement, "min_requests": args.min_requests}  # fmt: skip
    guards = replace(Guards(), **{k: v for k, v in limits.items() if v is not None})
    registry = Registry(args.registry or default_root())
    log = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    try:
        result = run_rollout(
            registry, args.model, args.version, args.metrics, steps=args.steps,
            interval_s=args.interval, guards=guards, shadow_percent=args.shadow_percent,
            alias=args.alias, log=log,
        )  # fmt: skip
    except RegistryError as err:
        raise CommandError(str(err)) from err
    except OSError as err:
        raise CommandError(f"rolled back: cannot read the metrics ({err})") from err
    if args.json:
        document = {"version": result.version, "production": result.production,
                    "outcome": result.outcome,
                    "steps": [{**vars(s), "ok": s.ok} for s in result.steps]}  # fmt: skip
        print(json.dumps(document, indent=2, default=str))
    elif result.promoted:
        print(f"{args.model}@{args.alias}: {result.production} -> {result.version} (promoted)")
    else:
        print(f"{args.model}@{args.alias}: stays {result.production}; canary {result.version} "
              "rolled back")  # fmt: skip
    return ExitCode.OK if result.promoted else ExitCode.ROLLED_BACK
