"""core.profile: per-image statistics on images with known answers, histograms and the PSI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.profile import (
    STATISTICS,
    bin_counts,
    image_statistics,
    profile,
    psi,
    reference_profile,
)


def one_hot_probabilities(labels: list[int], top: float = 0.95) -> np.ndarray:
    p = np.full((len(labels), 10), (1 - top) / 9, dtype=np.float32)
    p[np.arange(len(labels)), labels] = top
    return p


def test_statistics_of_a_drawn_rectangle():
    image = np.zeros((1, 28, 28), dtype=np.uint8)
    image[0, 4:12, 20:23] = 255  # 8 rows x 3 columns of ink
    image[0, 0, 0] = 100  # faint: below the ink threshold, but it has mass
    stats = image_statistics(image.reshape(1, 784), one_hot_probabilities([3]))
    assert stats["ink"][0] == pytest.approx(24 / 784)
    assert (stats["height"][0], stats["width"][0]) == (8, 3)
    mass = 24 * 255 + 100
    assert stats["row"][0] == pytest.approx((255 * 3 * sum(range(4, 12))) / mass, rel=1e-5)
    assert stats["col"][0] == pytest.approx((255 * 8 * sum(range(20, 23))) / mass, rel=1e-5)
    assert stats["intensity"][0] == pytest.approx(mass / 255 / 784, rel=1e-5)
    assert (stats["confidence"][0], stats["class"][0]) == (pytest.approx(0.95), 3)


def test_uint8_and_float_pixels_give_the_same_statistics():
    images = np.random.default_rng(0).integers(0, 256, size=(20, 784), dtype=np.uint8)
    p = one_hot_probabilities(list(range(10)) * 2)
    as_uint8 = image_statistics(images, p)
    as_float = image_statistics(images.astype(np.float32) / 255, p)
    for name in STATISTICS:
        np.testing.assert_allclose(as_uint8[name], as_float[name], rtol=1e-5, err_msg=name)


def test_a_blank_image_has_no_box_and_a_central_mass():
    stats = image_statistics(np.zeros((1, 784), np.uint8), one_hot_probabilities([0]))
    assert (stats["height"][0], stats["width"][0], stats["ink"][0]) == (0, 0, 0)
    assert (stats["row"][0], stats["col"][0]) == (13.5, 13.5)


def test_bins_put_values_past_the_edges_in_the_end_bins():
    stats = {name: np.asarray([-1.0, 1e9], dtype=np.float32) for name in STATISTICS}
    for name, counts in bin_counts(stats).items():
        assert counts[0] == 1 and counts[-1] == 1 and counts.sum() == 2, name


def test_profile_fractions_sum_to_one_and_chunking_does_not_matter():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(250, 784), dtype=np.uint8)
    p = one_hot_probabilities(rng.integers(0, 10, 250).tolist())
    whole, chunked = profile(images, p), profile(images, p, chunk=7)
    assert whole == chunked and whole["images"] == 250
    for entry in whole["statistics"].values():
        assert math.isclose(sum(entry["fractions"]), 1.0)


def test_psi_is_zero_for_equal_distributions_and_symmetric():
    assert psi([0.2, 0.3, 0.5], np.asarray([20, 30, 50])) == pytest.approx(0.0)
    a, b = [0.5, 0.5, 0.0], [0.25, 0.25, 0.5]
    assert psi(a, b) == pytest.approx(psi(b, a))


def test_psi_matches_the_formula_by_hand():
    expected, actual = [0.5, 0.5], [0.9, 0.1]
    by_hand = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert psi(expected, actual) == pytest.approx(by_hand)


def test_psi_rejects_mismatched_or_empty_histograms():
    with pytest.raises(ValueError, match="bins"):
        psi([0.5, 0.5], [1.0])
    with pytest.raises(ValueError, match="observation"):
        psi([0.5, 0.5], [0, 0])


def test_mismatched_probabilities_are_refused():
    with pytest.raises(ValueError, match="probabilities"):
        image_statistics(np.zeros((2, 784), np.uint8), np.zeros((3, 10), np.float32))


def test_the_reference_takes_inputs_from_training_and_outputs_from_held_out_rows():
    rng = np.random.default_rng(2)
    train = rng.integers(0, 256, size=(100, 784), dtype=np.uint8)
    test = np.zeros((40, 784), dtype=np.uint8)
    sure, unsure = one_hot_probabilities([1] * 100, top=0.999), one_hot_probabilities([2] * 40, 0.6)
    reference = reference_profile(train, sure, test, unsure)
    from_train, from_test = profile(train, sure), profile(test, unsure)
    for name, entry in reference["statistics"].items():
        source = from_test if name in ("confidence", "class") else from_train
        assert entry == source["statistics"][name], name
    assert reference["sources"] == {"inputs": "train", "outputs": "test"}
