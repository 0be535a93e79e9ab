"""Ink in one answer box, before any recogniser sees it: blank, scribble, or characters.

Strokes here are in page millimetres (the gateway's units), each an array (k, 2) of x, y.

- **Blank**: all the ink fits in a BLANK_MM square and is shorter than twice that: the pen touched
  the paper, nothing was written.
- **Scribble**: the pen path is more than SCRIBBLE_RATIO times the diagonal of the ink's bounding
  box. Written characters stay far below (at most 4.6 for every capital A-D in UNIPEN, 3.0 for
  every pendigits digit); hatching an answer out, or a tangle, goes far above.
- **Characters**: two strokes belong to one character when their x-ranges (the x-projection)
  overlap by more than CHAR_OVERLAP of the narrower one, or when their ink comes within TOUCH of
  the ink's height of each other; characters are the connected groups, left to right. So the bar
  of a 5, the stem of a D or the crossbar joining the legs of an A stays with its character,
  while characters written apart by more than TOUCH of their height (1.2 mm for 8 mm digits)
  stay apart. Groups smaller than SPECK of the ink's height and width (a dot, the tail of a pen
  lift) are specks: not characters, and not read.
- **Not a letter**: a character that is one stroke whose ends are more than STRAIGHT of its path
  apart is a line, which no capital A-D is (a one-stroke A, B, C or D turns back on itself: in
  UJIpenchars and the synthetic capitals the most is 0.67). UNIPEN holds such lines labelled as
  letters, apparently the first stroke of a letter whose other strokes were lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BLANK_MM = 1.0
SCRIBBLE_RATIO = 6.0
CHAR_OVERLAP = 0.25
TOUCH = 0.15
SPECK = 0.3
STRAIGHT = 0.85


def ink_extent(strokes: Sequence[np.ndarray]) -> np.ndarray:
    """Width and height of the bounding box of all points."""
    points = np.concatenate(strokes)
    return np.ptp(points, axis=0)


@dataclass(frozen=True)
class Ink:
    """The size of the ink in a box: bounding-box width and height, and pen-down path length."""

    width: float
    height: float
    length: float

    @classmethod
    def of(cls, strokes: Sequence[np.ndarray]) -> Ink:
        if not strokes:
            return cls(0.0, 0.0, 0.0)
        points = strokes[0] if len(strokes) == 1 else np.concatenate(strokes)
        step = points[1:] - points[:-1]
        if len(strokes) > 1:
            # Pen-up jumps between strokes are not ink.
            step[np.cumsum([len(s) for s in strokes[:-1]]) - 1] = 0.0
        width, height = points.max(axis=0) - points.min(axis=0)
        length = np.sqrt(np.einsum("ij,ij->i", step, step)).sum()
        return cls(float(width), float(height), float(length))

    @property
    def blank(self) -> bool:
        return max(self.width, self.height) <= BLANK_MM and self.length <= 2 * BLANK_MM

    @property
    def scribble(self) -> bool:
        diagonal = float(np.hypot(self.width, self.height))
        return self.length > SCRIBBLE_RATIO * max(diagonal, BLANK_MM)


def straight_line(strokes: Sequence[np.ndarray]) -> bool:
    """True when the character is a single stroke that is (nearly) a straight line."""
    if len(strokes) != 1 or len(strokes[0]) < 2:
        return False
    (stroke,) = strokes
    path = float(np.hypot(*np.diff(stroke[:, :2], axis=0).T).sum())
    chord = float(np.hypot(*(stroke[-1, :2] - stroke[0, :2])))
    return path > 0 and chord > STRAIGHT * path


def characters(strokes: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    """The strokes grouped into characters, left to right, specks left out."""
    if len(strokes) < 2:
        return [list(strokes)] if strokes else []
    n = len(strokes)
    box_lo = np.array([s.min(axis=0) for s in strokes])
    box_hi = np.array([s.max(axis=0) for s in strokes])
    lo, hi = box_lo[:, 0], box_hi[:, 0]
    size = box_hi.max(axis=0) - box_lo.min(axis=0)
    touch = TOUCH * max(float(size[1]), BLANK_MM)
    dense: dict[int, np.ndarray] = {}  # densified only when nothing cheaper decides
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def touching(i: int, j: int) -> bool:
        if (box_lo[i] > box_hi[j] + touch).any() or (box_lo[j] > box_hi[i] + touch).any():
            return False
        for k in (i, j):
            if k not in dense:
                dense[k] = densify(strokes[k], touch / 2)
        return _touches(dense[i], dense[j], touch)

    # Any two strokes of one character join it, so a crossbar joins the legs of an A even when
    # the legs themselves do not meet.
    for i in range(n):
        for j in range(i + 1, n):
            if root(i) == root(j):
                continue
            overlap = min(hi[i], hi[j]) - max(lo[i], lo[j])
            narrower = min(hi[i] - lo[i], hi[j] - lo[j])
            if overlap > CHAR_OVERLAP * narrower or touching(i, j):
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    ordered = sorted(groups.values(), key=lambda g: float(lo[g].min() + hi[g].max()))
    # Strokes stay in writing order inside a character: the recognisers learnt that order.
    chars = [[strokes[i] for i in g] for g in ordered]
    if len(chars) == 1:
        return chars
    return [c for c in chars if (ink_extent(c) > SPECK * size).any()]


def densify(stroke: np.ndarray, step: float) -> np.ndarray:
    """The stroke with extra points so that no two neighbours are more than `step` apart."""
    if len(stroke) < 2:
        return stroke
    seg = np.hypot(*np.diff(stroke, axis=0).T)
    cum = np.concatenate(([0.0], np.cumsum(seg)))
    if cum[-1] <= 0:
        return stroke[:1]
    at = np.linspace(0.0, cum[-1], max(int(np.ceil(cum[-1] / step)) + 1, 2))
    return np.stack([np.interp(at, cum, stroke[:, 0]), np.interp(at, cum, stroke[:, 1])], axis=1)


def _touches(a: np.ndarray, b: np.ndarray, distance: float) -> bool:
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
    return bool(d2.min() <= distance * distance)
