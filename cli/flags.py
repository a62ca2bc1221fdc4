"""Command-line flags generated from a settings model: each setting is declared once.

A pydantic field (its type, default, bounds and docstring) is the single source of a flag: the
flag's name is the field's (``poll_interval_s`` -> ``--poll-interval``: a trailing ``_s``, the
unit, goes in the help; ``enable_v2`` -> ``--v2``), its type, choices and help come from the
annotation and the docstring, and the default shown is the field's own. Flags default to
``None`` so that a flag left out keeps the environment variable or the field's default.
"""

from __future__ import annotations

import argparse
import functools
import operator
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

__all__ = ["add_flags", "describe_validation_error", "flag_name", "overrides"]


def flag_name(field: str) -> str:
    """``poll_interval_s`` -> ``--poll-interval``; ``enable_v2`` -> ``--v2``."""
    name = field.removeprefix("enable_")
    name = name.removesuffix("_s") if name.endswith("_s") else name
    return "--" + name.replace("_", "-")


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    model: type[BaseModel],
    fields: Iterable[str],
    *,
    names: Mapping[str, str] | None = None,
) -> None:
    """Add one flag per field of ``model`` to ``parser``; ``names`` overrides a flag's name.

    Raises TypeError for a field type that has no command-line form (e.g. a dict).
    """
    for field in fields:
        info = model.model_fields[field]
        flag = (names or {}).get(field) or flag_name(field)
        kind = _unwrap_optional(info.annotation)
        kwargs: dict[str, Any] = {"dest": field, "default": None, "help": _help(field, info)}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is typing.Literal:
            kwargs["choices"] = typing.get_args(kind)
        elif typing.get_origin(kind) is tuple and typing.get_args(kind)[0] is str:
            kwargs.update(action="append", metavar="TEXT")  # repeatable, in order
            kwargs["help"] += " Repeatable."
        elif typing.get_origin(kind) is tuple:
            kwargs["type"] = _comma_list(typing.get_args(kind)[0])
            kwargs["metavar"] = "A,B,..."
        elif kind in (int, float, str, Path):
            kwargs["type"] = kind
            kwargs["metavar"] = _metavar(field, kind)
        elif set(typing.get_args(kind)) == {Path, str}:  # a path or a URL (the field decides)
            kwargs["type"] = str
            kwargs["metavar"] = "PATH|URL"
        else:
            raise TypeError(f"setting {field} of type {kind} has no command-line form")
        parser.add_argument(flag, **kwargs)


def overrides(args: argparse.Namespace, fields: Iterable[str]) -> dict[str, Any]:
    """The settings the user gave on the command line (flags left out are not included)."""
    return {field: getattr(args, field) for field in fields if getattr(args, field) is not None}


def describe_validation_error(err: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """One line naming each bad setting by its flag: ``--epochs: Input should be >= 1 (got 0)``.

    ``names`` maps a field to the flag it was given under (default: `flag_name`); problems that
    concern the settings as a whole (a model validator) keep their own wording.
    """
    parts: list[str] = []
    for problem in err.errors():
        message = problem["msg"].removeprefix("Value error, ")
        if not problem["loc"]:
            parts.append(message)
            continue
        field = str(problem["loc"][0])
        flag = (names or {}).get(field) or flag_name(field)
        given = "" if "got " in message else f" (got {problem.get('input')!r})"
        parts.append(f"{flag}: {message}{given}")
    return "; ".join(parts)


def _unwrap_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
        return functools.reduce(operator.or_, rest)  # e.g. Path | str | None -> Path | str
    return annotation


def _help(field: str, info: FieldInfo) -> str:
    text = " ".join((info.description or field.replace("_", " ")).split())
    if info.default_factory is None and info.default is not None:
        default = info.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        if not isinstance(default, bool):
            text += f" (default: {shown})"
        else:
            text += f" (default: {'on' if default else 'off'})"
    return text.replace("%", "%%")  # argparse formats help with %


def _metavar(field: str, kind: type) -> str:
    if field.endswith("_s"):
        return "S"
    if kind is Path:
        return "PATH"
    return {int: "N", float: "X", str: "TEXT"}[kind]


def _comma_list(item: type) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(item(part) for part in text.split(","))
        except ValueError:
            name = getattr(item, "__name__", str(item))
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {name} values, got {text!r}"
            ) from None

    return parse
