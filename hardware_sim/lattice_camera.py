"""The camera of a simulated lattice pen: the real printed pattern under a moving nib.

For each sample of a stroke the camera images the 8×8 dots around the nib from the pattern the
booklet was printed with (ext.lattice.encode at the page's place in the lattice, lattice.md), turned
as the pen is held, and occasionally misreads a dot, as smudges and ink bleed make real cameras do.
"""

from __future__ import annotations

import math
import random

import numpy as np

from classink.lattice_pages import PITCH_MM, PageAddress, page_origin
from ext import lattice
from hardware_sim import pen_wire

WINDOW = 8
NIB_DOT = 3  # the nib sits between the window's 4th and 5th dots, where a camera centres
# Displacement code (x_bit + 2 y_bit) after a counter-clockwise quarter turn of the image:
# north→west→south→east→north.
COUNTER_CLOCKWISE = np.array([1, 3, 0, 2], dtype=np.uint8)


def turn(window: np.ndarray, nib: tuple[float, float], quarter_turns: int):
    """The window and nib as a camera turned `quarter_turns` counter-clockwise sees them."""
    codes = window[..., 0] + 2 * window[..., 1]
    x, y = nib
    for _ in range(quarter_turns % 4):
        codes = COUNTER_CLOCKWISE[np.rot90(codes, 1)]
        x, y = y, WINDOW - 1 - x
    return np.stack([codes & 1, codes >> 1], axis=-1).astype(np.uint8), (x, y)


class LatticeCamera:
    def __init__(self, quarter_turns: int, misread_rate: float, rng: random.Random) -> None:
        self.quarter_turns = quarter_turns
        self.misread_rate = misread_rate
        self._rng = rng
        self.misreads = 0

    def frame(self, counter: int, dt_ms: int, force: int, page: PageAddress, xy_mm) -> bytes:
        u, v, x0, y0 = page_origin(page)
        gx, gy = x0 + xy_mm[0] / PITCH_MM, y0 + xy_mm[1] / PITCH_MM
        left, top = math.floor(gx) - NIB_DOT, math.floor(gy) - NIB_DOT
        window = lattice.encode(WINDOW, WINDOW, left, top, (u, v))
        seen, (nx, ny) = turn(window, (gx - left, gy - top), self.quarter_turns)
        if self._rng.random() < self.misread_rate:
            r, c = self._rng.randrange(WINDOW), self._rng.randrange(WINDOW)
            code = int(seen[r, c, 0]) + 2 * int(seen[r, c, 1])
            wrong = self._rng.choice([k for k in range(4) if k != code])
            seen[r, c] = (wrong & 1, wrong >> 1)
            self.misreads += 1
        return pen_wire.lattice_frame(counter, dt_ms, force, seen, nx, ny)
