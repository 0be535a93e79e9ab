"""Numpy reference of the shape features of handwriting (gateway/scoring/features.py).

`ext/strokefeat.pyx` must return what `shape_features` here returns, to rounding: this module is
the readable statement, the kernel only makes it fast (it is the hottest loop of scoring).

Input: an answer's points (n, 2), already centred and scaled so the longer side spans
[-0.5, 0.5], and a boolean per point telling whether it starts a new stroke. Output, concatenated:

- `trajectory` points at equal arc-length steps along the pen-down path, as x0, y0, x1, y1, ...;
- the pen directions at `dense` such points splatted bilinearly into a `grid` x `grid` array of
  cells x `directions` angle bins (directions of travel, period 2 pi), then the same into
  `orientations` bins of period pi (the direction a line was drawn in ignored); square-rooted.

Pen-up jumps between strokes count as zero length, so no points are spent on the air; where the pen
did not move (a dot) the direction is zero and adds nothing to the grids.
"""

from __future__ import annotations

import numpy as np


def resample_at(
    points: np.ndarray, starts: np.ndarray, fractions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Points (and unit pen directions) at the given fractions of the pen-down path length."""
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


_CORNER_DU = np.array([0, 1, 0, 1])[:, None]
_CORNER_DV = np.array([0, 0, 1, 1])[:, None]


def direction_grids(
    points: np.ndarray, direction: np.ndarray, grid: int, directions: int, orientations: int
) -> np.ndarray:
    """Pen directions splatted bilinearly into grid x grid cells x angle bins, for directions
    and then orientations, concatenated and square-rooted."""
    moving = (direction != 0).any(axis=1)
    # Cell coordinates: [-0.5, 0.5] maps to [0, grid - 1].
    u = np.clip((points[:, 0] + 0.5) * (grid - 1), 0.0, grid - 1 - 1e-9)
    v = np.clip((points[:, 1] + 0.5) * (grid - 1), 0.0, grid - 1 - 1e-9)
    u0 = np.floor(u).astype(np.intp)
    v0 = np.floor(v).astype(np.intp)
    fu = u - u0
    fv = v - v0
    # The four cells around each point (4, n) and their bilinear weights.
    cells = np.minimum(v0 + _CORNER_DV, grid - 1) * grid + np.minimum(u0 + _CORNER_DU, grid - 1)
    spatial = np.where(_CORNER_DU, fu, 1 - fu) * np.where(_CORNER_DV, fv, 1 - fv)
    spatial *= moving / max(int(moving.sum()), 1)
    theta = np.arctan2(direction[:, 1], direction[:, 0])
    idx_parts = []
    w_parts = []
    for bins, period, offset in (
        (directions, 2 * np.pi, 0),
        (orientations, np.pi, grid * grid * directions),
    ):
        angle = theta * (bins / period)
        a0f = np.floor(angle)
        fa = angle - a0f
        a0 = a0f.astype(np.intp) % bins
        a1 = (a0 + 1) % bins
        base = offset + cells * bins
        idx_parts += [base + a0, base + a1]
        w_parts += [spatial * (1 - fa), spatial * fa]
    counts = np.bincount(
        np.concatenate(idx_parts, axis=None),
        np.concatenate(w_parts, axis=None),
        minlength=grid * grid * (directions + orientations),
    )
    # Square root evens out the dynamic range between long straight runs and short details.
    return np.sqrt(counts)


def shape_features(
    points: np.ndarray,
    starts: np.ndarray,
    trajectory: int,
    dense: int,
    grid: int,
    directions: int,
    orientations: int,
) -> np.ndarray:
    """(2 * trajectory + grid * grid * (directions + orientations),) features; see the module."""
    fractions = np.concatenate((np.linspace(0.0, 1.0, trajectory), np.linspace(0.0, 1.0, dense)))
    resampled, direction = resample_at(points, starts.astype(bool), fractions)
    return np.concatenate(
        (
            resampled[:trajectory].ravel(),
            direction_grids(
                resampled[trajectory:], direction[trajectory:], grid, directions, orientations
            ),
        )
    )
