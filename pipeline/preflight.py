"""Preflight: check a training run's destinations before anything is downloaded or trained.

A registry path that is a file, a read-only directory or a data directory that cannot be
created used to fail only at publish time, after the download and the whole training. These
checks are cheap (a few stat/access calls, no Prefect, no network) and name the flag to fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.settings import TrainSettings

__all__ = ["PreflightError", "check_destinations", "check_directory"]


class PreflightError(ValueError):
    """A destination of the run is unusable; the message names the flag and the problem."""


def check_destinations(settings: TrainSettings) -> None:
    """Raise PreflightError unless the registry and the data directory are usable.

    Registry: a writable directory, or one that can be created (its nearest existing parent is
    a writable directory); the model's directory inside it, when present, a directory too. An
    object-storage registry (``s3://``) is not checked here: `digits train` lists it right
    after (unreachable endpoint, credentials, bucket: one line). Data directory: the same rule
    (with ``--offline`` it is only read: readable when it exists; a missing one is left to the
    download step, whose message lists the missing files).
    """
    from pipeline.download import default_cache_dir

    _check_registry(settings)
    data_dir = settings.data_dir or default_cache_dir()
    flag = "--data-dir" if settings.data_dir else "--data-dir (default: the user cache)"
    if settings.offline:
        check_directory(data_dir, flag, "the dataset cache", writable=False)
    else:
        check_directory(data_dir, flag, "the dataset cache")


def _check_registry(settings: TrainSettings) -> None:
    if not isinstance(settings.registry_dir, Path):
        return  # object storage (s3://...): `digits train` lists it next, which checks the store
    what = "the model registry"
    check_directory(settings.registry_dir, "--registry", what)
    model_dir = settings.registry_dir / settings.model_name
    if model_dir.exists() and not model_dir.is_dir():
        raise PreflightError(f"--registry {settings.registry_dir}: {model_dir} is not a directory")


def check_directory(path: Path, flag: str, what: str, *, writable: bool = True) -> None:
    """Raise PreflightError unless `path` is (or can be created as) a usable directory.

    `flag` and `what` name the option and the role in the message, e.g.
    "--registry /etc/passwd: not a directory (the model registry must be a directory)".
    """
    path = Path(path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise PreflightError(f"{flag} {path}: not a directory ({what} must be a directory)")
        mode = os.R_OK | os.X_OK | (os.W_OK if writable else 0)
        if not os.access(path, mode):
            access = "writable" if writable else "readable"
            raise PreflightError(f"{flag} {path}: not {access} (permission or read-only mount)")
        return
    if not writable:
        return  # only read (--offline): the download step names the files it misses
    parent = _nearest_existing(path)
    if not parent.is_dir():
        raise PreflightError(
            f"{flag} {path}: cannot be created, {parent} is not a directory ({what})"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PreflightError(f"{flag} {path}: cannot be created in {parent} (not writable)")


def _nearest_existing(path: Path) -> Path:
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")
