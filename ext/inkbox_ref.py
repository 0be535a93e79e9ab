"""Reference for ext/inkbox.pyx: which answer box a stroke belongs to, by the most-ink rule.

Boxes are (lo, hi) corner arrays (n, 2), already grown by the template's margin; a point on a
border is inside. The stroke (k, 2) belongs to the box holding most of its points, if that box
holds at least half of them; among boxes holding equally many, to the one whose centre is nearest
the stroke's centroid (the first of them in box order if still tied). Returns the box's index, or
-1 for a stroke that belongs to no box (a NaN coordinate makes it belong to none).
"""

from __future__ import annotations

import numpy as np


def most_ink_box(lo: np.ndarray, hi: np.ndarray, xy: np.ndarray) -> int:
    if len(xy) == 0 or len(lo) == 0:
        return -1
    near = np.flatnonzero((lo <= xy.max(axis=0)).all(axis=1) & (hi >= xy.min(axis=0)).all(axis=1))
    if len(near) == 0:
        return -1
    inside = (xy[None] >= lo[near, None]) & (xy[None] <= hi[near, None])
    ink = inside.all(axis=2).sum(axis=1)
    best = int(ink.max())
    if best == 0 or 2 * best < len(xy):
        return -1
    # Summed in writing order (cumsum is sequential, unlike mean), as the kernel sums, so that a
    # stroke exactly between two boxes goes to the same one in both.
    centroid = np.cumsum(xy, axis=0)[-1] / len(xy)
    tied = near[ink == best]
    centres = (lo[tied] + hi[tied]) / 2
    return int(tied[int(np.argmin(((centres - centroid) ** 2).sum(axis=1)))])
