"""Background threads of the server (model poller, shadow runs) yield the CPU to the answers."""

from __future__ import annotations

import contextlib
import os
import threading

__all__ = ["BACKGROUND_NICE", "lower_thread_priority"]

BACKGROUND_NICE = 10  # nice(1) increment: such a thread gets little CPU while answers need it


def lower_thread_priority(increment: int = BACKGROUND_NICE) -> None:
    """Nice the calling thread (Linux: the nice value is per thread, see setpriority(2) BUGS).

    Used on the model poller (load, hash, warm-up) and the shadow thread, so that on a busy
    machine the event loop answering requests wins the CPU. A no-op where unsupported.
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux / not permitted
        current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), current + increment)
