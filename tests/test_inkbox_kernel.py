"""The most-ink box kernel (ext.inkbox) against its numpy reference: same box for every stroke,
including strokes on borders, exactly between boxes, with NaNs, and strided views of pen points."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ext import inkbox, inkbox_ref

# Coordinates on a coarse grid, so that points fall on borders and centres tie often.
coordinate = st.integers(0, 40).map(lambda v: v / 2)


@st.composite
def boxes(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 6))
    lo = np.array([[draw(coordinate), draw(coordinate)] for _ in range(n)]).reshape(-1, 2)
    size = np.array([[draw(coordinate), draw(coordinate)] for _ in range(n)]).reshape(-1, 2)
    return np.ascontiguousarray(lo), np.ascontiguousarray(lo + size)


strokes = st.integers(0, 30).flatmap(lambda k: arrays(np.float64, (k, 2), elements=coordinate))


@settings(max_examples=600, deadline=None)
@given(boxes(), strokes)
def test_kernel_and_reference_choose_the_same_box(corners, xy) -> None:
    lo, hi = corners
    assert inkbox.most_ink_box(lo, hi, xy) == inkbox_ref.most_ink_box(lo, hi, xy)


@settings(max_examples=200, deadline=None)
@given(boxes(), strokes, st.data())
def test_a_nan_anywhere_places_the_stroke_in_no_box(corners, xy, data) -> None:
    lo, hi = corners
    if len(xy) == 0:
        return
    xy = xy.copy()
    xy[data.draw(st.integers(0, len(xy) - 1)), data.draw(st.integers(0, 1))] = np.nan
    assert inkbox.most_ink_box(lo, hi, xy) == inkbox_ref.most_ink_box(lo, hi, xy) == -1


def test_pen_points_are_read_through_a_strided_view() -> None:
    lo, hi = np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[5.0, 5.0], [15.0, 5.0]])
    points = np.array([[11.0, 1.0, 8.0, 400.0], [12.0, 2.0, 8.0, 400.0], [4.0, 4.0, 8.0, 400.0]])
    assert inkbox.most_ink_box(lo, hi, points[:, :2]) == 1


@pytest.mark.parametrize(
    ("xy", "expected"),
    [
        ([[1.0, 1.0], [2.0, 2.0]], 0),  # wholly in the first box
        ([[5.0, 5.0]], 0),  # on the border: inside
        ([[4.0, 1.0], [11.0, 1.0]], 0),  # one point each, centres equally near: the first box
        ([[4.0, 1.0], [11.0, 1.0], [12.0, 1.0]], 1),  # most ink
        ([[1.0, 1.0], [30.0, 30.0], [31.0, 31.0]], -1),  # less than half in any box
    ],
)
def test_the_rule_on_two_boxes(xy, expected) -> None:
    lo, hi = np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[5.0, 5.0], [15.0, 5.0]])
    xy = np.array(xy)
    assert inkbox.most_ink_box(lo, hi, xy) == inkbox_ref.most_ink_box(lo, hi, xy) == expected


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="corner arrays"):
        inkbox.most_ink_box(np.zeros((2, 2)), np.zeros((3, 2)), np.zeros((1, 2)))
