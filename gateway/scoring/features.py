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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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


def resample(points: np.ndarray, starts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n points at equal arc-length steps along the pen-down path, and the pen direction at each.

    Pen-up jumps between strokes count as zero length, so no points are spent on the air; the unit
    direction is zero where the pen did not move (a dot).
    """
    return resample_at(points, starts, np.linspace(0.0, 1.0, n))


def resample_at(
    points: np.ndarray, starts: np.ndarray, fractions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Points (and pen directions) at the given fractions of the pen-down path length."""
    n = len(fractions)
    if len(points) == 1:
        return np.repeat(points, n, axis=0), np.zeros((n, 2))
    seg = points[1:] - points[:-1]
    length = np.hypot(seg[:, 0], seg[:, 1])
    length[starts[1:]] = 0.0
    cum = np.concatenate(([0.0], np.cumsum(length)))
    targets = fractions * cum[-1]
    idx = np.clip(np.searchsorted(cum, targets, side="right") - 1, 0, len(seg) - 1)
    seg_len = length[idx]
    moving = seg_len > 0
    safe = np.where(moving, seg_len, 1.0)
    frac = np.clip((targets - cum[idx]) / safe, 0.0, 1.0)
    out = points[idx] + seg[idx] * frac[:, None]
    direction = np.where(moving[:, None], seg[idx] / safe[:, None], 0.0)
    return out, direction


# Both resamplings of `features` in one pass: the trajectory's points, then the dense ones.
_FRACTIONS = np.concatenate(
    (np.linspace(0.0, 1.0, TRAJECTORY_POINTS), np.linspace(0.0, 1.0, DIRECTION_POINTS))
)
_CORNER_DU = np.array([0, 1, 0, 1])[:, None]
_CORNER_DV = np.array([0, 0, 1, 1])[:, None]
# (angle bins, period, offset in the output): directions of travel, then orientations, which
# ignore the direction a line was drawn in.
_ANGLE_GRIDS = (
    (DIRECTIONS, 2 * np.pi, 0),
    (ORIENTATIONS, np.pi, GRID * GRID * DIRECTIONS),
)


def direction_grids(points: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Pen directions splatted bilinearly into GRID x GRID cells x angle bins, for each grid of
    `_ANGLE_GRIDS`, concatenated; one bincount for all, as this is the hottest loop of scoring."""
    moving = (direction != 0).any(axis=1)
    # Cell coordinates: [-0.5, 0.5] maps to [0, GRID - 1].
    u = np.clip((points[:, 0] + 0.5) * (GRID - 1), 0.0, GRID - 1 - 1e-9)
    v = np.clip((points[:, 1] + 0.5) * (GRID - 1), 0.0, GRID - 1 - 1e-9)
    u0 = np.floor(u).astype(np.intp)
    v0 = np.floor(v).astype(np.intp)
    fu = u - u0
    fv = v - v0
    # The four cells around each point (4, n) and their bilinear weights.
    cells = np.minimum(v0 + _CORNER_DV, GRID - 1) * GRID + np.minimum(u0 + _CORNER_DU, GRID - 1)
    spatial = np.where(_CORNER_DU, fu, 1 - fu) * np.where(_CORNER_DV, fv, 1 - fv)
    spatial *= moving / max(int(moving.sum()), 1)
    theta = np.arctan2(direction[:, 1], direction[:, 0])
    idx_parts = []
    w_parts = []
    for bins, period, offset in _ANGLE_GRIDS:
        angle = theta * (bins / period)
        a0f = np.floor(angle)
        fa = angle - a0f
        a0 = a0f.astype(np.intp) % bins
        a1 = (a0 + 1) % bins
        base = offset + cells * bins
        idx_parts += [base + a0, base + a1]
        w_parts += [spatial * (1 - fa), spatial * fa]
    grid = np.bincount(
        np.concatenate(idx_parts, axis=None),
        np.concatenate(w_parts, axis=None),
        minlength=GRID * GRID * (DIRECTIONS + ORIENTATIONS),
    )
    # Square root evens out the dynamic range between long straight runs and short details.
    return np.sqrt(grid)


def features(strokes: StrokesLike) -> np.ndarray:
    """The feature vector (FEATURE_SIZE,) of one answer; raises ValueError on unusable input."""
    clean = as_strokes(strokes)
    points, starts, aspect = normalise(clean)
    resampled, direction = resample_at(points, starts, _FRACTIONS)
    stroke_count = np.zeros(MAX_STROKES)
    stroke_count[min(len(clean), MAX_STROKES) - 1] = 1.0
    return np.concatenate(
        (
            resampled[:TRAJECTORY_POINTS].ravel(),
            direction_grids(resampled[TRAJECTORY_POINTS:], direction[TRAJECTORY_POINTS:]),
            stroke_count,
            [aspect],
        )
    )
