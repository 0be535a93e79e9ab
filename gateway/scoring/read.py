"""Read what was written in one answer region, whatever its kind (protocol_specs/exam-template.md).

Every reading has a label and a confidence. Answers of several characters (numbers, student ids,
several choices, a teacher's score) are split into characters (`segment.characters`), each read by
the single-character model, and the confidence is the **product** of the characters' confidences:
the probability that every character is right if their errors are independent, so one doubtful
digit is enough to send the whole number for review.

Outcomes besides an ordinary reading:
- `blank`: only a touch of the pen (segment.Ink.blank), or a bubble region with no bubble filled;
- `review`, with a reason, when no reading should be scored whatever the confidence: a scribble,
  two answers in a single-answer box, a bubble neither empty nor filled, more (or, for a student
  id, other) digits than the region has, characters run together, a letter chosen twice, a free
  response (always for a person).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gateway.scoring.bubbles import read_bubbles
from gateway.scoring.recognizer import Recognizer
from gateway.scoring.segment import Ink, characters, ink_extent
from gateway.templates import Region

# A character wider than this times its height is taken for two written into each other. About 1 %
# of pendigits digits and 3 % of UNIPEN's are that wide alone, and go to review; two digits that
# run together and stay narrower (11, 17) are read as one: the limit of splitting by x-projection.
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
    parts = [recognizer.predict(field, c) for c in chars]
    confidence = math.prod(p.confidence for p in parts)
    joiner = "+" if field == "mark" else ""
    label = joiner.join(p.label for p in parts)
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


def _run_together(strokes: list[np.ndarray]) -> bool:
    width, height = ink_extent(strokes)
    return bool(width > RUN_TOGETHER * max(height, 1e-9))
