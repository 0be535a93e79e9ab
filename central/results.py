"""Exam results from the stored answer events: the latest revision of every answer, totals, stats.

The models here are what the JSON API returns and what the HTML page renders, so both always agree.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from central.models import AnswerEvent
from central.school.answers import with_decisions

_DIGITS = re.compile(r"(\d+)")


class ExamSummary(BaseModel):
    exam_id: str
    students: int
    questions: int
    answer_events: int
    last_answer_at: datetime


class Stroke(BaseModel):
    t0_ms: int
    points: list[tuple[float, float, float, float]]


class Answer(BaseModel):
    event_id: str
    question_id: str
    kind: str
    revision: int
    label: str
    confidence: float
    status: str
    correct: bool | None
    points_awarded: float | None
    points_possible: float
    box_mm: tuple[float, float, float, float]
    strokes: list[Stroke]
    pen_id: str
    created_at: datetime


class StudentTotals(BaseModel):
    points_awarded: float
    points_possible: float
    answered: int
    correct: int
    review: int


class StudentResult(BaseModel):
    student_id: str | None
    # Set only for pens that are not on the gateway's roster: their answers are grouped by pen.
    pen_id: str | None
    answers: dict[str, Answer]
    totals: StudentTotals


class QuestionStats(BaseModel):
    question_id: str
    kind: str
    points_possible: float
    answered: int
    scored: int
    correct: int
    # correct / scored; answers waiting for review are not counted either way. None if none scored.
    correct_share: float | None
    review: int


class ExamResults(BaseModel):
    exam_id: str
    questions: list[QuestionStats]
    students: list[StudentResult]


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sorts "q2" before "q10"."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(text) if part
    )


def list_exams(session: Session, students: Collection[str] | None = None) -> list[ExamSummary]:
    """Every exam with answers; with `students`, only exams they answered, counting only them."""
    if students is not None and not students:
        return []
    student_key = func.coalesce(AnswerEvent.student_id, "pen " + AnswerEvent.pen_id)
    query = select(
        AnswerEvent.exam_id,
        func.count(func.distinct(student_key)),
        func.count(func.distinct(AnswerEvent.question_id)),
        func.count(),
        func.max(AnswerEvent.created_at),
    ).group_by(AnswerEvent.exam_id)
    if students is not None:
        query = query.where(AnswerEvent.student_id.in_(sorted(students)))
    rows = session.execute(query).all()
    exams = [
        ExamSummary(
            exam_id=exam_id,
            students=students,
            questions=questions,
            answer_events=events,
            last_answer_at=last,
        )
        for exam_id, students, questions, events, last in rows
    ]
    return sorted(exams, key=lambda exam: natural_key(exam.exam_id))


def latest_answers(
    session: Session, exam_id: str, students: Collection[str] | None = None
) -> list[AnswerEvent]:
    """The highest revision of every (student, question) in the exam; pens without a student
    count as students of their own. `students` limits to those (and leaves out unrostered pens)."""
    if students is not None and not students:
        return []
    rank = (
        func.row_number()
        .over(
            partition_by=(
                AnswerEvent.student_id,
                case((AnswerEvent.student_id.is_(None), AnswerEvent.pen_id)),
                AnswerEvent.question_id,
            ),
            # Ties cannot happen under the contract; break them anyway so the page is stable.
            order_by=(
                AnswerEvent.revision.desc(),
                AnswerEvent.created_at.desc(),
                AnswerEvent.event_id.desc(),
            ),
        )
        .label("rank")
    )
    in_exam = select(AnswerEvent.event_id, rank).where(AnswerEvent.exam_id == exam_id)
    if students is not None:
        in_exam = in_exam.where(AnswerEvent.student_id.in_(sorted(students)))
    ranked = in_exam.subquery()
    return list(
        session.scalars(
            select(AnswerEvent)
            .join(ranked, ranked.c.event_id == AnswerEvent.event_id)
            .where(ranked.c.rank == 1)
        )
    )


def exam_results(
    session: Session, exam_id: str, students: Collection[str] | None = None
) -> ExamResults | None:
    """None when nothing has been stored for the exam (from `students`, when given)."""
    events = latest_answers(session, exam_id, students)
    if not events:
        return None
    events = with_decisions(session, events)  # markers' decisions on review answers

    by_question: dict[str, list[AnswerEvent]] = defaultdict(list)
    by_student: dict[tuple[str | None, str | None], dict[str, Answer]] = defaultdict(dict)
    for event in events:
        by_question[event.question_id].append(event)
        key = (event.student_id, None) if event.student_id else (None, event.pen_id)
        by_student[key][event.question_id] = Answer.model_validate(event, from_attributes=True)

    questions = [
        _question_stats(question_id, by_question[question_id])
        for question_id in sorted(by_question, key=natural_key)
    ]
    exam_points = sum(question.points_possible for question in questions)
    students = [
        StudentResult(
            student_id=student_id,
            pen_id=pen_id,
            answers=by_student[student_id, pen_id],
            totals=_student_totals(by_student[student_id, pen_id].values(), exam_points),
        )
        for student_id, pen_id in sorted(by_student, key=_student_order)
    ]
    return ExamResults(exam_id=exam_id, questions=questions, students=students)


def _student_order(
    key: tuple[str | None, str | None],
) -> tuple[int, tuple[tuple[int, int | str], ...]]:
    student_id, pen_id = key
    # Rostered students first; unknown pens after them.
    return (0, natural_key(student_id)) if student_id else (1, natural_key(pen_id or ""))


def _question_stats(question_id: str, events: list[AnswerEvent]) -> QuestionStats:
    scored = [event for event in events if event.status == "scored"]
    correct = sum(1 for event in scored if event.correct)
    return QuestionStats(
        question_id=question_id,
        kind=events[0].kind,
        points_possible=max(event.points_possible for event in events),
        answered=len(events),
        scored=len(scored),
        correct=correct,
        correct_share=correct / len(scored) if scored else None,
        review=len(events) - len(scored),
    )


def _student_totals(answers: Iterable[Answer], exam_points: float) -> StudentTotals:
    answered = list(answers)
    return StudentTotals(
        points_awarded=sum(answer.points_awarded or 0.0 for answer in answered),
        # Out of every question of the exam seen so far, answered by this student or not.
        points_possible=exam_points,
        answered=len(answered),
        correct=sum(1 for answer in answered if answer.correct),
        review=sum(1 for answer in answered if answer.status == "review"),
    )
