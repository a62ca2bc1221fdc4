"""The client SDK: `DigitsClient` for the digits.v1 service, its result types, image preparation.

Importing it never pulls in the server or the Open Inference Protocol stubs (which clash with
tritonclient's in one process).
"""

from service.client.client import DigitsClient, encode_images, tls_credentials
from service.client.types import Feedback, ModelInfo, Prediction, ServiceError

__all__ = [
    "DigitsClient",
    "Feedback",
    "ModelInfo",
    "Prediction",
    "ServiceError",
    "encode_images",
    "tls_credentials",
]
