"""The versioned model store: numbered, immutable, checksummed model versions with aliases.

Only this package touches the stored models (safetensors files, manifests, alias files); `core`
stays pure NumPy and `pipeline`, `service` and `cli` go through `Registry`.
"""

from registry.registry import (
    DEFAULT_ALIAS,
    DEFAULT_MODEL_NAME,
    DEFAULT_ROOT,
    LATEST,
    REGISTRY_ENV_VAR,
    IntegrityError,
    InvalidNameError,
    LoadedModel,
    ModelVersion,
    NotFoundError,
    Registry,
    RegistryError,
    default_root,
    validate_model_name,
)

__all__ = [
    "DEFAULT_ALIAS",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_ROOT",
    "LATEST",
    "REGISTRY_ENV_VAR",
    "IntegrityError",
    "InvalidNameError",
    "LoadedModel",
    "ModelVersion",
    "NotFoundError",
    "Registry",
    "RegistryError",
    "default_root",
    "validate_model_name",
]
