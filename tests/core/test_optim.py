"""Adam: hand-computed steps with the design document's bias correction, and resumable state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import Adam


def _seed_adam(
    theta: float, grads: list[float], lr: float, b1: float, b2: float, eps: float
) -> float:
    """The design document's formulas, written out literally for one scalar."""
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        theta = theta - lr * m_hat / (math.sqrt(v_hat) + eps)
    return theta


def test_first_step_moves_each_parameter_by_lr_times_the_gradient_sign() -> None:
    # At t=1, bias correction makes m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps).
    params = {"w": np.array([1.0, -2.0, 0.5])}
    grads = {"w": np.array([0.3, -4.0, 1e-3])}
    Adam(lr=0.1).step(params, grads)
    expected = np.array(
        [
            1.0 - 0.1 * 0.3 / (0.3 + 1e-8),
            -2.0 + 0.1 * 4.0 / (4.0 + 1e-8),
            0.5 - 0.1 * 1e-3 / (1e-3 + 1e-8),
        ]
    )
    np.testing.assert_allclose(params["w"], expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_three_steps_match_the_seed_formulas(dtype: type) -> None:
    history = [[0.5, -1.0], [0.25, 2.0], [-0.75, 0.1]]
    params = {"w": np.array([0.2, -0.3], dtype=dtype)}
    optimizer = Adam(lr=0.01, beta1=0.9, beta2=0.99, eps=1e-8)
    for grad in history:
        optimizer.step(params, {"w": np.array(grad, dtype=dtype)})
    assert optimizer.t == 3
    assert params["w"].dtype == dtype  # Python-float scalars never promote float32 to float64
    for i, start in enumerate([0.2, -0.3]):
        expected = _seed_adam(start, [g[i] for g in history], 0.01, 0.9, 0.99, 1e-8)
        assert params["w"][i] == pytest.approx(expected, rel=1e-5 if dtype == np.float32 else 1e-12)


def test_defaults_are_the_seeds_hyper_parameters() -> None:
    optimizer = Adam()
    assert (optimizer.lr, optimizer.beta1, optimizer.beta2, optimizer.eps) == (
        1e-3,
        0.9,
        0.99,
        1e-8,
    )


def test_state_survives_save_and_restore() -> None:
    rng = np.random.default_rng(0)
    grads = [{"w": rng.normal(size=(3, 2)), "b": rng.normal(size=(3, 1))} for _ in range(6)]
    start = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=(3, 1))}

    straight = {k: v.copy() for k, v in start.items()}
    uninterrupted = Adam(lr=0.05)
    for g in grads:
        uninterrupted.step(straight, g)

    resumed_params = {k: v.copy() for k, v in start.items()}
    first = Adam(lr=0.05)
    for g in grads[:3]:
        first.step(resumed_params, g)
    saved = first.state_dict()
    first.m["w"][...] = 99.0  # the saved state is a copy, not a view
    second = Adam(lr=123.0)
    second.load_state_dict(saved)
    assert second.t == 3 and second.lr == 0.05
    for g in grads[3:]:
        second.step(resumed_params, g)
    assert second.t == 6
    for name in start:
        np.testing.assert_array_equal(resumed_params[name], straight[name])


def test_schedule_override_and_errors() -> None:
    params = {"w": np.array([1.0])}
    Adam(lr=1.0).step(params, {"w": np.array([2.0])}, lr=0.5)
    assert params["w"][0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="differ"):
        Adam().step(params, {"v": np.array([1.0])})
    with pytest.raises(ValueError, match="shape"):
        Adam().step(params, {"w": np.array([1.0, 2.0])})
    with pytest.raises(ValueError, match="lr must be > 0"):
        Adam(lr=0)
    with pytest.raises(ValueError, match="betas"):
        Adam(beta2=1.0)
