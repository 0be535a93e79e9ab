"""Classical item statistics over the answers as they stand.

For each question among the learners who sat the exam (answered at least one of its questions):
difficulty as the p-value (mean share of the points; a blank counts as 0, an answer still waiting
for review is left out), discrimination as the point-biserial correlation between the item score
and the rest score (the learner's total over the other questions, so the item does not correlate
with itself), and how often the question was left blank or sent to review.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from pydantic import BaseModel

from central.results import natural_key
from central.school.answers import Standing

MIN_LEARNERS_FOR_DISCRIMINATION = 3


class ItemStats(BaseModel):
    question_id: str
    kind: str
    points_possible: float
    learners: int
    answered: int
    blank: int
    review: int
    p_value: float | None
    discrimination: float | None
    blank_rate: float | None
    review_rate: float | None


def _correlation(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    if n < MIN_LEARNERS_FOR_DISCRIMINATION:
        return None
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    syy = sum((y - mean_y) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None  # everyone alike on the item or on the rest: nothing to discriminate
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return sxy / math.sqrt(sxx * syy)


def _is_blank(answer: Standing) -> bool:
    return not answer.label.strip() and not answer.strokes


def item_statistics(answers: Iterable[Standing]) -> list[ItemStats]:
    grid: dict[str, dict[str, Standing]] = defaultdict(dict)  # question -> learner -> answer
    learners: set[str] = set()
    for answer in answers:
        grid[answer.question_id][answer.learner] = answer
        learners.add(answer.learner)
    questions = sorted(grid, key=natural_key)
    # Item scores per learner: None while under review; 0 for a blank or a question not answered.
    scores: dict[str, dict[str, float | None]] = {
        q: {
            learner: (
                0.0
                if learner not in grid[q] or _is_blank(grid[q][learner])
                else grid[q][learner].score
            )
            for learner in learners
        }
        for q in questions
    }
    out = []
    for q in questions:
        given = grid[q].values()
        answered = sum(1 for a in given if not _is_blank(a))
        review = sum(1 for a in given if a.status == "review")
        known = {learner: s for learner, s in scores[q].items() if s is not None}
        others = [o for o in questions if o != q]
        rest = {learner: sum(scores[o][learner] or 0.0 for o in others) for learner in known}
        order = sorted(known)
        n = len(learners)
        out.append(
            ItemStats(
                question_id=q,
                kind=next(iter(given)).kind,
                points_possible=max(a.points_possible for a in given),
                learners=n,
                answered=answered,
                blank=n - answered,
                review=review,
                p_value=sum(known.values()) / len(known) if known else None,
                discrimination=_correlation(
                    [known[learner] for learner in order], [rest[learner] for learner in order]
                ),
                blank_rate=(n - answered) / n if n else None,
                review_rate=review / n if n else None,
            )
        )
    return out
