"""Synthetic handwritten capitals A-D, to widen a training set of 16 real samples per letter.

The data sets whose terms allow training hold upper-case A-D from only eight writers, too few to
show the ways children write them: stroke order, one stroke or three, a stem drawn up or down,
a flat-topped or round D, an open or closed C, a round "a" for A. Each letter here is a set of
stroke plans in a unit box (x right, y down); every call jitters the key points, the bowl sizes
and the proportions, rounds the corners by a random amount, and returns strokes in writing
order. The training code then distorts them again as it does real samples. Used by training
only, never on the gateway.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Stroke = np.ndarray
Plan = Callable[[np.random.Generator, float], list[list[np.ndarray]]]

# Spacing of the densified polyline, in units of the letter's height.
STEP = 0.02


def _arc(
    cx: float, cy: float, rx: float, ry: float, start_deg: float, end_deg: float
) -> list[np.ndarray]:
    """Points along an ellipse; angles in degrees with y down (90 is the bottom)."""
    n = max(int(abs(end_deg - start_deg) / 12), 3)
    a = np.radians(np.linspace(start_deg, end_deg, n))
    return list(np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], axis=1))


def _p(x: float, y: float) -> np.ndarray:
    return np.array([x, y])


def _bar(rng: np.random.Generator, w: float, height: float, shrink: float) -> list[np.ndarray]:
    """A crossbar at `height`, drawn left to right or, less often, right to left."""
    left, right = _p(shrink * w, height), _p((1 - shrink) * w, height)
    return [left, right] if rng.random() < 0.8 else [right, left]


def _a_two(rng: np.random.Generator, w: float) -> list[list[np.ndarray]]:
    bar = rng.uniform(0.5, 0.72)
    shrink = bar / 2 * rng.uniform(0.7, 1.1)
    return [[_p(0, 1), _p(w / 2, 0), _p(w, 1)], _bar(rng, w, bar, shrink)]


def _a_three(rng: np.random.Generator, w: float) -> list[list[np.ndarray]]:
    bar = rng.uniform(0.5, 0.72)
    shrink = bar / 2 * rng.uniform(0.7, 1.1)
    apex = _p(w / 2, 0)
    return [[apex, _p(0, 1)], [apex, _p(w, 1)], _bar(rng, w, bar, shrink)]


def _a_one(rng: np.random.Generator, w: float) -> list[list[np.ndarray]]:
    # Up the left leg, down the right, back up it to the bar and across to the left leg.
    bar = rng.uniform(0.5, 0.72)
    shrink = bar / 2
    return [[_p(0, 1), _p(w / 2, 0), _p(w, 1), _p((1 - shrink) * w, bar), _p(shrink * w, bar)]]


def _a_round(rng: np.random.Generator, w: float) -> list[list[np.ndarray]]:
    # The round "a" many people write even when asked for capitals: a bowl closed by a stem on its
    # right, in one stroke or two. Without it, UNIPEN's round A's were read as C.
    start = rng.uniform(-40, -10)
    bowl = _arc(w / 2, 0.62, w / 2, 0.38, start, start - 330)
    stem_x = w * rng.uniform(0.9, 1.0)
    stem = [_p(stem_x, 0.22), _p(stem_x, 1.0)]
    return [bowl + stem] if rng.random() < 0.5 else [bowl, stem]


def _stem(rng: np.random.Generator) -> list[np.ndarray]:
    return [_p(0, 0), _p(0, 1)] if rng.random() < 0.85 else [_p(0, 1), _p(0, 0)]


def _bowls(rng: np.random.Generator, w: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """B's upper and lower bowls, from the top of the stem to its foot; the lower often wider."""
    waist = rng.uniform(0.4, 0.55)
    upper_w = w * rng.uniform(0.6, 0.95)
    upper = _arc(0, waist / 2, upper_w, waist / 2, -90, 90)
    lower = _arc(0, (1 + waist) / 2, w, (1 - waist) / 2, -90, 90)
    return upper, lower


def _b_two(rng: np.random.Generator, w: float) -> list[list[np.ndarray]]:
    upper, lower = _bowls(rng, w)
    return [_stem(rng), upper + lower]


def _b_three(rng: np.random.Generator, w: float) -> list[list[np.ndarray]]:
    upper, lower = _bowls(rng, w)
    return [_stem(rng), upper, lower]


def _b_one(rng: np.random.Generator, w: float) -> list[list[np.ndarray]]:
    upper, lower = _bowls(rng, w)
    return [[_p(0, 0), _p(0, 1), _p(0.03 * w, 0.02)] + upper + lower]


def _c(rng: np.random.Generator, w: float) -> list[list[np.ndarray]]:
    start = rng.uniform(-75, -15)
    end = rng.uniform(-345, -285)
    return [_arc(w / 2, 0.5, w / 2, 0.5, start, end)]


