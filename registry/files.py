"""File-system primitives of the registry: durable writes, atomic replace, hashing and locks."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 1 << 20
READ_ONLY_FILE = 0o444
READ_ONLY_DIR = 0o555


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (a created, renamed or removed child) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist), write ``data`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_new_file(source: Path, path: Path) -> None:
    """Copy ``source`` to the new file ``path`` and fsync it."""
    with open(source, "rb") as src, open(path, "xb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)
        dst.flush()
        os.fsync(dst.fileno())


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new content, never a mix."""
    temporary = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        write_new_file(temporary, data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an flock on ``path`` (created if missing); works across threads and processes.

    Every call opens its own file description, so two threads of one process exclude each
    other just like two processes do; the kernel drops the lock when a holder dies.
    """
    # Read-only is enough for flock, so users who may not write the lock file can still lock.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def lock_directory(path: Path) -> int:
    """Take an exclusive flock on a directory and return the descriptor that holds it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def is_directory_abandoned(path: Path) -> bool:
    """True when nobody holds the directory's flock (its owner finished or died)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def make_read_only(directory: Path) -> None:
    """Drop write permission from every file of ``directory`` and from the directory itself."""
    for child in directory.iterdir():
        child.chmod(READ_ONLY_FILE)
    directory.chmod(READ_ONLY_DIR)


def remove_tree(path: Path) -> None:
    """Delete a directory tree, including read-only published versions."""
    for directory, _subdirectories, _files in os.walk(path):
        # Deleting an entry needs write permission on its directory, not on the file.
        Path(directory).chmod(stat.S_IRWXU)
    shutil.rmtree(path)
