"""Training pipeline: verified MNIST download, plain training steps, a gate and a Prefect flow.

The Prefect flow lives in ``pipeline.flows`` and is not imported here, so the plain parts stay
usable (and fast to import) without loading Prefect. The names below are re-exported lazily
(PEP 562): `digits` builds its train flags from ``pipeline.settings`` on every start, and that
must not pay for the download and gate modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.download import MNIST_FILES, DownloadError, MnistFile, ensure_mnist
    from pipeline.gate import Champion, GateDecision, GateRejected, decide
    from pipeline.mirrors import DEFAULT_MIRRORS, resolve_mirrors
    from pipeline.settings import TrainSettings

_HOMES = {
    "DEFAULT_MIRRORS": "pipeline.mirrors",
    "MNIST_FILES": "pipeline.download",
    "Champion": "pipeline.gate",
    "DownloadError": "pipeline.download",
    "GateDecision": "pipeline.gate",
    "GateRejected": "pipeline.gate",
    "MnistFile": "pipeline.download",
    "TrainSettings": "pipeline.settings",
    "decide": "pipeline.gate",
    "ensure_mnist": "pipeline.download",
    "resolve_mirrors": "pipeline.mirrors",
}
__all__ = [
    "DEFAULT_MIRRORS",
    "MNIST_FILES",
    "Champion",
    "DownloadError",
    "GateDecision",
    "GateRejected",
    "MnistFile",
    "TrainSettings",
    "decide",
    "ensure_mnist",
    "resolve_mirrors",
]


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
