"""Read what was written in one answer region, whatever its kind (protocol_specs/exam-template.md).

Every reading has a label and a confidence. Answers of several characters (numbers, student ids,
several choices, a teacher's score) are split into characters (`segment.characters`), each read by
the single-character model (a digit group that may be two digits run together is also tried cut in
two, `split.read_group`), and the confidence is the **product** of the characters' confidences:
the probability that every character is right if their errors are independent, so one doubtful
digit is enough to send the whole number for review (times `split.CUT_CONFIDENCE` per cut made).

Outcomes besides an ordinary reading:
- `blank`: only a touch of the pen (segment.Ink.blank), or a bubble region with no bubble filled;
- `review`, with a reason, when no reading should be scored whatever the confidence: a scribble,
  two answers in a single-answer box, a bubble neither empty nor filled, more (or, for a student
  id, other) digits than the region has, characters run together, a digit that reads almost as
  well cut in two (`maybe_two_digits`: touching digits still read as one), a letter chosen twice, a
  straight line where a letter A-D should be (`segment.straight_line`), a free response (always
  for a person).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gateway.scoring.bubbles import read_bubbles
from gateway.scoring.recognizer import Prediction, Recognizer
from gateway.scoring.segment import Ink, characters, ink_extent, straight_line
from gateway.scoring.split import CUT_CONFIDENCE, read_group
from gateway.templates import MAX_NUMBER_DIGITS, Region

# A character wider than this times its height, even after `split.read_group` tried cutting it, is
# taken for two written into each other and goes to review. About 1 % of pendigits digits and 3 %
# of UNIPEN's are that wide alone.
RUN_TOGETHER = 1.3
# Which single-character model reads each kind's characters.
CHARACTER_FIELD = {
    "digit": "digit",
    "number": "digit",
    "student_id": "digit",
    "score": "digit",
    "choice": "choice",
    "choices": "choice",
    "mark": "mark",
}
SINGLE = ("digit", "choice", "mark")
# A digit kept whole goes to review when a cut into two read at least AMBIGUOUS_CUT times as well
# (`split.Part.rival`) and the digit is at least AMBIGUOUS_WIDTH times as wide as it is high: two
# digits written into each other that still read as one. Chosen on numbers composed from
# pendigits' training writers: of touching numbers, the scored share read wrong fell from 12.9 %
# to 9.4 %, for 0.8 points more review of digits written apart and 0.4 of single digits.
AMBIGUOUS_CUT = 0.9
AMBIGUOUS_WIDTH = 1.0

Outcome = Literal["read", "blank", "review"]


@dataclass(frozen=True)
class Reading:
    label: str
    confidence: float
    outcome: Outcome = "read"
    reason: str | None = None  # why a person must look, when outcome is "review"


def read_region(
    recognizer: Recognizer, region: Region, strokes: Sequence[np.ndarray], kind: str | None = None
) -> Reading:
    """Read the strokes (page mm, (k, 2) each) written in `region`; `kind` overrides the
    region's kind (a teacher's tick beside a digit answer is read as a mark)."""
    kind = kind or region.kind
    strokes = [np.asarray(s, dtype=np.float64)[:, :2] for s in strokes]
    ink = Ink.of(strokes)
    if ink.blank:
        return Reading("blank", 1.0, "blank")
    if kind == "free":
        return Reading("free", 1.0, "review", "free_response")
    if kind == "bubble":
        filled, confidence, unclear = read_bubbles(strokes, region.options_mm or {})
        if unclear:
            return Reading(filled or "blank", confidence, "review", "unclear_bubble")
        if not filled:
            return Reading("blank", confidence, "blank")
        if len(filled) > 1 and not region.multiple:
            return Reading(filled, confidence, "review", "two_answers")
        return Reading(filled, confidence)
    if ink.scribble:
        return Reading("scribble", 0.0, "review", "scribble")
    chars = characters(strokes)
    field = CHARACTER_FIELD[kind]
    cuts = 0
    maybe_two = False
    if kind in SINGLE or field != "digit":
        parts = [recognizer.predict(field, c) for c in chars]
    else:
        cut_from = len(chars)
        chars, parts, rivals = _read_digits(recognizer, region, chars)
        cuts = len(chars) - cut_from
        maybe_two = any(
            r >= AMBIGUOUS_CUT * p.confidence and _wider_than(c, AMBIGUOUS_WIDTH)
            for r, p, c in zip(rivals, parts, chars, strict=True)
        )
    # A cut may be wrong even when both sides read well: each counts as one more doubt.
    confidence = math.prod(p.confidence for p in parts) * CUT_CONFIDENCE**cuts
    joiner = "+" if field == "mark" else ""
    label = joiner.join(p.label for p in parts)
    if maybe_two:
        return Reading(label, confidence, "review", "maybe_two_digits")
    if field == "choice" and any(straight_line(c) for c in chars):
        return Reading(label, confidence, "review", "not_a_letter")
    if kind in SINGLE:
        if len(parts) > 1:
            return Reading(label, confidence, "review", "two_answers")
        return Reading(label, confidence)
    if any(_run_together(c) for c in chars):
        return Reading(label, confidence, "review", "run_together")
    if kind == "choices":
        letters = sorted(label)
        if len(set(letters)) != len(letters):
            return Reading(label, confidence, "review", "repeated_choice")
        return Reading("".join(letters), confidence)
    if kind == "student_id" and len(label) != region.digits:
        return Reading(label, confidence, "review", "wrong_digit_count")
    if kind == "number" and region.digits is not None and len(label) > region.digits:
        return Reading(label, confidence, "review", "too_many_digits")
    return Reading(label, confidence)


def _read_digits(
    recognizer: Recognizer, region: Region, chars: list[list[np.ndarray]]
) -> tuple[list[list[np.ndarray]], list[Prediction], list[float]]:
    """Each group read as one digit or, while the region has room for more, maybe as two; with
    each digit's rival (split.Part.rival)."""
    count = len(chars)
    out_chars: list[list[np.ndarray]] = []
    out_parts: list[Prediction] = []
    rivals: list[float] = []
    for c in chars:
        room = (region.digits or MAX_NUMBER_DIGITS) - count
        group = read_group(recognizer, "digit", c, room)
        count += len(group) - 1
        out_chars += [part.strokes for part in group]
        out_parts += [part.prediction for part in group]
        rivals += [part.rival for part in group]
    return out_chars, out_parts, rivals


def _run_together(strokes: list[np.ndarray]) -> bool:
    return _wider_than(strokes, RUN_TOGETHER)


def _wider_than(strokes: list[np.ndarray], times_height: float) -> bool:
    width, height = ink_extent(strokes)
    return bool(width > times_height * max(height, 1e-9))
