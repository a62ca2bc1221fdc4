"""The versioned model store: numbered, immutable, checksummed model versions with aliases.

Only this package touches the stored models (safetensors files, manifests, alias files); `core`
stays pure NumPy and `pipeline`, `service` and `cli` go through `Registry`.
"""

from registry.errors import (
    LATEST,
    ConflictError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    RegistryError,
    StoreConfigurationError,
    StoreUnavailableError,
    validate_model_name,
)
from registry.registry import (
    DEFAULT_ALIAS,
    DEFAULT_MODEL_NAME,
    DEFAULT_ROOT,
    REGISTRY_ENV_VAR,
    UNCONDITIONAL,
    LoadedModel,
    ModelVersion,
    Registry,
    default_root,
)

__all__ = [
    "DEFAULT_ALIAS",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_ROOT",
    "LATEST",
    "REGISTRY_ENV_VAR",
    "UNCONDITIONAL",
    "ConflictError",
    "IntegrityError",
    "InvalidNameError",
    "LoadedModel",
    "ModelVersion",
    "NotFoundError",
    "Registry",
    "RegistryError",
    "StoreConfigurationError",
    "StoreUnavailableError",
    "default_root",
    "validate_model_name",
]
