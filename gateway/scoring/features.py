"""Turn pen strokes into a fixed-length feature vector, whatever the device's units.

Pens, tablets and the shared data sets all use different units, origins and sampling rates, so
every answer is first normalised: translated to its bounding-box centre, scaled by its longer side
(the aspect ratio is kept, so a "1" stays thin) and resampled at equal arc-length steps (so a slow,
densely sampled stroke weighs the same as a quick one). Three feature groups follow, all in numpy:

- the trajectory itself, as equally spaced points in writing order: captures how a digit was drawn;
- a coarse grid of pen directions (8 directions x G x G cells, bilinear in space and angle), which
  is the on-line form of a blurred image and tolerates small shifts and wobbles;
- the same grid of line orientations (4, direction of travel ignored), so that a stroke drawn
  the other way round, as many writers do a stem or a bar, still looks like the same letter;
- the stroke count and the aspect ratio, which separate e.g. a two-stroke cross from a tick.

The trajectory and the grids are computed by the Cython kernel `ext/strokefeat.pyx`, the hottest
loop of scoring; `ext/strokefeat_ref.py` states them in numpy, and the two agree to rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ext import strokefeat

TRAJECTORY_POINTS = 24
DIRECTION_POINTS = 64
GRID = 5
DIRECTIONS = 8
ORIENTATIONS = 4
MAX_STROKES = 4

FEATURE_SIZE = 2 * TRAJECTORY_POINTS + GRID * GRID * (DIRECTIONS + ORIENTATIONS) + MAX_STROKES + 1

StrokesLike = Sequence[np.ndarray] | Sequence[Sequence[Sequence[float]]]


def as_strokes(strokes: StrokesLike) -> list[np.ndarray]:
    """Validate input and keep only x, y of every point (time and pressure columns are ignored)."""
    if isinstance(strokes, str | bytes) or not isinstance(strokes, Sequence | np.ndarray):
        raise ValueError(f"strokes must be a list of strokes, got {type(strokes).__name__}")
    if len(strokes) == 0:
        raise ValueError("no strokes: the answer box is empty")
    out: list[np.ndarray] = []
    for i, stroke in enumerate(strokes):
        try:
            arr = np.asarray(stroke, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"stroke {i} is not a list of numeric points: {exc}") from None
        if arr.size == 0:
            raise ValueError(f"stroke {i} has no points")
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise ValueError(
                f"stroke {i} must be a list of points [x, y, ...], got shape {arr.shape}"
            )
        xy = arr[:, :2]
        if not np.isfinite(xy).all():
            raise ValueError(f"stroke {i} has a NaN or infinite coordinate")
        out.append(xy)
    return out


def normalise(strokes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """All points centred on the bounding box and scaled so the longer side spans [-0.5, 0.5].

    Returns the points (n, 2), a boolean per point telling whether it starts a new stroke, and the
    log aspect ratio (height / width) measured before scaling.
    """
    points = np.concatenate(strokes, axis=0)
    starts = np.zeros(len(points), dtype=bool)
    starts[np.cumsum([0] + [len(s) for s in strokes[:-1]])] = True
    lo = points.min(axis=0)
    hi = points.max(axis=0)
    extent = hi - lo
    side = float(extent.max())
    # A lone dot has no size; any scale keeps it a dot at the centre.
    scale = side if side > 0 else 1.0
    points = (points - (lo + hi) / 2) / scale
    # Relative to the longer side, so it is scale-free; floored so a perfect line stays finite.
    floor = 0.02
    aspect = float(np.log(max(extent[1] / scale, floor) / max(extent[0] / scale, floor)))
    return points, starts, aspect


def features(strokes: StrokesLike) -> np.ndarray:
    """The feature vector (FEATURE_SIZE,) of one answer; raises ValueError on unusable input."""
    return checked_features(as_strokes(strokes))


def checked_features(clean: list[np.ndarray]) -> np.ndarray:
    """`features` of strokes that `as_strokes` has already checked (and that a caller also uses)."""
    points, starts, aspect = normalise(clean)
    shape = strokefeat.shape_features(
        np.ascontiguousarray(points),
        starts.view(np.uint8),
        TRAJECTORY_POINTS,
        DIRECTION_POINTS,
        GRID,
        DIRECTIONS,
        ORIENTATIONS,
    )
    stroke_count = np.zeros(MAX_STROKES)
    stroke_count[min(len(clean), MAX_STROKES) - 1] = 1.0
    return np.concatenate((shape, stroke_count, [aspect]))
