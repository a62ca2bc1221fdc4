"""Open Inference Protocol parameters: honoured (the classification extension) or refused.

A parameter the server would silently ignore changes what the client gets without telling it
(`binary_data_size`, `shared_memory_region`: data that is not where the client put it), so every
parameter but `classification` on an output is answered with INVALID_ARGUMENT naming it.

Classification extension (KServe/Triton "classification", as tritonclient's
`InferRequestedOutput(name, class_count=k)` asks for it): the output holds, per row, the k best
classes as BYTES strings "score:index", best first, shape [N, k]; the score is printed like
C++ `std::to_string(float)` ("%f", six decimals), Triton's format. Source:
https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_classification.md
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import NDArray

from service.generated.inference import grpc_predict_v2_pb2 as pb
from service.serving.errors import InvalidInput

__all__ = ["CLASSIFICATION", "class_counts", "classification_bytes", "refuse_unsupported"]

CLASSIFICATION = "classification"
_CLASSIFIABLE = "probabilities"  # the one output with a score per class


# Request parameters a unary ModelInfer honours as it is. Triton's clients (perf_analyzer) send
# triton_enable_empty_final_response (bool): whether a decoupled-model stream ends with an empty
# response flagged final. A unary call has one response and it is the final one, so either value
# is met without doing anything (Triton ignores it for non-decoupled models too).
_UNARY_FLAGS = ("triton_enable_empty_final_response",)


def refuse_unsupported(request: pb.ModelInferRequest) -> None:
    """InvalidInput naming the parameters of the request, an input or an output that this
    server does not honour: all but `classification` on an output and the unary-call flags."""
    # Every request passes here: empty maps (the usual case) cost one truth test each.
    parameters = request.parameters
    if parameters:
        honoured = [
            name
            for name in _UNARY_FLAGS
            if name in parameters  # (indexing a protobuf map would insert the key)
            and parameters[name].WhichOneof("parameter_choice") == "bool_param"
        ]
        _refuse(parameters, "the request", allowed=honoured)
    for tensor in request.inputs:
        if tensor.parameters:
            _refuse(tensor.parameters, f"input '{tensor.name}'")
    for output in request.outputs:
        if output.parameters:
            _refuse(output.parameters, f"output '{output.name}'", allowed=(CLASSIFICATION,))


def _refuse(
    parameters: Mapping[str, pb.InferParameter], where: str, allowed: Iterable[str] = ()
) -> None:
    refused = sorted(name for name in parameters if name not in allowed)
    if refused:
        names = ", ".join(repr(name) for name in refused)
        raise InvalidInput(
            f"parameter{'s' if len(refused) > 1 else ''} {names} of {where} not supported by "
            f"this server (supported: '{CLASSIFICATION}' on output '{_CLASSIFIABLE}')"
        )


def class_counts(request: pb.ModelInferRequest, n_classes: int) -> dict[str, int]:
    """Requested output name -> k for outputs that ask for classification (1 <= k <= n_classes)."""
    counts: dict[str, int] = {}
    for output in request.outputs:
        if CLASSIFICATION not in output.parameters:
            continue
        if output.name != _CLASSIFIABLE:
            raise InvalidInput(
                f"classification is only available for output '{_CLASSIFIABLE}', "
                f"not '{output.name}'"
            )
        parameter = output.parameters[CLASSIFICATION]
        kind = parameter.WhichOneof("parameter_choice")
        if kind not in ("int64_param", "uint64_param"):
            raise InvalidInput(f"classification must be an integer class count, got {kind}")
        k = int(getattr(parameter, kind))
        if not 1 <= k <= n_classes:
            raise InvalidInput(f"classification class count must be 1..{n_classes}, got {k}")
        counts[output.name] = k
    return counts


def classification_bytes(probabilities: NDArray[np.float32], k: int) -> bytes:
    """The [N, k] BYTES tensor "score:index" of each row's k best classes, as raw contents
    (each element a little-endian uint32 length, then its bytes)."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]  # (n, k)
    scores = np.take_along_axis(probabilities, order, axis=1)
    parts = []
    for score, index in zip(scores.ravel().tolist(), order.ravel().tolist(), strict=True):
        text = f"{score:f}:{index}".encode()
        parts.append(struct.pack("<I", len(text)) + text)
    return b"".join(parts)
