"""Scoring one recognised answer against the template's answer key."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.templates import Region


@dataclass(frozen=True)
class Score:
    status: str  # "scored" or "review"
    correct: bool | None
    points_awarded: float | None


def score(region: Region, label: str, confidence: float, review_below: float) -> Score:
    # Below the threshold a person looks: a wrong score stored silently is worse than a late one.
    if confidence < review_below:
        return Score("review", None, None)
    correct = label == region.answer
    return Score("scored", correct, region.points if correct else 0.0)
