"""The digits model as the Open Inference Protocol (KServe V2) describes it, for every binding.

Wire-independent: the gRPC binding (service/rpc/v2_converters.py) and the REST binding
(service/http/v2_json.py) read tensor names, datatypes, version references and the requested
outputs here, so both answer the same request the same way. Protocol: the KServe V2 inference
protocol (https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata

from registry import NotFoundError, RegistryError
from service.serving.core import ServingCore
from service.serving.errors import InvalidInput, ModelUnusable, NotFound

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
    "server_version",
]

SERVER_NAME = "digits"
PLATFORM = "numpy"
INPUT_NAME = "images"
PROBABILITIES_OUTPUT = "probabilities"
LABEL_OUTPUT = "label"
OUTPUT_NAMES = (PROBABILITIES_OUTPUT, LABEL_OUTPUT)
PIXELS = 784
CLASSES = 10
# V2 datatype -> dtype name of service.serving.validation.DTYPES.
INPUT_DATATYPES = {"UINT8": "uint8", "FP32": "float32"}
# (name, datatype, shape) of the inputs and of the outputs; -1 is the variable batch dimension.
# The metadata format allows one datatype per tensor, so `images` is advertised as UINT8 (what
# load generators should send: any byte is a valid pixel); FP32 in [0, 1] is accepted as well.
TENSOR_METADATA: tuple[tuple[tuple[str, str, tuple[int, ...]], ...], ...] = (
    ((INPUT_NAME, "UINT8", (-1, PIXELS)),),
    ((PROBABILITIES_OUTPUT, "FP32", (-1, CLASSES)), (LABEL_OUTPUT, "INT64", (-1,))),
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


def model_versions(core: ServingCore, version: str) -> list[str]:
    """The registry versions of the served model, as strings, for its metadata.

    NotFound when the registry has no such model or `version` (a number or an alias) is not one
    of them; ModelUnusable when the registry cannot be read. Reads the disk: call it off the loop.
    """
    models = core.models
    try:
        listed = models.registry.list_versions(models.name)
    except NotFoundError as err:
        raise NotFound(str(err)) from None
    except RegistryError as err:
        raise ModelUnusable(str(err)) from None
    versions = [str(mv.version) for mv in listed]
    number, alias = model_ref(version)
    if alias is not None:
        number = models.resolve_alias(alias)
    if number is not None and str(number) not in versions:
        raise NotFound(f"model {models.name!r} has no version {number}")
    return versions


def server_version() -> str:
    """The installed digits package version (server metadata)."""
    try:
        return metadata.version("digits")
    except metadata.PackageNotFoundError:  # running from a source tree that was not installed
        return "0+unknown"
