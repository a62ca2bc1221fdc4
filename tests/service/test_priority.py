"""Background threads are niced one by one; the rest of the process keeps its priority."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from service.serving.priority import BACKGROUND_NICE, lower_thread_priority


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux behaviour")
def test_only_the_calling_thread_is_niced() -> None:
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: list[int] = []

    def background() -> None:
        lower_thread_priority()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=background)
    thread.start()
    thread.join()
    assert seen == [min(before + BACKGROUND_NICE, 19)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
