"""Predictor: the serving forward pass equals core's MLP for uint8 and float input, any batch."""

from __future__ import annotations

import numpy as np
import pytest

from core import MLP
from service.serving.model import Predictor
from tests.helpers.oracle import reference_proba
from tests.helpers.toy_models import random_images, toy_params


@pytest.mark.parametrize("n", [1, 7, 2500])  # 2500 crosses the internal 1024-row chunking
def test_uint8_and_float_match_mlp(n: int) -> None:
    params = toy_params(2)
    predictor = Predictor(params)
    images = random_images(n, seed=n).reshape(n, 784)
    floats = images.astype(np.float32) / 255.0
    expected = MLP.from_params(params).predict_proba(floats)
    np.testing.assert_allclose(predictor.predict_proba(images), expected, atol=1e-6)
    np.testing.assert_allclose(predictor.predict_proba(floats), expected, atol=1e-6)
    assert predictor.predict_proba(images).dtype == np.float32


def test_matches_float64_reference_and_labels() -> None:
    params = toy_params(3)
    floats = random_images(20, seed=1).reshape(20, 784).astype(np.float32) / 255.0
    expected = reference_proba(params, floats)
    predictor = Predictor(params)
    np.testing.assert_allclose(predictor.predict_proba(floats), expected, atol=1e-6)
    assert np.array_equal(predictor.predict(floats), expected.argmax(axis=1))


def test_softmax_is_stable_for_huge_logits() -> None:
    params = toy_params(4)
    params["W3"] = params["W3"] * 1e4  # logits in the thousands: a naive exp overflows
    probs = Predictor(params).predict_proba(random_images(5).reshape(5, 784))
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_other_layer_sizes_work() -> None:
    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((3, 5)), "b1": np.zeros((3, 1)),
              "W2": rng.standard_normal((2, 3)), "b2": np.zeros((2, 1))}  # fmt: skip
    predictor = Predictor(params)
    assert predictor.layer_sizes == (5, 3, 2)
    x = rng.random((4, 5)).astype(np.float32)
    hidden = np.maximum(x @ params["W1"].T, 0) @ params["W2"].T
    expected = np.exp(hidden) / np.exp(hidden).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(predictor.predict_proba(x), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"b3": None}, "params must hold"), ({"W2": np.zeros((40, 100))}, "W2 has shape"),
     ({"b2": np.zeros((39, 1))}, "b2 has 39 values")],
)  # fmt: skip
def test_bad_params_raise_value_error(change: dict, message: str) -> None:
    params = toy_params(0)
    for key, value in change.items():
        if value is None:
            del params[key]
        else:
            params[key] = value
    with pytest.raises(ValueError, match=message):
        Predictor(params)


def test_wrong_input_width_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"expected x of shape \(n, 784\)"):
        Predictor(toy_params(0)).predict_proba(np.zeros((2, 100), np.float32))
