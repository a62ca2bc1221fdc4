"""The MLP: shapes, initialisation, softmax stability, validation and gradient checks."""

from __future__ import annotations

import numpy as np
import pytest

from core import MLP, count_params, param_shapes
from core.activations import softmax
from tests.helpers.oracle import FLOAT64_ATOL, reference_proba


def test_parameter_shapes_follow_the_seed_table() -> None:
    model = MLP()
    shapes = {name: value.shape for name, value in model.params.items()}
    assert shapes == {
        "W1": (128, 784),
        "b1": (128, 1),
        "W2": (40, 128),
        "b2": (40, 1),
        "W3": (10, 40),
        "b3": (10, 1),
    }


def test_parameter_count_is_106050_not_the_seeds_105898() -> None:
    # The design document's table totals 105,898: an arithmetic slip in the same sum.
    assert 128 * 784 + 128 + 40 * 128 + 40 + 10 * 40 + 10 == 106_050
    assert count_params((784, 128, 40, 10)) == 106_050
    assert MLP().n_params == 106_050
    assert sum(value.size for value in MLP().params.values()) == 106_050


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_seed_gives_bit_identical_weights(dtype: type) -> None:
    first, second, other = (
        MLP(seed=7, dtype=dtype),
        MLP(seed=7, dtype=dtype),
        MLP(seed=8, dtype=dtype),
    )
    for name in first.params:
        assert first.params[name].dtype == dtype
        assert first.params[name].tobytes() == second.params[name].tobytes()
    assert not np.array_equal(first.params["W1"], other.params["W1"])


def test_he_initialisation_scale_and_zero_biases() -> None:
    model = MLP(seed=3, dtype=np.float64)
    for layer, fan_in in ((1, 784), (2, 128)):
        std = model.params[f"W{layer}"].std()
        assert std == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.05)
        assert not model.params[f"b{layer}"].any()


def test_softmax_is_stable_for_huge_logits() -> None:
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3.0, 1.0, 0.2]], dtype=np.float32)
    probs = softmax(logits)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probs[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(probs[1], [1 / 3] * 3, rtol=1e-6)
    expected = np.exp([3.0, 1.0, 0.2]) / np.exp([3.0, 1.0, 0.2]).sum()
    np.testing.assert_allclose(probs[2], expected, rtol=1e-6)


@pytest.mark.parametrize("batch", [1, 5, 300])
def test_predict_proba_rows_are_distributions(batch: int) -> None:
    rng = np.random.default_rng(batch)
    model = MLP(seed=1)
    probs = model.predict_proba(rng.random((batch, 784), dtype=np.float32))
    assert probs.shape == (batch, 10) and probs.dtype == np.float32
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    labels = model.predict(rng.random((batch, 784), dtype=np.float32))
    assert labels.shape == (batch,) and labels.dtype == np.int64


def test_predict_proba_matches_the_seeds_column_formulas() -> None:
    rng = np.random.default_rng(0)
    model = MLP(seed=2, dtype=np.float64)
    x = rng.random((6, 784))
    p = model.params
    expected = reference_proba(p, x)  # the design document's Z = W X + b, samples as columns
    np.testing.assert_allclose(model.predict_proba(x), expected, rtol=0, atol=FLOAT64_ATOL)


def test_bad_inputs_raise_value_errors_naming_the_problem() -> None:
    model = MLP()
    with pytest.raises(ValueError, match=r"shape \(m, 784\), got \(3, 783\)"):
        model.predict_proba(np.zeros((3, 783), np.float32))
    with pytest.raises(ValueError, match="float pixels"):
        model.predict_proba(np.zeros((3, 784), np.uint8))
    with pytest.raises(ValueError, match="expected Y of shape"):
        model.loss_and_grads(np.zeros((3, 784), np.float32), np.zeros((3, 9)))
    with pytest.raises(ValueError, match="loss must be one of"):
        MLP(loss="hinge")
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        MLP(dtype=np.int32)
    with pytest.raises(ValueError, match="layer_sizes"):
        MLP(layer_sizes=(784,))


def test_from_params_round_trip_and_shape_errors() -> None:
    model = MLP(layer_sizes=(20, 7, 3), seed=5)
    rebuilt = MLP.from_params({name: value.copy() for name, value in model.params.items()})
    assert rebuilt.layer_sizes == (20, 7, 3)
    x = np.random.default_rng(0).random((4, 20), dtype=np.float32)
    np.testing.assert_array_equal(rebuilt.predict_proba(x), model.predict_proba(x))
    broken = dict(model.params)
    broken["b1"] = np.zeros((6, 1), np.float32)
    with pytest.raises(ValueError, match=r"b1 has shape \(6, 1\), expected \(7, 1\)"):
        MLP.from_params(broken)
    with pytest.raises(ValueError, match="expected parameters"):
        MLP.from_params({**model.params, "W9": np.zeros((1, 1))})


def test_params_mapping_cannot_be_rebound_but_updates_in_place() -> None:
    model = MLP(layer_sizes=(4, 3, 2))
    with pytest.raises(TypeError):
        model.params["W1"] = np.zeros((3, 4))  # type: ignore[index]
    model.params["W1"][...] = 1.0
    assert model.flat_params[:12].tolist() == [1.0] * 12
    assert param_shapes((4, 3, 2))["W1"] == (3, 4)


def _numeric_gradient(
    model: MLP, x: np.ndarray, y: np.ndarray, name: str, eps: float
) -> np.ndarray:
    param = model.params[name]
    numeric = np.zeros_like(param)
    for index in np.ndindex(param.shape):
        saved = param[index]
        param[index] = saved + eps
        plus, _ = model.loss_and_grads(x, y)
        param[index] = saved - eps
        minus, _ = model.loss_and_grads(x, y)
        param[index] = saved
        numeric[index] = (plus - minus) / (2 * eps)
    return numeric


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("sizes", [(6, 5, 4, 3), (9, 7, 4)])
def test_gradients_match_central_finite_differences(loss: str, sizes: tuple[int, ...]) -> None:
    rng = np.random.default_rng(12345)
    model = MLP(layer_sizes=sizes, seed=11, dtype=np.float64, loss=loss)
    for name, value in model.params.items():
        if name.startswith("b"):  # non-zero biases so their gradients are exercised
            value[...] = rng.normal(0, 0.1, value.shape)
    x = rng.random((8, sizes[0]))
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 8)]
    _, grads = model.loss_and_grads(x, y)
    analytic = {name: grad.copy() for name, grad in grads.items()}
    for name in model.params:
        numeric = _numeric_gradient(model, x, y, name, eps=1e-6)
        np.testing.assert_allclose(analytic[name], numeric, rtol=1e-5, atol=1e-9, err_msg=name)


