"""Online tracing: one answer at a time, the work central does on every ingested scored answer.

`Tracer` holds fitted models and updates a student's state in memory; central/tracing/updater.py
loads that state from the database and stores it back around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from central.tracing.bkt import BktModel, next_mastery
from central.tracing.features import StudentState
from central.tracing.logistic import LogisticModel


@dataclass
class StudentTrace:
    """Per skill P(mastered) at the next answer (BKT), and the logistic model's practice state."""

    mastery: dict[str, float] = field(default_factory=dict)
    practice: StudentState = field(default_factory=StudentState)

    def to_json(self) -> dict[str, Any]:
        return {"mastery": self.mastery, "practice": self.practice.to_json()}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StudentTrace:
        return cls(
            {k: float(v) for k, v in doc["mastery"].items()},
            StudentState.from_json(doc["practice"]),
        )


@dataclass(frozen=True)
class Observation:
    skill: str
    correct: bool
    # What the models predicted for this answer before seeing it.
    predicted_bkt: float
    predicted_logistic: float | None
    mastery_before: float
    mastery_after: float


class Tracer:
    def __init__(self, bkt: BktModel, logistic: LogisticModel | None = None) -> None:
        self.bkt = bkt
        self.logistic = logistic

    def prior(self, skill: str) -> float:
        return float(self.bkt.skill_params(skill)[0])

    def observe(self, trace: StudentTrace, skill: str, correct: bool) -> Observation:
        before = trace.mastery.get(skill)
        predicted, after = next_mastery(self.bkt.skill_params(skill), before, correct)
        logistic = (
            None if self.logistic is None else self.logistic.predict_next(trace.practice, skill)
        )
        trace.mastery[skill] = after
        trace.practice.record(skill, correct)
        return Observation(
            skill,
            correct,
            predicted,
            logistic,
            self.prior(skill) if before is None else before,
            after,
        )
