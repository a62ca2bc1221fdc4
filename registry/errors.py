"""Registry errors and the validation of model names, aliases and file names."""

from __future__ import annotations

import re

# Conservative on purpose: a name becomes a directory or file name, so no '/', no leading dot,
# no upper case (case-insensitive file systems), and short enough for any file system.
_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_FILE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

LATEST = "latest"
RESERVED_ALIASES = frozenset({LATEST})


class RegistryError(Exception):
    """Base class of every error raised by the model registry."""


class NotFoundError(RegistryError, LookupError):
    """An unknown model, version or alias."""


class IntegrityError(RegistryError):
    """A published file is missing, altered or does not match its manifest."""


class InvalidNameError(RegistryError, ValueError):
    """A model name, alias or file name outside the allowed character set."""


class ConflictError(RegistryError):
    """A conditional alias move found the alias somewhere else than the caller expected."""


class StoreUnavailableError(RegistryError):
    """The object store cannot be used: unreachable, wrong credentials or a missing bucket."""


class StoreConfigurationError(StoreUnavailableError):
    """The object store refuses this configuration (missing or wrong credentials, no such
    bucket): retrying does not help, the message names the variable or flag to fix."""


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise InvalidNameError."""
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InvalidNameError(
            f"invalid model name {name!r}: use 1-64 characters of a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return name


def validate_alias(alias: str) -> str:
    """Return ``alias`` if it is a valid alias name (not a number, not 'latest')."""
    if not isinstance(alias, str) or not _NAME_PATTERN.fullmatch(alias) or ".." in alias:
        raise InvalidNameError(
            f"invalid alias {alias!r}: use 1-64 characters of a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    if alias.isdigit():
        raise InvalidNameError(f"invalid alias {alias!r}: an alias cannot be a version number")
    if alias in RESERVED_ALIASES:
        raise InvalidNameError(f"invalid alias {alias!r}: {alias!r} is reserved (highest version)")
    return alias


def validate_file_name(file_name: str) -> str:
    """Return ``file_name`` if it is a plain file name that can be stored in a version."""
    if not isinstance(file_name, str) or not _FILE_PATTERN.fullmatch(file_name):
        raise InvalidNameError(
            f"invalid file name {file_name!r}: use 1-128 characters of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit, no directories"
        )
    return file_name


def is_valid_model_name(text: str) -> bool:
    try:
        validate_model_name(text)
    except InvalidNameError:
        return False
    return True


def describe_versions(versions: list[int]) -> str:
    """'1, 2, 3' or '1-42' for error messages."""
    if not versions:
        return "none"
    return ", ".join(map(str, versions)) if len(versions) <= 8 else f"{versions[0]}-{versions[-1]}"
