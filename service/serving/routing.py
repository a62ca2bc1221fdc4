"""Routing: which loaded version answers a request that pins none (production or the canary).

One immutable `Routing` holds the production model, the canary and the shadow, so a request reads
one reference and sees a consistent set even while a poll swaps in a new one. A request with a
routing key always lands on the same side (a hash of the key, not a coin flip), and raising the
canary's percent only moves keys from production to the canary, never back.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.serving.served import ServedModel

__all__ = ["Routing", "in_sample"]

_BUCKETS = 10_000  # percent resolution of 0.01


def in_sample(key: str | None, percent: float, rng: random.Random) -> bool:
    """True for ``percent`` % of keys: by a stable hash of ``key``, or at random without one."""
    if percent >= 100.0:
        return True
    if percent <= 0.0:
        return False
    if key is None:
        return rng.random() * 100.0 < percent
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _BUCKETS < percent * (_BUCKETS / 100)


@dataclass(frozen=True)
class Routing:
    """The default (production) model, and the canary and shadow with their percents."""

    production: ServedModel
    canary: ServedModel | None = None
    canary_percent: float = 0.0
    shadow: ServedModel | None = None
    shadow_percent: float = 0.0

    def pick(self, key: str | None, rng: random.Random) -> ServedModel:
        """The model answering an unpinned request with routing key ``key`` (None: random)."""
        canary = self.canary
        if canary is not None and in_sample(key, self.canary_percent, rng):
            return canary
        return self.production

    def shadow_of(self, served: ServedModel, rng: random.Random) -> ServedModel | None:
        """The shadow to run after answering with ``served``, if this request is sampled."""
        shadow = self.shadow
        if shadow is None or shadow.version == served.version:
            return None  # a version compared with itself tells nothing
        return shadow if in_sample(None, self.shadow_percent, rng) else None
