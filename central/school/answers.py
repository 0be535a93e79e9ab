"""Answers as they stand: the latest revision of each, with the latest marker decision applied.

Stored events are never changed; a decision (central/school/models.py) overrides the label and
score of the event it was made on, and is dropped when a later revision supersedes that event.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.models import AnswerEvent
from central.school.models import AnswerDecision


@dataclass(frozen=True)
class Standing:
    event_id: str
    exam_id: str
    student_id: str | None
    pen_id: str
    question_id: str
    kind: str
    revision: int
    label: str
    confidence: float
    status: str
    correct: bool | None
    points_awarded: float | None
    points_possible: float
    box_mm: list[Any]
    strokes: list[Any]
    created_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision: str | None = None

    @property
    def learner(self) -> str:
        """Answers from pens nobody rostered are grouped by pen."""
        return self.student_id or f"pen {self.pen_id}"

    @property
    def score(self) -> float | None:
        """Share of the question's points, or None while a person must still look."""
        if self.status != "scored" or self.points_awarded is None:
            return None
        return self.points_awarded / self.points_possible if self.points_possible > 0 else 0.0


def _standing(event: AnswerEvent) -> Standing:
    return Standing(
        event_id=event.event_id,
        exam_id=event.exam_id,
        student_id=event.student_id,
        pen_id=event.pen_id,
        question_id=event.question_id,
        kind=event.kind,
        revision=event.revision,
        label=event.label,
        confidence=event.confidence,
        status=event.status,
        correct=event.correct,
        points_awarded=event.points_awarded,
        points_possible=event.points_possible,
        box_mm=list(event.box_mm),
        strokes=list(event.strokes),
        created_at=event.created_at,
    )


def decided(answer: Standing, decision: AnswerDecision) -> Standing:
    return replace(
        answer,
        label=decision.label,
        status="scored",
        correct=decision.correct,
        points_awarded=decision.points_awarded,
        decided_by=decision.decided_by,
        decided_at=decision.decided_at,
        decision=decision.action,
    )


def latest_decisions(session: Session, event_ids: Collection[str]) -> dict[str, AnswerDecision]:
    found: dict[str, AnswerDecision] = {}
    ids = list(event_ids)
    for start in range(0, len(ids), 500):
        rows = session.scalars(
            select(AnswerDecision)
            .where(AnswerDecision.event_id.in_(ids[start : start + 500]))
            .order_by(AnswerDecision.decided_at, AnswerDecision.id)
        )
        for row in rows:
            found[row.event_id] = row  # later rows overwrite earlier ones
    return found


def standing_answers(
    session: Session,
    exam_id: str | None = None,
    students: Collection[str] | None = None,
) -> list[Standing]:
    """Latest revision per (exam, student or pen, question), decisions applied. `students`
    limits to those students (and leaves out answers from unrostered pens)."""
    query = select(AnswerEvent)
    if exam_id is not None:
        query = query.where(AnswerEvent.exam_id == exam_id)
    if students is not None:
        if not students:
            return []
        query = query.where(AnswerEvent.student_id.in_(list(students)))
    latest: dict[tuple[str, str, str], AnswerEvent] = {}
    for event in session.scalars(query.execution_options(yield_per=2000)):
        key = (event.exam_id, event.student_id or f"pen {event.pen_id}", event.question_id)
        held = latest.get(key)
        if held is None or (event.revision, event.created_at, event.event_id) > (
            held.revision,
            held.created_at,
            held.event_id,
        ):
            latest[key] = event
    answers = [_standing(event) for event in latest.values()]
    decisions = latest_decisions(session, [a.event_id for a in answers])
    return [decided(a, decisions[a.event_id]) if a.event_id in decisions else a for a in answers]


def with_decisions(session: Session, events: list[AnswerEvent]) -> list[AnswerEvent]:
    """The events with decisions applied, as unsaved copies: the stored rows stay untouched."""
    decisions = latest_decisions(session, [event.event_id for event in events])
    out = []
    for event in events:
        decision = decisions.get(event.event_id)
        if decision is None:
            out.append(event)
            continue
        columns = AnswerEvent.__mapper__.column_attrs
        copy = AnswerEvent(**{c.key: getattr(event, c.key) for c in columns})
        copy.label, copy.status = decision.label, "scored"
        copy.correct, copy.points_awarded = decision.correct, decision.points_awarded
        out.append(copy)
    return out
