"""The Cython shape-feature kernel (ext.strokefeat) agrees with its numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from classink.shared_data import read_jsonl
from ext import strokefeat, strokefeat_ref
from gateway.scoring.features import (
    DIRECTION_POINTS,
    DIRECTIONS,
    GRID,
    ORIENTATIONS,
    TRAJECTORY_POINTS,
    as_strokes,
    normalise,
)

SIZES = (TRAJECTORY_POINTS, DIRECTION_POINTS, GRID, DIRECTIONS, ORIENTATIONS)


def both(strokes: list[np.ndarray], sizes: tuple[int, ...] = SIZES) -> tuple[np.ndarray, ...]:
    points, starts, _ = normalise(as_strokes(strokes))
    points = np.ascontiguousarray(points)
    return (
        strokefeat.shape_features(points, starts.view(np.uint8), *sizes),
        strokefeat_ref.shape_features(points, starts, *sizes),
    )


def test_agrees_on_real_handwriting():
    rows = list(read_jsonl("handwriting/ujipenchars_v1.jsonl.gz"))[::7]
    rows += list(read_jsonl("handwriting/dollar1_gestures.jsonl.gz"))[::11]
    assert len(rows) > 200
    for row in rows:
        kernel, ref = both(row["strokes"])
        np.testing.assert_allclose(kernel, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_agrees_on_odd_strokes(seed):
    rng = np.random.default_rng(seed)
    strokes = []
    for _ in range(int(rng.integers(1, 6))):
        k = int(rng.integers(1, 30))
        points = np.cumsum(rng.normal(0, 1, size=(k, 2)), axis=0)
        if rng.random() < 0.3:
            points[k // 2 :] = points[k // 2]  # the pen resting: zero-length segments
        strokes.append(np.round(points, int(rng.integers(0, 3))))
    sizes = (int(rng.integers(1, 30)), int(rng.integers(1, 80)), int(rng.integers(2, 7)), 8, 4)
    kernel, ref = both(strokes, sizes)
    np.testing.assert_allclose(kernel, ref, rtol=0, atol=1e-12)


def test_a_lone_dot_and_a_resting_pen_have_no_direction():
    for strokes in ([[[3.0, 4.0]]], [[[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]]):
        kernel, ref = both(strokes)
        np.testing.assert_allclose(kernel, ref, rtol=0, atol=1e-12)
        assert not kernel[2 * TRAJECTORY_POINTS :].any()


def test_bad_shapes_are_refused():
    points = np.zeros((3, 2))
    with pytest.raises(ValueError, match="one start flag each"):
        strokefeat.shape_features(points, np.zeros(2, dtype=np.uint8), *SIZES)
    with pytest.raises(ValueError, match="grid >= 2"):
        strokefeat.shape_features(points, np.zeros(3, dtype=np.uint8), 4, 4, 1, 8, 4)
