"""Digits placed side by side, as a student writes a number, at chosen gaps (negative: overlapping).

Training uses it to compose two digits of one training writer written into each other, which the
digit model learns as `recognizer.NOT_ONE_CHARACTER`: without such examples a "18" whose digits
touch read as one "8" with high confidence, and was scored without review. `bench.scoring`
composes its numbers with it, from held-out writers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ORIGIN = (2.0, 4.0)


def side_by_side(
    digits: Sequence[Sequence[np.ndarray]], height: float, gaps: Sequence[float]
) -> list[np.ndarray]:
    """The strokes of each digit scaled to `height` and placed left to right, each starting
    `gaps[i]` x height after the right edge of the one before (the gap after the last is unused)."""
    x, out = ORIGIN[0], []
    for strokes, gap in zip(digits, gaps, strict=True):
        points = np.concatenate([s[:, :2] for s in strokes])
        lo, size = points.min(axis=0), np.ptp(points, axis=0)
        scale = height / max(float(size[1]), 1e-9)
        out += [(s[:, :2] - lo) * scale + [x, ORIGIN[1]] for s in strokes]
        x += size[0] * scale + gap * height
    return out
