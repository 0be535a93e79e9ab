"""Split a group of strokes that may be two digits run into each other, or keep it whole.

`segment.characters` joins strokes whose ink touches, so two digits written into each other (a
"17" whose 7 starts on the 1, a "20" whose 0 touches the 2) come out as one character. Here such
a group is tried three ways and the best kept:

- whole, read as one character;
- cut between strokes: in writing order (digits are written one after the other, left to right)
  and ordered by the centre of their x-range, cut into a first and a second set;
- cut at an x-projection minimum: the pen path densified and counted in columns; at each of the
  lowest interior minima every stroke is cut where it crosses that x, the ink left of it going
  to the left digit.

Each cut is read as two characters with the product of their confidences, as a number is; a cut
replaces the whole reading only when that product beats the whole reading's confidence (times
SPLIT_MARGIN), and only when both sides are at least MIN_PART_HEIGHT of the group's height (a
digit's bar or flag is lower than that and stays with its digit); the sides may be cut again.
Cuts are tried only on groups at least MIN_SPLIT_WIDTH of their height wide, and only while the
region may still hold more digits. The margin and width were chosen on numbers composed from
pendigits' training writers, with the digit model of the time (touching: 9 % read right without
cuts, 78 % with; digits written apart and single digits: unchanged); `bench.scoring` reports
today's figures on held-out writers. Since
the digit model learnt touching pairs as `recognizer.NOT_ONE_CHARACTER`, a pair kept whole reads
with little confidence: the cut wins more often, and a pair left whole is more often reviewed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.scoring.recognizer import Prediction, Recognizer
from gateway.scoring.segment import densify

SPLIT_MARGIN = 1.0
# The reading's confidence is multiplied by this once per cut, for what the digits' confidences do
# not see of a wrong cut. It was 0.86, the share of right cuts, while the digit model knew nothing
# of touching pairs; since it learns them (recognizer.NOT_ONE_CHARACTER), the factor that best fits
# whether readings with cuts are right (likelihood, 1,647 numbers of pendigits training writers
# kept out of a model trained on the others) is 0.99: the digits' confidences now price the cut in.
CUT_CONFIDENCE = 0.99
MIN_PART_HEIGHT = 0.45
# Groups narrower than this times their height are one digit (a 1, a 7); no cut is tried.
MIN_SPLIT_WIDTH = 0.7
# Columns of the x-projection, and how many of its interior minima are tried as cuts.
COLUMNS = 16
PROJECTION_CUTS = 3
# Cuts are looked for in the middle of the group only: a digit is not this narrow.
CUT_ZONE = (0.2, 0.8)


@dataclass(frozen=True)
class Part:
    strokes: list[np.ndarray]
    prediction: Prediction
    # For a group kept whole: the best cut's product confidence (0 when none was tried), so the
    # reader can tell a clear single digit from one that read almost as well as two.
    rival: float = 0.0


def read_group(
    recognizer: Recognizer, field: str, strokes: Sequence[np.ndarray], room: int
) -> list[Part]:
    """The group read whole or, when a cut reads clearly better, as two characters, each of which
    may be cut again; at most `room` cuts in all (how many more characters the region holds)."""
    whole = [Part(list(strokes), recognizer.predict(field, strokes))]
    if room < 1:
        return whole
    points = np.concatenate(strokes)
    lo, hi = points.min(axis=0), points.max(axis=0)
    width, height = hi - lo
    if height <= 0 or width < MIN_SPLIT_WIDTH * height:
        return whole
    best, best_confidence = None, whole[0].prediction.confidence * SPLIT_MARGIN
    rival = 0.0
    for left, right in candidate_cuts(strokes, float(lo[0]), float(width)):
        if min(_height(left), _height(right)) < MIN_PART_HEIGHT * height:
            continue
        confidence = (
            recognizer.predict(field, left).confidence * recognizer.predict(field, right).confidence
        )
        rival = max(rival, confidence)
        if confidence > best_confidence:
            best, best_confidence = (left, right), confidence
    if best is None:
        return [Part(whole[0].strokes, whole[0].prediction, rival)]
    first = read_group(recognizer, field, best[0], room - 1)
    return first + read_group(recognizer, field, best[1], room - len(first))


def candidate_cuts(
    strokes: Sequence[np.ndarray], left_x: float, width: float
) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
    """Left and right stroke sets, from stroke boundaries and then from projection minima."""
    cuts: list[tuple[list[np.ndarray], list[np.ndarray]]] = []
    if len(strokes) > 1:
        cuts += [(list(strokes[:i]), list(strokes[i:])) for i in range(1, len(strokes))]
        centre = [float(s[:, 0].min() + s[:, 0].max()) for s in strokes]
        order = sorted(range(len(strokes)), key=centre.__getitem__)
        if order != sorted(order):
            cuts += [
                ([strokes[k] for k in order[:i]], [strokes[k] for k in order[i:]])
                for i in range(1, len(order))
            ]
    for x in projection_minima(strokes, left_x, width):
        left, right = cut_at(strokes, x)
        if left and right:
            cuts.append((left, right))
    return cuts


def projection_minima(strokes: Sequence[np.ndarray], left_x: float, width: float) -> list[float]:
    """x positions of the emptiest interior columns of the ink, lowest first."""
    step = width / (COLUMNS * 4)
    xs = np.concatenate([densify(s, step)[:, 0] for s in strokes])
    counts, edges = np.histogram(xs, bins=COLUMNS, range=(left_x, left_x + width))
    first, last = int(CUT_ZONE[0] * COLUMNS), int(np.ceil(CUT_ZONE[1] * COLUMNS))
    interior = [
        i
        for i in range(max(first, 1), min(last, COLUMNS - 1))
        if counts[i] <= counts[i - 1] and counts[i] <= counts[i + 1]
    ]
    interior.sort(key=lambda i: (counts[i], i))
    return [float((edges[i] + edges[i + 1]) / 2) for i in interior[:PROJECTION_CUTS]]


def cut_at(strokes: Sequence[np.ndarray], x: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every stroke cut where it crosses x: the runs of points left of x, and those right of it."""
    left: list[np.ndarray] = []
    right: list[np.ndarray] = []
    for stroke in strokes:
        is_left = stroke[:, 0] < x
        breaks = np.flatnonzero(is_left[1:] != is_left[:-1]) + 1
        for run in np.split(stroke, breaks):
            (left if run[0, 0] < x else right).append(run)
    return left, right


def _height(strokes: list[np.ndarray]) -> float:
    ys = np.concatenate([s[:, 1] for s in strokes])
    return float(ys.max() - ys.min())
