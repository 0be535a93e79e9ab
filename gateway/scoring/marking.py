"""Marking mode: what a teacher's pen writes on a student's paper becomes that student's marks.

A pen is a teacher's when its roster entry is `teacher:<teacher id>` (the roster format of
firmware_bridge/registry.py is otherwise unchanged). A teacher's stroke goes to the question it
marks (`Page.locate_mark`): a tick or a cross on or beside an answer is read by the mark model, a
number in a score box by the digit model, character by character (confidence: the product).

- tick: full points, correct; cross: no points, not correct (`kind` `teacher_mark`);
- a number n in a score box: n points, correct when n is the question's full points (`kind`
  `score`); more than the question is worth goes to review (`over_maximum`);
- a blank (a touch of the pen) is no mark at all: counted and logged by the pipeline, not sent;
- below the confidence threshold, or anything `read_region` sends to review: review, no score;
- on a page that is not a known student's booklet page, whose paper it is cannot be known:
  review (`unknown_student`), so that a person attributes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gateway.scoring.read import Reading, read_region
from gateway.scoring.recognizer import Recognizer
from gateway.scoring.score import Score
from gateway.templates import ExamTemplate, Region

TEACHER_PREFIX = "teacher:"


def split_roster(roster: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(pen -> student id, pen -> teacher id) from one roster."""
    students = {pen: who for pen, who in roster.items() if not who.startswith(TEACHER_PREFIX)}
    teachers = {
        pen: who.removeprefix(TEACHER_PREFIX)
        for pen, who in roster.items()
        if who.startswith(TEACHER_PREFIX) and len(who) > len(TEACHER_PREFIX)
    }
    return students, teachers


@dataclass(frozen=True)
class Mark:
    kind: str  # "teacher_mark" or "score"
    question: Region
    reading: Reading
    score: Score
    box_mm: tuple[float, float, float, float]


def read_mark(
    recognizer: Recognizer,
    template: ExamTemplate,
    region: Region,
    strokes: Sequence[np.ndarray],
    student_known: bool,
    review_below: float,
) -> Mark | None:
    """The mark a teacher's strokes in `region` give; None for a blank (nothing to send)."""
    if region.kind == "score":
        question = template.question(region.scores or "")
        if question is None:
            raise ValueError(f"score box {region.question_id} scores an unknown question")
        reading = read_region(recognizer, region, strokes)
        kind, box = "score", region.box_mm
    else:
        question = region
        reading = read_region(recognizer, region, strokes, kind="mark")
        kind, box = "teacher_mark", _union(region.box_mm, region.teacher_mark_box)
    if reading.outcome == "blank":
        return None
    return Mark(
        kind,
        question,
        reading,
        _mark_score(kind, question, reading, student_known, review_below),
        box,
    )


def _mark_score(
    kind: str, question: Region, reading: Reading, student_known: bool, review_below: float
) -> Score:
    if reading.outcome == "review":
        return Score("review", None, None, reading.reason)
    if reading.confidence < review_below:
        return Score("review", None, None, "low_confidence")
    if not student_known:
        return Score("review", None, None, "unknown_student")
    full = question.points or 0.0
    if kind == "teacher_mark":
        tick = reading.label == "tick"
        return Score("scored", tick, full if tick else 0.0)
    value = float(int(reading.label))
    if value > full:
        return Score("review", None, None, "over_maximum")
    return Score("scored", value == full, value)


def _union(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0)
