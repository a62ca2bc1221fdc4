"""Prediction errors of the serving core: each names a problem the caller should hear about.

Transport-free: every wire edge maps them to its own status codes (service/rpc/calls.py for
gRPC), so the same failure reads the same way on every protocol.
"""

from __future__ import annotations

__all__ = [
    "Cancelled",
    "DeadlineExceeded",
    "InvalidInput",
    "ModelNotReady",
    "ModelUnusable",
    "NotFound",
    "Overloaded",
    "PredictError",
    "without_location",
]


def without_location(message: str, location: str) -> str:
    """``message`` with the registry's root (a server path or bucket) taken out, for the wire.

    "model 'digits' has no version 9 in /srv/models (versions: 1, 2)" becomes "model 'digits'
    has no version 9 (versions: 1, 2)"; a version's location "/srv/models/digits/2" becomes
    "digits/2". The server log keeps the full message.
    """
    if not location:
        return message
    message = message.replace(f" in {location}", "").replace(f"{location}/", "")
    return message.replace(location, "the registry")


class PredictError(Exception):
    """A failure the caller should hear about, with a message safe to send over the wire.

    `request_id` names the request that failed when it differs from the call's (one message of
    a stream that carries its own id); None: the call's.
    """

    request_id: str | None = None


class InvalidInput(PredictError):
    """The request itself is wrong (shape, dtype, byte length, values, limits)."""


class ModelNotReady(PredictError):
    """No model is loaded yet, or the server is shutting down."""


class NotFound(PredictError):
    """The requested model version or alias does not exist."""


class ModelUnusable(PredictError):
    """The requested version exists but failed verification or could not be loaded."""


class Overloaded(PredictError):
    """The server refuses work it cannot queue."""


class DeadlineExceeded(PredictError):
    """The caller's deadline passed before the answer was ready."""


class Cancelled(PredictError):
    """The caller cancelled before the answer was computed (no forward pass is spent on it)."""
