"""Handwriting as a small inline SVG: the answer box and the strokes written in it.

Everything is in page millimetres, the pen's own coordinates (x right, y down, like SVG), so the
viewBox is simply the answer box grown by a margin. Only numbers formatted here reach the markup,
so nothing from a payload can inject anything into the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

PAD_MM = 2.0
PX_PER_MM = 4.0
MAX_WIDTH_PX = 200.0
STROKE_WIDTH_MM = 0.45

Point = Sequence[float]  # [x_mm, y_mm, dt_ms, force]


def _num(value: float) -> str:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"cannot draw the non-finite coordinate {value!r}")
    text = f"{number:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _stroke(points: Sequence[Point]) -> str:
    if len(points) == 1:
        # A single sample is a dot; a zero-length path is not drawn by every renderer.
        x, y = points[0][0], points[0][1]
        return (
            f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{_num(STROKE_WIDTH_MM / 2)}"'
            ' fill="currentColor" stroke="none"/>'
        )
    first, *rest = points
    line = " ".join(f"{_num(p[0])} {_num(p[1])}" for p in rest)
    return f'<path d="M{_num(first[0])} {_num(first[1])} L{line}"/>'


def answer_svg(strokes: Sequence[Sequence[Point]], box_mm: Sequence[float]) -> str:
    """`strokes` is one list of points per stroke; `box_mm` is `[x, y, w, h]` on the page."""
    x, y, w, h = (float(v) for v in box_mm)
    w, h = max(w, 0.0), max(h, 0.0)
    view_w, view_h = w + 2 * PAD_MM, h + 2 * PAD_MM
    scale = min(PX_PER_MM, MAX_WIDTH_PX / view_w)
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" class="ink"'
        f' viewBox="{_num(x - PAD_MM)} {_num(y - PAD_MM)} {_num(view_w)} {_num(view_h)}"'
        f' width="{_num(view_w * scale)}" height="{_num(view_h * scale)}" aria-hidden="true">',
        f'<rect class="box" x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}"'
        f' fill="none" stroke="#bbb" stroke-width="0.2" stroke-dasharray="1 1"/>',
        f'<g fill="none" stroke="currentColor" stroke-width="{_num(STROKE_WIDTH_MM)}"'
        ' stroke-linecap="round" stroke-linejoin="round">',
    ]
    parts.extend(_stroke(points) for points in strokes if points)
    parts.append("</g></svg>")
    return "".join(parts)
