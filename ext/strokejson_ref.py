"""Reference for ext/strokejson.pyx: a stroke's points as the JSON text of an answer's `points`.

`[[x, y, dt, force], …]`: x and y in mm with two decimals (trailing zeros dropped, one kept, as
Python prints a float), dt and force as integers (truncated, as numpy's astype does). The kernel
returns the same bytes; this module states what they are.
"""

from __future__ import annotations

import math

import numpy as np

LIMIT = 1e15


def _mm(value: float) -> str:
    text = f"{value:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def points_json(points: np.ndarray) -> bytes:
    if points.ndim != 2 or points.shape[1] != 4:
        raise ValueError(f"points must be (k, 4), got shape {points.shape}")
    parts = []
    for x, y, dt, force in points.tolist():
        if not all(math.isfinite(v) and abs(v) < LIMIT for v in (x, y, dt, force)):
            raise ValueError(f"a point out of range (finite, below 1e15): {[x, y, dt, force]}")
        parts.append(f"[{_mm(x)},{_mm(y)},{int(dt)},{int(force)}]")
    return ("[" + ",".join(parts) + "]").encode()
