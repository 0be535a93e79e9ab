"""The replay page's drawing surface: one empty SVG path per stroke, filled in by the page's script
as playback time passes. Only numbers formatted here reach the markup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from central.svg import STROKE_WIDTH_MM, _num

PAD_MM = 3.0
MAX_WIDTH_PX = 720.0


def bounds(strokes: Sequence[dict[str, Any]]) -> tuple[float, float, float, float]:
    xs = [p[0] for s in strokes for p in s["points"]]
    ys = [p[1] for s in strokes for p in s["points"]]
    if not xs:
        return 0.0, 0.0, 10.0, 10.0
    return min(xs), min(ys), max(max(xs) - min(xs), 1.0), max(max(ys) - min(ys), 1.0)


def replay_svg(strokes: Sequence[dict[str, Any]]) -> str:
    x, y, w, h = bounds(strokes)
    view_w, view_h = w + 2 * PAD_MM, h + 2 * PAD_MM
    scale = MAX_WIDTH_PX / view_w
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" id="board"'
        f' viewBox="{_num(x - PAD_MM)} {_num(y - PAD_MM)} {_num(view_w)} {_num(view_h)}"'
        f' width="{_num(view_w * scale)}" height="{_num(view_h * scale)}">',
        f'<g fill="none" stroke="#123" stroke-width="{_num(STROKE_WIDTH_MM * 1.5)}"'
        ' stroke-linecap="round" stroke-linejoin="round">',
    ]
    parts.extend(
        f'<path class="stroke" id="stroke-{i}" data-t0-ms="{int(s["t0_ms"])}" d=""/>'
        for i, s in enumerate(strokes)
    )
    parts.append("</g></svg>")
    return "".join(parts)
