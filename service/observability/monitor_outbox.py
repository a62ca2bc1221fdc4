"""Outbox: what a server's MonitorProcess has for its monitor process, until the pipe takes it."""

from __future__ import annotations

import os
import select
import time
from collections import deque
from typing import Any

__all__ = ["Outbox"]


class Outbox:
    """What waits for the pipe: the parts of the records since the last send, and earlier sends
    (each joined once, when sealed) the pipe has not taken yet.

    Not one growing bytearray: appending each record to one made it reallocate and copy itself
    ~40 times per 64 KiB sent, which cost the event loop more than packing the records did.
    """

    def __init__(self) -> None:
        self.parts: list[Any] = []  # bytes and the answers' own array buffers (memoryviews)
        self.size = 0  # bytes in parts
        self.chunks: deque[memoryview] = deque()  # sealed, not yet written
        self.sealed = 0  # bytes in chunks

    def add(self, part: bytes | memoryview) -> None:
        self.parts.append(part)
        self.size += memoryview(part).nbytes  # not len(): an array's view counts its rows

    def extend(self, parts: list[Any], size: int) -> None:
        """Add a packed record's parts, `size` bytes in all (monitor_answers gives both)."""
        self.parts += parts
        self.size += size

    def waiting(self) -> int:
        return self.size + self.sealed

    def seal(self) -> None:
        """Join the parts into one chunk (copying the arrays' bytes: they may be reused)."""
        if self.parts:
            self.chunks.append(memoryview(b"".join(self.parts)))
            self.sealed += self.size
            self.parts, self.size = [], 0

    def write_some(self, pipe: int) -> None:
        """Write what a non-blocking `pipe` takes now. Raises OSError (EPIPE) when its reader
        is gone."""
        self.seal()
        chunks = self.chunks
        while chunks:
            try:
                written = os.write(pipe, chunks[0])
            except BlockingIOError:
                return  # the pipe is full: the child is behind
            self.sealed -= written
            if written < len(chunks[0]):
                chunks[0] = chunks[0][written:]
                return
            chunks.popleft()

    def deliver(self, pipe: int, deadline: float) -> bool:
        """Write everything before `deadline` (time.monotonic()); False if that was not possible
        (the reader is stopped, stuck or gone)."""
        self.seal()
        chunks = self.chunks
        while chunks:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [pipe], [], left)[1]:
                return False
            try:
                written = os.write(pipe, chunks[0])
            except BlockingIOError:
                continue
            except OSError:  # the reader is gone
                return False
            self.sealed -= written
            if written < len(chunks[0]):
                chunks[0] = chunks[0][written:]
            else:
                chunks.popleft()
        return True
