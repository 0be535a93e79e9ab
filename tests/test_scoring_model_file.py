"""Model files: a perceptron's hidden layer survives save and load; linear files still load."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.scoring.features import FEATURE_SIZE
from gateway.scoring.recognizer import FieldModel


def perceptron(rng: np.random.Generator, hidden: int = 6) -> FieldModel:
    return FieldModel(
        labels=("A", "B", "C"),
        mean=rng.normal(size=FEATURE_SIZE),
        scale=rng.uniform(0.5, 2.0, size=FEATURE_SIZE),
        weights=rng.normal(size=(hidden, 3)),
        bias=rng.normal(size=3),
        temperature=1.5,
        hidden_weights=rng.normal(size=(FEATURE_SIZE, hidden)),
        hidden_bias=rng.normal(size=hidden),
    )


def test_hidden_layer_round_trips_and_is_relu_then_linear(tmp_path):
    rng = np.random.default_rng(1)
    model = perceptron(rng)
    model.save(tmp_path / "m.npz")
    loaded = FieldModel.load(tmp_path / "m.npz")
    assert loaded.hidden_units == 6
    x = rng.normal(size=(4, FEATURE_SIZE))
    z = np.maximum(((x - model.mean) / model.scale) @ model.hidden_weights + model.hidden_bias, 0)
    expected = z @ model.weights + model.bias
    np.testing.assert_allclose(loaded.logits(x), expected, rtol=1e-4, atol=1e-3)


def test_a_linear_file_without_hidden_arrays_loads_as_linear(tmp_path):
    rng = np.random.default_rng(2)
    weights, bias = rng.normal(size=(FEATURE_SIZE, 2)), rng.normal(size=2)
    np.savez(
        tmp_path / "old.npz",
        labels=np.array(["tick", "cross"]),
        mean=np.zeros(FEATURE_SIZE),
        scale=np.ones(FEATURE_SIZE),
        weights=weights,
        bias=bias,
        temperature=np.float64(1.0),
    )
    model = FieldModel.load(tmp_path / "old.npz")
    assert model.hidden_units == 0
    x = rng.normal(size=(3, FEATURE_SIZE))
    np.testing.assert_allclose(model.logits(x), x @ weights + bias)


def test_output_weights_that_do_not_fit_the_hidden_layer_are_refused(tmp_path):
    model = perceptron(np.random.default_rng(3))
    broken = FieldModel(**{**model.__dict__, "weights": np.zeros((FEATURE_SIZE, 3))})
    broken.save(tmp_path / "broken.npz")
    with pytest.raises(ValueError, match="scoring train"):
        FieldModel.load(tmp_path / "broken.npz")
