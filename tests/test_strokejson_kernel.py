"""ext/strokejson.pyx agrees with ext/strokejson_ref.py, and both say what the points are."""

import json

import numpy as np
import pytest

from ext import strokejson, strokejson_ref


def random_points(rng: np.random.Generator, k: int) -> np.ndarray:
    xy = rng.uniform(-5, 400, size=(k, 2))
    tidy = rng.random(k) < 0.3  # values whose two decimals end in zeros: 12.30, 7.00
    xy[tidy] = np.round(xy[tidy], int(rng.integers(0, 2)))
    dt_force = rng.integers(0, 2000, size=(k, 2)).astype(np.float64)
    return np.ascontiguousarray(np.column_stack([xy, dt_force]))


@pytest.mark.parametrize("seed", range(5))
def test_kernel_gives_the_references_bytes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for k in (0, 1, 2, 17, 300):
        points = random_points(rng, k)
        assert strokejson.points_json(points) == strokejson_ref.points_json(points)


def test_values_are_the_points_rounded_to_a_hundredth_of_a_mm() -> None:
    points = np.array(
        [[12.3, 4.0, 8, 512], [0.004, -0.004, 8.9, 3], [199.999, 7.125, 0, 0], [1.5, 2.25, 1, 1]]
    )
    text = strokejson.points_json(points)
    assert text == b"[[12.3,4.0,8,512],[0.0,-0.0,8,3],[200.0,7.12,0,0],[1.5,2.25,1,1]]"
    parsed = np.array(json.loads(text))
    assert np.all(np.abs(parsed[:, :2] - points[:, :2]) <= 0.005 + 1e-9)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e16])
def test_out_of_range_points_are_refused_by_both(bad: float) -> None:
    points = np.array([[1.0, 2.0, 8, 100], [bad, 2.0, 8, 100]])
    for impl in (strokejson, strokejson_ref):
        with pytest.raises(ValueError, match="out of range"):
            impl.points_json(points)


def test_wrong_shape_is_refused_by_both() -> None:
    for impl in (strokejson, strokejson_ref):
        with pytest.raises(ValueError):
            impl.points_json(np.zeros((3, 2)))
