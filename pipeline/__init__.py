"""Training pipeline: verified MNIST download, plain training steps, a gate and a Prefect flow.

The Prefect flow lives in ``pipeline.flows`` and is not imported here, so the plain parts stay
usable (and fast to import) without loading Prefect.
"""

from pipeline.download import MNIST_FILES, DownloadError, MnistFile, ensure_mnist
from pipeline.gate import Champion, GateDecision, GateRejected, decide
from pipeline.mirrors import DEFAULT_MIRRORS, resolve_mirrors
from pipeline.settings import TrainSettings

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
