"""Adam (Kingma & Ba, 2014) with the design document's hyper-parameters and bias correction.

The design document's update, per parameter and step t:
    m_t = b1 m + (1 - b1) g,   v_t = b2 v + (1 - b2) g^2,
    theta -= lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m_t / (1 - b1^t), v_hat = v_t / (1 - b2^t).
The code evaluates the same expression rearranged to use fewer temporary arrays:
    theta -= [lr * c / (1 - b1^t)] * m_t / (sqrt(v_t) + eps * c),  c = sqrt(1 - b2^t),
which is algebraically identical (multiply numerator and denominator by c).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


class Adam:
    """Adam optimiser; ``step`` updates the parameters in place and counts steps in ``t``."""

    def __init__(
        self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.99, eps: float = 1e-8
    ) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {beta1}, {beta2}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        # Python floats: a NumPy float64 scalar would promote float32 arrays to float64.
        self.lr, self.beta1, self.beta2, self.eps = (
            float(lr),
            float(beta1),
            float(beta2),
            float(eps),
        )
        self.t = 0
        self.m: dict[str, Array] = {}
        self.v: dict[str, Array] = {}
        self._scratch: dict[str, Array] = {}

    def step(
        self, params: Mapping[str, Array], grads: Mapping[str, Array], lr: float | None = None
    ) -> None:
        """One Adam update of every parameter from its gradient; ``lr`` overrides for a schedule."""
        if set(params) != set(grads):
            raise ValueError(f"params {sorted(params)} and grads {sorted(grads)} differ")
        self.t += 1
        rate = self.lr if lr is None else float(lr)
        correction = math.sqrt(1.0 - self.beta2**self.t)
        step_size = rate * correction / (1.0 - self.beta1**self.t)
        eps_scaled = self.eps * correction
        for name, param in params.items():
            grad = grads[name]
            if grad.shape != param.shape:
                raise ValueError(f"gradient of {name} has shape {grad.shape}, not {param.shape}")
            m, v, scratch = self._state_for(name, param)
            m *= self.beta1
            np.multiply(grad, 1.0 - self.beta1, out=scratch)
            m += scratch
            np.square(grad, out=scratch)
            scratch *= 1.0 - self.beta2
            v *= self.beta2
            v += scratch
            np.sqrt(v, out=scratch)
            scratch += eps_scaled
            np.divide(m, scratch, out=scratch)
            scratch *= step_size
            param -= scratch

    def _state_for(self, name: str, param: Array) -> tuple[Array, Array, Array]:
        if name not in self.m:
            self.m[name] = np.zeros_like(param)
            self.v[name] = np.zeros_like(param)
        if name not in self._scratch:
            self._scratch[name] = np.empty_like(param)
        return self.m[name], self.v[name], self._scratch[name]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: hyper-parameters, step count and both moments (copies)."""
        return {
            "lr": self.lr,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "t": self.t,
            "m": {name: moment.copy() for name, moment in self.m.items()},
            "v": {name: moment.copy() for name, moment in self.v.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state_dict``; the next ``step`` continues at t + 1 with the same moments."""
        if set(state["m"]) != set(state["v"]):
            raise ValueError("optimizer state has first and second moments for different keys")
        if int(state["t"]) < 0:
            raise ValueError(f"step count must be >= 0, got {state['t']}")
        self.lr, self.beta1 = float(state["lr"]), float(state["beta1"])
        self.beta2, self.eps = float(state["beta2"]), float(state["eps"])
        self.t = int(state["t"])
        self.m = {name: np.array(moment) for name, moment in state["m"].items()}
        self.v = {name: np.array(moment) for name, moment in state["v"].items()}
        self._scratch = {}
