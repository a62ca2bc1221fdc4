"""Calls of the real tritonclient (gRPC or HTTP) recorded as plain data, in the child process.

Imports nothing of ours: tritonclient's protobuf definitions clash with digits' generated V2
stubs in one process, so the tritonclient tests drive it from a child and read this back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def attempt(call: Callable[[], Any]) -> dict[str, Any]:
    """Run one client call; record its value, or the status and message the client surfaced."""
    from tritonclient.utils import InferenceServerException

    try:
        return {"value": call()}
    except InferenceServerException as err:
        return {"status": str(err.status()), "message": err.message()}