def _d_bow(rng: np.random.Generator, w: float) -> list[np.ndarray]:
    flat = rng.uniform(0.0, 0.45) * w
    return [_p(0, 0), *_arc(flat, 0.5, w - flat, 0.5, -90, 90), _p(0, 1)]


def _d_two(rng: np.random.Generator, w: float) -> list[list[np.ndarray]]:
    return [_stem(rng), _d_bow(rng, w)]


def _d_up(rng: np.random.Generator, w: float) -> list[list[np.ndarray]]:
    # Up the stem and round the bow in one stroke: slanted, this is the D most often misread.
    return [[_p(0, 1), *_d_bow(rng, w)]]


def _d_looped(rng: np.random.Generator, w: float) -> list[list[np.ndarray]]:
    # The joined-up D: down the stem, a small loop at its foot, then the bow from the bottom up.
    flat = rng.uniform(0.0, 0.3) * w
    loop = [_p(-0.12 * w, 0.97), _p(-0.06 * w, 0.86), _p(0.06 * w, 0.97)]
    return [[_p(0, 0), _p(0, 1), *loop, *_arc(flat, 0.5, w - flat, 0.5, 90, -90), _p(0, 0.02)]]


def _d_one(rng: np.random.Generator, w: float) -> list[list[np.ndarray]]:
    return [[_p(0, 0), _p(0, 1), _p(0.03 * w, 0.02), *_d_bow(rng, w)[1:]]]


# Plans with a weight: how common each way of writing the letter is, roughly.
PLANS: dict[str, tuple[tuple[Plan, float], ...]] = {
    "A": ((_a_two, 0.5), (_a_three, 0.3), (_a_one, 0.2), (_a_round, 0.2)),
    "B": ((_b_two, 0.5), (_b_three, 0.3), (_b_one, 0.2)),
    "C": ((_c, 1.0),),
    "D": ((_d_two, 0.5), (_d_one, 0.2), (_d_up, 0.15), (_d_looped, 0.15)),
}
WIDTH = {"A": (0.7, 1.1), "B": (0.5, 0.8), "C": (0.6, 1.0), "D": (0.6, 0.95)}


def _densify(points: list[np.ndarray]) -> np.ndarray:
    out = [points[0][None, :]]
    for a, b in zip(points[:-1], points[1:], strict=True):
        n = max(int(np.hypot(*(b - a)) / STEP), 1)
        t = np.linspace(0, 1, n + 1)[1:, None]
        out.append(a + (b - a) * t)
    return np.concatenate(out)


def _round_corners(stroke: np.ndarray, width: int) -> np.ndarray:
    """A moving average over `width` points: a hand rounds the corners a plan draws sharp."""
    if width < 2 or len(stroke) <= width:
        return stroke
    kernel = np.ones(width) / width
    padded = np.concatenate(
        [
            np.repeat(stroke[:1], width // 2, 0),
            stroke,
            np.repeat(stroke[-1:], width - 1 - width // 2, 0),
        ]
    )
    return np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in (0, 1)], axis=1)


def _bend(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth random displacement field: it bends lines and squashes bowls without the
    zig-zag that independent noise on every point of a curve would draw."""
    out = points.copy()
    for axis in (0, 1):
        for _ in range(2):
            frequency = rng.normal(0.0, 1.2, size=2)
            phase = rng.uniform(0, 2 * np.pi)
            out[:, axis] += rng.normal(0.0, 0.03) * np.sin(2 * np.pi * points @ frequency + phase)
    return out


def letter(label: str, rng: np.random.Generator) -> list[Stroke]:
    """One synthetic writing of capital `label` (A-D), as strokes of [x, y] points."""
    plans = PLANS[label]
    weights = np.array([weight for _, weight in plans])
    plan = plans[rng.choice(len(plans), p=weights / weights.sum())][0]
    w = rng.uniform(*WIDTH[label])
    strokes = []
    for key_points in plan(rng, w):
        # Each stroke lands a little off where the plan puts it, as pen lifts do.
        dense = _densify(key_points) + rng.normal(0.0, 0.025, size=2)
        strokes.append(_round_corners(dense, int(rng.integers(1, 6))))
    # Strong forward slant is common in joined-up hands and beyond what training adds to all.
    points = np.concatenate(strokes)
    points[:, 0] -= rng.uniform(-0.1, 0.35) * (points[:, 1] - 0.5)
    bent = _bend(points, rng)
    return np.split(bent, np.cumsum([len(s) for s in strokes[:-1]]))


def letters(
    labels: tuple[str, ...], per_label: int, rng: np.random.Generator
) -> tuple[list[list[Stroke]], list[str]]:
    """`per_label` synthetic writings of every label, in label order."""
    answers = [letter(label, rng) for label in labels for _ in range(per_label)]
    return answers, [label for label in labels for _ in range(per_label)]
