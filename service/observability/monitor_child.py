"""Starting the monitor process and reading its replies: the OS side of MonitorProcess.

`start_child` runs `python -m service.observability.monitor_worker CONFIG_JSON` with its stdin
a non-blocking pipe of 1 MiB (the records), its stdout the replies, a doorbell pipe (a byte
before each SYNC ends its nap) and a lower CPU priority, set before its imports.
`read_replies` collects the replies until it exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from service.observability import monitor_wire as wire

__all__ = ["Child", "lower_priority", "read_replies", "start_child"]

_PIPE_SIZE = 1 << 20  # Linux's default maximum (/proc/sys/fs/pipe-max-size)
_F_SETPIPE_SZ = 1031
_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the service package


@dataclass
class Child:
    """A running monitor process and the server's ends of its pipes."""

    process: subprocess.Popen[bytes]
    pipe: int  # its stdin, non-blocking: the records
    doorbell: int  # non-blocking: a byte wakes it from its nap
    replies: IO[bytes]  # its stdout: read_replies reads it


def start_child(config: dict[str, Any]) -> Child:
    """Start a monitor process with `config` (monitor_worker.main documents it; "doorbell" is
    added here). Raises OSError when no process can be started."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p
    )}  # fmt: skip
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"  # its NumPy work is element-wise: one core is what it may take
    bell_read, bell_write = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.observability.monitor_worker",
             json.dumps({**config, "doorbell": bell_read})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, pass_fds=(bell_read,),
        )  # fmt: skip
    except BaseException:
        os.close(bell_write)
        raise
    finally:
        os.close(bell_read)
    os.set_blocking(bell_write, False)
    lower_priority(process.pid, config.get("priority", "normal"))
    assert process.stdin is not None and process.stdout is not None
    pipe = os.dup(process.stdin.fileno())
    process.stdin.close()
    with contextlib.suppress(OSError):  # a bigger buffer rides out the child's pauses
        fcntl.fcntl(pipe, _F_SETPIPE_SZ, _PIPE_SIZE)
    os.set_blocking(pipe, False)
    return Child(process, pipe, bell_write, process.stdout)


def read_replies(stream: IO[bytes], on_reply: Callable[[int, bytes], None]) -> None:
    """Call on_reply(token, metrics text) for each reply to a SYNC until the child exits."""
    with stream:
        while head := stream.read(wire.REPLY.size):
            if len(head) < wire.REPLY.size:
                return
            token, length = wire.REPLY.unpack(head)
            on_reply(token, stream.read(length))


def lower_priority(pid: int, priority: str) -> None:
    """idle: SCHED_IDLE (nice 19 where the OS has none), low: nice 10, normal: unchanged.

    Set on the child by its parent right after it starts, before its imports (~0.2 s of CPU);
    its threads inherit it. Lowering the priority of one's own child needs no privilege. In the
    benchmark (bench/monitoring.py, same run) idle served more requests than nice 5, 10 or 19,
    with the monitor at the same CPU.
    """
    if priority == "idle":
        try:
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
            return
        except (AttributeError, OSError):
            priority = "lowest"
    steps = {"lowest": 19, "low": 10}.get(priority, 0)
    if steps:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0) + steps)
