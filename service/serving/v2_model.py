"""The digits model as the Open Inference Protocol (KServe V2) describes it, for every binding.

Wire-independent: the gRPC binding (service/rpc/v2_converters.py) and the REST binding
(service/http/v2_json.py) read tensor names, datatypes, version references and the requested
outputs here, so both answer the same request the same way. Protocol: the KServe V2 inference
protocol (https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.config import N_CLASSES, N_PIXELS
from service.serving.core import ServingCore
from service.serving.errors import InvalidInput, NotFound

__all__ = [
    "INPUT_DATATYPES",
    "INPUT_NAME",
    "LABEL_OUTPUT",
    "OUTPUT_NAMES",
    "PLATFORM",
    "PROBABILITIES_OUTPUT",
    "SERVER_NAME",
    "TENSOR_METADATA",
    "check_input",
    "check_model_name",
    "check_outputs",
    "model_ref",
    "model_versions",
]

SERVER_NAME = "digits"
PLATFORM = "numpy"
INPUT_NAME = "images"
PROBABILITIES_OUTPUT = "probabilities"
LABEL_OUTPUT = "label"
OUTPUT_NAMES = (PROBABILITIES_OUTPUT, LABEL_OUTPUT)
# V2 datatype -> dtype name of service.serving.validation.DTYPES.
INPUT_DATATYPES = {"UINT8": "uint8", "FP32": "float32"}
# (name, datatype, shape) of the inputs and of the outputs; -1 is the variable batch dimension.
# The metadata format allows one datatype per tensor, so `images` is advertised as UINT8 (what
# load generators should send: any byte is a valid pixel); FP32 in [0, 1] is accepted as well.
TENSOR_METADATA: tuple[tuple[tuple[str, str, tuple[int, ...]], ...], ...] = (
    ((INPUT_NAME, "UINT8", (-1, N_PIXELS)),),
    ((PROBABILITIES_OUTPUT, "FP32", (-1, N_CLASSES)), (LABEL_OUTPUT, "INT64", (-1,))),
)


def check_input(names: Sequence[str], datatype: str) -> str:
    """The dtype name for the request's one input; InvalidInput unless it is `images` in a
    supported datatype."""
    if len(names) != 1 or names[0] != INPUT_NAME:
        raise InvalidInput(f"expected exactly one input named '{INPUT_NAME}', got {list(names)}")
    if datatype not in INPUT_DATATYPES:
        raise InvalidInput(f"input '{INPUT_NAME}' datatype must be UINT8 or FP32, got {datatype!r}")
    return INPUT_DATATYPES[datatype]


def check_outputs(names: Sequence[str]) -> list[str]:
    """The output names to return, in request order; all outputs when none is requested."""
    if not names:
        return list(OUTPUT_NAMES)
    unknown = [name for name in names if name not in OUTPUT_NAMES]
    if unknown:
        raise InvalidInput(f"unknown output {unknown[0]!r}; this model has {list(OUTPUT_NAMES)}")
    if len(set(names)) != len(names):
        raise InvalidInput(f"output requested more than once: {list(names)}")
    return list(names)


def check_model_name(core: ServingCore, name: str) -> None:
    """NotFound unless `name` is the model this server serves."""
    if name != core.models.name:
        raise NotFound(f"unknown model {name!r}; this server serves {core.models.name!r}")


def model_ref(version: str) -> tuple[int | None, str | None]:
    """(version, alias) from a V2 version string: "" = default, "3" = version 3, else an alias."""
    if not version:
        return None, None
    if version.isdecimal():
        return int(version), None
    return None, version


async def model_versions(core: ServingCore, version: str) -> list[str]:
    """The versions of the served model, as strings, for its metadata.

    NotFound when `version` (a number or an alias) is not one of them; the core's registry errors
    (NotFound, ModelUnusable) otherwise. The registry is read in a worker thread.
    """
    listed, _ = await core.list_versions()
    versions = [str(info.version) for info in listed]
    number, alias = model_ref(version)
    if alias is not None:
        number = (await core.describe(alias=alias)).version
    if number is not None and str(number) not in versions:
        raise NotFound(f"model {core.models.name!r} has no version {number}")
    return versions
