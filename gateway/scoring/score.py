"""Scoring one reading against the template's answer key (protocol_specs/exam-template.md)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.scoring.read import Reading
from gateway.templates import Region


@dataclass(frozen=True)
class Score:
    status: str  # "scored" or "review"
    correct: bool | None
    points_awarded: float | None
    review_reason: str | None = None


def score(region: Region, reading: Reading, review_below: float) -> Score:
    """A student's answer: below the threshold, or when the reading says so, a person looks — a
    wrong score stored silently is worse than a late one. A blank answer scores nothing; a
    student id is read, never scored."""
    if reading.outcome == "review":
        return Score("review", None, None, reading.reason)
    if reading.confidence < review_below:
        return Score("review", None, None, "low_confidence")
    if region.kind == "student_id":
        return Score("scored", None, None)
    if reading.outcome == "blank":
        return Score("scored", False, 0.0)
    correct = reading.label == region.answer
    return Score("scored", correct, (region.points or 0.0) if correct else 0.0)
