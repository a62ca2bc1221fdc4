"""Pure NumPy core of digits: the MLP, its losses, Adam, metrics, training and IDX decoding."""

from core.config import ModelConfig, TrainConfig
from core.features import to_features
from core.metrics import evaluate
from core.mlp import MLP, count_params, param_shapes
from core.optim import Adam
from core.train import DivergenceError, TrainResult, fit

__all__ = [
    "MLP",
    "Adam",
    "DivergenceError",
    "ModelConfig",
    "TrainConfig",
    "TrainResult",
    "count_params",
    "evaluate",
    "fit",
    "param_shapes",
    "to_features",
]
