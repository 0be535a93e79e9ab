"""Filled bubbles: how much of each printed circle the ink covers.

Each option's circle is the ellipse inscribed in its box. The ink is drawn as a line PEN_WIDTH_MM
wide onto a CELL_MM grid over the ellipse, and coverage is the share of the ellipse's cells it
touches, in numpy (a few hundred cells by a few hundred ink points per bubble).

A bubble counts as filled from FILLED coverage and as empty up to EMPTY; in between (a tick
through it, a stray line across it, a half-hearted fill) it is unclear, and the reading lists it
so that the answer goes to review whatever the confidence. The probability that a bubble is
filled is a logistic in coverage centred between the two thresholds, reaching 0.95 at either,
and the confidence of a reading is the product over all options of the probability of the state
it was read in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gateway.scoring.segment import densify

PEN_WIDTH_MM = 0.5
CELL_MM = 0.25
EMPTY = 0.05
FILLED = 0.40
_CENTRE = (EMPTY + FILLED) / 2
_SLOPE = np.log(19.0) / (FILLED - _CENTRE)  # logistic = 0.95 at FILLED, 0.05 at EMPTY

Box = tuple[float, float, float, float]


def coverage(strokes: Sequence[np.ndarray], box: Box) -> float:
    """Share (0..1) of the ellipse inscribed in `box` that the ink covers."""
    x, y, w, h = box
    cx = np.arange(x + CELL_MM / 2, x + w, CELL_MM)
    cy = np.arange(y + CELL_MM / 2, y + h, CELL_MM)
    gx, gy = np.meshgrid(cx, cy)
    inside = ((gx - x - w / 2) / (w / 2)) ** 2 + ((gy - y - h / 2) / (h / 2)) ** 2 <= 1.0
    cells = np.stack([gx[inside], gy[inside]], axis=1)
    if len(cells) == 0:
        return 0.0
    radius = PEN_WIDTH_MM / 2 + CELL_MM / 2
    ink = np.concatenate([densify(s, CELL_MM / 2) for s in strokes])
    near = ink[
        (ink[:, 0] >= x - radius)
        & (ink[:, 0] <= x + w + radius)
        & (ink[:, 1] >= y - radius)
        & (ink[:, 1] <= y + h + radius)
    ]
    if len(near) == 0:
        return 0.0
    d2 = ((cells[:, None, :] - near[None, :, :]) ** 2).sum(axis=2)
    return float((d2.min(axis=1) <= radius * radius).mean())


def p_filled(cover: float) -> float:
    return float(1.0 / (1.0 + np.exp(-_SLOPE * (cover - _CENTRE))))


def read_bubbles(
    strokes: Sequence[np.ndarray], options: Mapping[str, Box]
) -> tuple[str, float, str]:
    """The filled options and the unclear ones (names in template order), and the confidence."""
    covers = {name: coverage(strokes, box) for name, box in options.items()}
    filled = "".join(name for name, c in covers.items() if c >= _CENTRE)
    unclear = "".join(name for name, c in covers.items() if EMPTY < c < FILLED)
    confidence = 1.0
    for c in covers.values():
        p = p_filled(c)
        confidence *= max(p, 1.0 - p)
    return filled, confidence, unclear
