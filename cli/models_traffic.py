"""`digits models canary|shadow|history` and `rollback --to`: the rollout actions on an alias.

Each action is one registry change (registry/traffic.py) that servers pick up on their next poll;
every change is logged in the alias's history with the UTC time, the actor and the reason.
"""

from __future__ import annotations

import argparse
from typing import Any

_DEFAULT_ALIAS = "production"


def add_actions(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add canary, shadow and history to `digits models`; `rollback` gets --to from models.py."""
    who = argparse.ArgumentParser(add_help=False)
    who.add_argument("--alias", default=_DEFAULT_ALIAS, help="alias served (%(default)s)")
    who.add_argument("--reason", default="", help="why, for the history")
    canary = actions.add_parser(
        "canary",
        parents=[common, who],
        help="send a share of the alias's traffic to a version (or promote/abort it)",
        description="Start or re-weight a canary: replicas send PERCENT %% of the requests "
        "that pin no version to VERSION (sticky per routing key). --promote makes it the "
        "alias's version; --abort sends all traffic back.",
    )
    canary.add_argument("version", nargs="?", metavar="VERSION", help="number, alias or 'latest'")
    canary.add_argument(
        "--percent", type=float, metavar="P", help="share of requests, 0 < P <= 100"
    )
    ending = canary.add_mutually_exclusive_group()
    ending.add_argument(
        "--promote", action="store_true", help="make the canary the alias's version"
    )
    ending.add_argument("--abort", action="store_true", help="remove the canary")
    shadow = actions.add_parser(
        "shadow",
        parents=[common, who],
        help="also run a version on a share of requests, after answering (never served)",
    )
    shadow.add_argument("version", nargs="?", metavar="VERSION", help="number, alias or 'latest'")
    shadow.add_argument(
        "--percent", type=float, default=100.0, metavar="P", help="share of requests (%(default)s)"
    )
    shadow.add_argument("--stop", action="store_true", help="end the shadow")
    history = actions.add_parser(
        "history", parents=[common], help="every alias change: when (UTC), who, why"
    )
    history.add_argument("--alias", default=None, help="one alias (default: all)")


def add_rollback_options(rollback: argparse.ArgumentParser) -> None:
    rollback.add_argument(
        "--to",
        metavar="TIME",
        help="ISO 8601 time (UTC if no offset): go back to the version the alias held then",
    )
    rollback.add_argument("--reason", default="", help="why, for the history")


def canary(registry: Any, name: str, args: argparse.Namespace) -> dict[str, Any]:
    from registry import traffic

    who = {"alias": args.alias, "reason": args.reason}
    if args.promote or args.abort:
        if args.version is not None or args.percent is not None:
            raise ValueError("--promote/--abort take no VERSION or --percent")
        end = traffic.promote_canary if args.promote else traffic.abort_canary
        return _state(name, args.alias, end(registry, name, **who))
    if args.version is None or args.percent is None:
        raise ValueError("give VERSION and --percent P, or --promote, or --abort")
    return _state(name, args.alias, traffic.set_canary(registry, name, args.version,
                                                       args.percent, **who))  # fmt: skip


def shadow(registry: Any, name: str, args: argparse.Namespace) -> dict[str, Any]:
    from registry import traffic

    who = {"alias": args.alias, "reason": args.reason}
    if args.stop:
        if args.version is not None:
            raise ValueError("--stop takes no VERSION")
        return _state(name, args.alias, traffic.stop_shadow(registry, name, **who))
    if args.version is None:
        raise ValueError("give VERSION (and optionally --percent P), or --stop")
    state = traffic.set_shadow(registry, name, args.version, args.percent, **who)
    return _state(name, args.alias, state)


def _state(name: str, alias: str, state: Any) -> dict[str, Any]:
    parts = [f"{name}@{alias}: version {state.version}"]
    document: dict[str, Any] = {"alias": alias, "version": state.version}
    for role in ("canary", "shadow"):
        split = getattr(state, role)
        document[role] = None if split is None else {"version": split.version,
                                                    "percent": split.percent}  # fmt: skip
        if split is not None:
            parts.append(f"{role} {split.version} at {split.percent:g}%")
    return {"text": ", ".join(parts), "json": document}


def rollback_to(registry: Any, name: str, args: argparse.Namespace) -> dict[str, Any]:
    from registry import traffic

    when = traffic.parse_time(args.to)
    previous, version = traffic.rollback_to(
        registry, name, when, alias=args.alias, reason=args.reason
    )
    text = f"{name}@{args.alias}: {previous} -> {version} (as at {when.isoformat()})"
    return {"text": text, "json": {"alias": args.alias, "previous": previous,
                                   "version": version, "at": when.isoformat()}}  # fmt: skip


def history(registry: Any, name: str, args: argparse.Namespace) -> dict[str, Any]:
    from registry import NotFoundError

    records = registry.alias_records(name)
    if args.alias is not None:
        if args.alias not in records:
            raise NotFoundError(f"model {name!r} has no alias {args.alias!r}")
        records = {args.alias: records[args.alias]}
    events = sorted(
        ({"alias": alias, **entry} for alias, record in records.items()
         for entry in record.get("events", [])),
        key=lambda entry: entry["time"],
    )  # fmt: skip
    rows = [[e["time"], e["alias"], e.get("event", "-"), str(e.get("version", "-")),
             _detail(e), e.get("actor", "-"), e.get("reason") or "-"] for e in events]  # fmt: skip
    from cli.table import format_table

    headers = ["TIME (UTC)", "ALIAS", "EVENT", "VERSION", "DETAIL", "ACTOR", "REASON"]
    text = format_table(headers, rows, right_aligned={3}) if rows else "no alias changes recorded"
    return {"text": text, "json": {"model": name, "events": events}}


def _detail(entry: dict[str, Any]) -> str:
    """The part of an event beyond the alias's version: what moved, from where."""
    for role in ("canary", "shadow"):
        split = entry.get(role)
        if split:
            return f"{role} {split['version']} at {split['percent']:g}%"
    if entry.get("canary_version") is not None:
        return f"canary {entry['canary_version']} removed"
    if entry.get("shadow_version") is not None:
        return f"shadow {entry['shadow_version']} removed"
    if "previous" in entry:
        return f"from {entry['previous'] if entry['previous'] is not None else '(unset)'}"
    return "-"
