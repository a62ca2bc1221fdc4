"""`digits models`: list, inspect, promote, roll back and garbage-collect registry versions.

The rollout actions (canary, shadow, history, rollback --to) live in cli/models_traffic.py.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli import models_traffic
from cli.exits import ExitCode
from cli.locations import registry_location
from cli.table import format_table

_DEFAULT_MODEL = "digits"  # registry.DEFAULT_MODEL_NAME (not imported: stdlib only here)
_DEFAULT_ALIAS = "production"
_INTEGRITY_EXIT = ExitCode.INTEGRITY


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # The common options work before or after the action (`digits models --json list` or
    # `digits models list --json`): SUPPRESS leaves them unset unless given, so neither level
    # overwrites the other; defaults are filled in by `run`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--registry",
        type=registry_location,
        metavar="DIR|URL",
        default=argparse.SUPPRESS,
        help="registry directory or s3://bucket/prefix (default: $DIGITS_REGISTRY or ./models)",
    )
    common.add_argument(
        "--model",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help=f"model name (default: {_DEFAULT_MODEL})",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    parser = subparsers.add_parser(
        "models",
        parents=[common],
        help="list, show, promote, roll back, canary, shadow and garbage-collect model versions",
        description="Manage the versions of a model in the registry. Exit codes: 0 ok, "
        f"1 error (unknown model/version/alias, bad name), {int(ExitCode.USAGE)} usage, "
        f"{int(ExitCode.INTEGRITY)} integrity check failed (also refusing to promote or roll back "
        "to a corrupt version).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[common], help="versions, metrics and aliases")
    show = actions.add_parser(
        "show", parents=[common], help="one version's manifest, after verifying its checksums"
    )
    show.add_argument(
        "version",
        nargs="?",
        metavar="VERSION",
        help="number, alias or 'latest' (default: production if set, else latest)",
    )
    promote = actions.add_parser("promote", parents=[common], help="point an alias at a version")
    promote.add_argument("version", metavar="VERSION", help="number, alias or 'latest'")
    promote.add_argument("--alias", default=_DEFAULT_ALIAS, help="alias to move (%(default)s)")
    promote.add_argument("--reason", default="", help="why, for the history")
    rollback = actions.add_parser(
        "rollback", parents=[common], help="move an alias back to its previous version"
    )
    rollback.add_argument("--alias", default=_DEFAULT_ALIAS, help="alias to move (%(default)s)")
    models_traffic.add_rollback_options(rollback)
    models_traffic.add_actions(actions, common)
    gc = actions.add_parser(
        "gc", parents=[common], help="delete old versions (never an aliased one)"
    )
    gc.add_argument(
        "--keep", type=_at_least_one, required=True, metavar="N", help="newest versions to keep"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cli.main import CommandError
    from registry import IntegrityError, Registry, RegistryError, default_root

    name = getattr(args, "model", None) or _DEFAULT_MODEL
    as_json = getattr(args, "json", False)
    action = _ACTIONS[args.action]
    try:
        registry = Registry(getattr(args, "registry", None) or default_root())
        result = action(registry, name, args)
    except IntegrityError as err:
        raise CommandError(f"integrity check failed: {err}", _INTEGRITY_EXIT) from err
    except RegistryError as err:
        raise CommandError(str(err)) from err
    if as_json:
        print(json.dumps(result["json"], indent=2, sort_keys=True))
    else:
        print(result["text"])
    return 0


def _at_least_one(text: str) -> int:
    """argparse type of --keep: an integer >= 1 (else a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


_HEADERS = ["VERSION", "CREATED", "ACCURACY", "LAYERS", "PARENT", "ALIASES"]


def _list(registry: Any, name: str, args: argparse.Namespace) -> dict[str, Any]:
    if not registry.list_models():  # a fresh registry: nothing published yet is not an error
        text = format_table(_HEADERS, [], right_aligned={0, 2, 4})
        text += f"\n(no versions of {name!r} yet in {registry.location})"
        document = {"model": name, "registry": registry.location, "aliases": {}}
        return {"text": text, "json": {**document, "dangling_aliases": {}, "versions": []}}
    versions = registry.list_versions(name)
    aliases = registry.aliases(name)
    by_version: dict[int, list[str]] = {}
    for alias, version in sorted(aliases.items()):
        by_version.setdefault(version, []).append(alias)
    rows = []
    entries = []
    for mv in versions:
        metrics = mv.manifest.get("metrics") or {}
        accuracy = metrics.get("accuracy") if isinstance(metrics, dict) else None
        tags = by_version.get(mv.version, [])
        rows.append(
            [
                str(mv.version),
                str(mv.manifest.get("created_at", "-")),
                f"{accuracy:.4f}" if isinstance(accuracy, int | float) else "-",
                _sizes(mv.manifest.get("layer_sizes")),
                str(mv.manifest.get("parent_version") or "-"),
                ",".join(tags) or "-",
            ]
        )
        entries.append(
            {
                "version": mv.version,
                "created_at": mv.manifest.get("created_at"),
                "accuracy": accuracy,
                "layer_sizes": mv.manifest.get("layer_sizes"),
                "parent_version": mv.manifest.get("parent_version"),
                "aliases": tags,
                "path": mv.location,
            }
        )
    dangling = registry.dangling_aliases(name)
    text = format_table(_HEADERS, rows, right_aligned={0, 2, 4}) + _dangling_note(dangling)
    document = {"model": name, "registry": registry.location, "aliases": aliases}
    return {"text": text, "json": {**document, "dangling_aliases": dangling, "versions": entries}}


def _dangling_note(dangling: dict[str, int]) -> str:
    """Lines under a table for aliases whose version was removed behind the registry's back."""
    return "".join(
        f"\n{alias} -> {version}: DANGLING, version {version} no longer exists; recover with "
        f"`digits models rollback --alias {alias}` or `digits models promote VERSION "
        f"--alias {alias}`"
        for alias, version in sorted(dangling.items())
    )


def _show(registry: Any, name: str, args: argparse.Namespace) -> dict[str, Any]:
    mv = registry.verify(name, args.version)
    tags = sorted(alias for alias, v in registry.aliases(name).items() if v == mv.version)
    dangling = registry.dangling_aliases(name)
    manifest = mv.manifest
    lines = [
        ("model", name),
        ("version", str(mv.version)),
        ("aliases", ", ".join(tags) or "-"),
        *(
            [("dangling", ", ".join(f"{a} -> {v} (deleted)" for a, v in sorted(dangling.items())))]
            if dangling
            else []
        ),
        ("path", mv.location),
        ("integrity", f"ok ({_plural(len(manifest['files']), 'file')} verified)"),
    ]
    skip = {"name", "version", "files", "tensors"}
    lines += [(key, _brief(manifest[key])) for key in sorted(manifest) if key not in skip]
    width = max(len(key) for key, _ in lines)
    text = "\n".join(f"{key:<{width}}  {value}" for key, value in lines)
    files = [[f, str(e["size"]), e["sha256"][:16]] for f, e in sorted(manifest["files"].items())]
    text += "\n\n" + format_table(["FILE", "BYTES", "SHA256"], files, right_aligned={1})
    document = {
        "name": name,
        "version": mv.version,
        "aliases": tags,
        "dangling_aliases": dangling,
        "path": mv.location,
        "integrity": "ok",
        "manifest": manifest,
    }
    return {"text": text, "json": document}


def _promote(registry: Any, name: str, args: argparse.Namespace) -> dict[str, Any]:
    previous = registry.set_alias(name, args.alias, args.version, reason=args.reason)
    return _moved(name, args.alias, previous, registry.resolve(name, args.alias))


def _rollback(registry: Any, name: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.to is not None:
        return models_traffic.rollback_to(registry, name, args)
    # The alias's recorded target, not resolve(): a dangling alias must still be movable.
    previous = registry.aliases(name).get(args.alias)
    version = registry.rollback(name, args.alias, reason=args.reason)
    return _moved(name, args.alias, previous, version)


def _moved(name: str, alias: str, previous: int | None, version: int) -> dict[str, Any]:
    before = "(unset)" if previous is None else str(previous)
    text = f"{name}@{alias}: {before} -> {version}"
    return {"text": text, "json": {"alias": alias, "previous": previous, "version": version}}


def _gc(registry: Any, name: str, args: argparse.Namespace) -> dict[str, Any]:
    deleted = registry.gc(name, args.keep)
    kept = [mv.version for mv in registry.list_versions(name)]
    listed = ", ".join(map(str, deleted)) if deleted else "nothing"
    text = f"deleted: {listed}; kept: {', '.join(map(str, kept))}"
    return {"text": text, "json": {"deleted": deleted, "kept": kept}}


_ACTIONS = {
    "list": _list,
    "show": _show,
    "promote": _promote,
    "rollback": _rollback,
    "gc": _gc,
    "canary": models_traffic.canary,
    "shadow": models_traffic.shadow,
    "history": models_traffic.history,
}


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _sizes(value: Any) -> str:
    if isinstance(value, list) and value:
        return "-".join(map(str, value))
    return "-"


def _brief(value: Any, nested: bool = False) -> str:
    """One line per manifest value; big tables (confusion matrix) are left to --json."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        text = " ".join(f"{k}={_brief(v, nested=True)}" for k, v in sorted(value.items()))
        return f"{{{text}}}" if nested else text or "-"
    if isinstance(value, list):
        if value and all(isinstance(v, list) for v in value):
            return f"({len(value)}x{len(value[0])} table, see --json)"
        if len(value) > 12 or any(isinstance(v, dict) for v in value):
            return f"({len(value)} entries, see --json)"
        return "[" + ", ".join(_brief(v) for v in value) + "]"
    return "-" if value is None else str(value)