def test_cross_entropy_output_delta_is_the_seeds_a_minus_y_over_m() -> None:
    rng = np.random.default_rng(4)
    model = MLP(layer_sizes=(5, 3), seed=0, dtype=np.float64)
    x = rng.random((4, 5))
    y = np.eye(3)[[0, 2, 1, 1]]
    _, grads = model.loss_and_grads(x, y)
    delta = (model.predict_proba(x) - y) / 4
    np.testing.assert_allclose(grads["W1"], delta.T @ x, rtol=1e-12)
    np.testing.assert_allclose(grads["b1"][:, 0], delta.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_train_step_with_labels_equals_forward_backward_with_one_hot(loss: str) -> None:
    rng = np.random.default_rng(9)
    model = MLP(layer_sizes=(12, 6, 4), seed=3, dtype=np.float64, loss=loss)
    x = rng.random((10, 12))
    labels = rng.integers(0, 4, 10)
    fast_loss, fast_logits = model.train_step(x, labels)
    fast_grads = model.flat_grads.copy()
    slow_loss, slow_logits = model.forward_backward(x, np.eye(4)[labels])
    assert fast_loss == pytest.approx(slow_loss, rel=1e-12)
    np.testing.assert_allclose(fast_logits, slow_logits, rtol=1e-12)
    np.testing.assert_allclose(fast_grads, model.flat_grads, rtol=1e-10, atol=1e-15)


def test_params_and_grads_pairs_each_parameter_with_its_gradient_view() -> None:
    model = MLP(layer_sizes=(5, 4, 3), seed=1)
    triples = list(model.params_and_grads())
    assert [name for name, _, _ in triples] == ["W1", "b1", "W2", "b2"]
    model.train_step(np.ones((2, 5), np.float32), np.array([0, 2]))
    for name, param, grad in triples:
        assert param is model.params[name] and grad.shape == param.shape
        np.testing.assert_array_equal(grad, model.grads[name])  # views, so they see the new step
    assert any(grad.any() for _, _, grad in triples)
