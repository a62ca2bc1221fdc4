"""Whether the registry's store answers: logged once per change, mirrored in a gauge.

An unreachable store is an outage to wait out, not an error per poll: the server keeps serving
the last verified model, says so once, and says so again when the store is back.
"""

from __future__ import annotations

import logging
from typing import Protocol

__all__ = ["StoreReachability"]

logger = logging.getLogger("service.serving.served")


class _Gauge(Protocol):
    def set(self, value: float) -> None: ...


class StoreReachability:
    """The store's last known state; `update` logs a change once and sets the gauge (1 or 0)."""

    def __init__(self, name: str, gauge: _Gauge | None) -> None:
        self.name = name
        self.reachable = True
        self._gauge = gauge

    def update(self, reachable: bool, serving: int | None, err: Exception | None = None) -> None:
        """``serving``: the version this server keeps answering with (None: none loaded yet)."""
        if reachable != self.reachable:
            if serving is not None:
                what = f"serving {self.name!r} version {serving}"
            else:
                what = f"no version of {self.name!r} loaded yet"
            if reachable:
                logger.info("registry reachable again; %s", what)
            elif serving is not None:
                logger.error("registry unusable; keeps %s until it is back: %s", what, err)
            else:
                logger.error("registry unusable; %s, waiting for it: %s", what, err)
        self.reachable = reachable
        if self._gauge is not None:
            self._gauge.set(1 if reachable else 0)
