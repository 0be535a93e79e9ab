"""JSON endpoints for schools: roster import, pens, results per class and student, item
statistics, review decisions, the xAPI export, and who am I / the audit log for admins.

Who may call which is in central/auth/policy.py; teachers are held to their classes here (lists
filtered) and by `authorize` (a `student_id` or `class_id` in the path).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from central.auth.models import AuditEntry
from central.auth.security import Access, CurrentAccess
from central.auth.tokens import pseudonym, server_secret
from central.models import AnswerEvent
from central.results import Stroke, natural_key
from central.roster.models import PenAssignment, RosterClass, RosterEnrollment, RosterUser
from central.roster.oneroster import ImportSummary, RosterError, import_oneroster
from central.roster.scope import class_students
from central.school.answers import Standing, standing_answers
from central.school.models import AnswerDecision
from central.school.stats import ItemStats, item_statistics
from central.school.xapi import statements

router = APIRouter(tags=["school"])

MAX_ROSTER_BYTES = 50 * 1024 * 1024
PEN_ID = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$"


def _open_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


Db = Annotated[Session, Depends(_open_session)]
ExamQuery = Annotated[str, Query(min_length=1, max_length=128)]


class Me(BaseModel):
    user_id: str
    role: str
    classes: list[str] | None


class ClassOut(BaseModel):
    class_id: str
    title: str
    school_id: str
    students: int
    teachers: list[str]


class PenIn(BaseModel):
    student_id: str = Field(min_length=1, max_length=128)


class PenOut(BaseModel):
    pen_id: str
    student_id: str
    assigned_by: str
    assigned_at: datetime


class AnswerOut(BaseModel):
    event_id: str
    question_id: str
    kind: str
    revision: int
    label: str
    status: str
    correct: bool | None
    points_awarded: float | None
    points_possible: float
    decision: str | None
    decided_by: str | None
    decided_at: datetime | None

    @classmethod
    def of(cls, a: Standing) -> AnswerOut:
        return cls.model_validate(a, from_attributes=True)


class StudentExam(BaseModel):
    exam_id: str
    points_awarded: float
    points_possible: float
    review: int
    answers: list[AnswerOut]


class StudentTotals(BaseModel):
    student_id: str
    points_awarded: float
    points_possible: float
    answered: int
    review: int


class ClassResults(BaseModel):
    class_id: str
    exam_id: str
    students: list[StudentTotals]
    items: list[ItemStats]


class DecisionIn(BaseModel):
    action: Literal["accept", "correct"]
    label: str | None = Field(default=None, min_length=1, max_length=64)
    points_awarded: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    correct: bool | None = None


class DecisionOut(BaseModel):
    id: int
    event_id: str
    action: str
    label: str
    correct: bool
    points_awarded: float
    decided_by: str
    decided_role: str
    decided_at: datetime


class ReviewAnswer(BaseModel):
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
    review_reason: str | None
    points_possible: float
    box_mm: tuple[float, float, float, float]
    strokes: list[Stroke]
    decisions: list[DecisionOut]


class AuditOut(BaseModel):
    at: datetime
    method: str
    path: str
    query: str
    user_id: str | None
    role: str | None
    status: int


def _missing(what: str) -> HTTPException:
    return HTTPException(404, what)


@router.get("/api/auth/me")
def me(access: CurrentAccess) -> Me:
    classes = sorted(access.classes) if access.classes is not None else None
    return Me(user_id=access.principal.user_id, role=access.principal.role, classes=classes)


@router.get("/api/auth/audit")
def audit_log(
    db: Db,
    user_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if user_id is not None:
        query = query.where(AuditEntry.user_id == user_id)
    return [AuditOut.model_validate(row, from_attributes=True) for row in db.scalars(query)]


@router.post(
    "/api/roster/import",
    responses={413: {}, 415: {}, 422: {"description": "errors naming file and line"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def roster_import(request: Request) -> ImportSummary:
    """A OneRoster 1.2 CSV zip as the request body (Content-Type: application/zip)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind not in ("application/zip", "application/x-zip-compressed", "application/octet-stream"):
        raise HTTPException(415, "send the OneRoster zip with Content-Type: application/zip")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > MAX_ROSTER_BYTES:
            raise HTTPException(413, "the roster zip is larger than 50 MB")

    def store() -> ImportSummary:
        with request.app.state.sessions.begin() as session:
            return import_oneroster(session, bytes(data))

    try:
        return await anyio.to_thread.run_sync(store)
    except RosterError as error:
        raise HTTPException(422, {"errors": error.errors}) from None


@router.get("/api/roster/classes")
def list_classes(db: Db, access: CurrentAccess) -> list[ClassOut]:
    query = select(RosterClass).order_by(RosterClass.sourced_id)
    if access.classes is not None:
        query = query.where(RosterClass.sourced_id.in_(sorted(access.classes)))
    out = []
    for row in db.scalars(query):
        enrolled = db.execute(
            select(RosterEnrollment.user_id, RosterEnrollment.role).where(
                RosterEnrollment.class_id == row.sourced_id
            )
        ).all()
        out.append(
            ClassOut(
                class_id=row.sourced_id,
                title=row.title,
                school_id=row.school_id,
                students=sum(1 for _, role in enrolled if role == "student"),
                teachers=sorted(user for user, role in enrolled if role == "teacher"),
            )
        )
    return out


@router.get("/api/pens")
def list_pens(db: Db, access: CurrentAccess) -> list[PenOut]:
    rows = db.scalars(select(PenAssignment).order_by(PenAssignment.pen_id))
    return [
        PenOut.model_validate(row, from_attributes=True)
        for row in rows
        if access.sees_student(row.student_id)
    ]


@router.put("/api/pens/{pen_id}", responses={403: {}, 404: {}, 422: {}})
def assign_pen(request: Request, pen_id: str, body: PenIn, access: CurrentAccess) -> PenOut:
    """Gives the pen (its Bluetooth address, lower case) to a rostered student."""
    if not PEN_ID.match(pen_id):
        raise HTTPException(422, f"{pen_id!r} is not a pen address like 9c:7b:ef:00:00:01")
    with request.app.state.sessions.begin() as db:
        student = db.get(RosterUser, body.student_id)
        if student is None or student.role != "student":
            raise _missing(f"no rostered student {body.student_id!r}")
        access.require_student(body.student_id)
        held = db.get(PenAssignment, pen_id)
        if held is not None and not access.sees_student(held.student_id):
            raise HTTPException(403, f"pen {pen_id} belongs to a student outside your classes")
        row = db.merge(
            PenAssignment(
                pen_id=pen_id,
                student_id=body.student_id,
                assigned_by=access.principal.user_id,
                assigned_at=datetime.now(UTC),
            )
        )
        db.flush()
        return PenOut.model_validate(row, from_attributes=True)


def _class_or_404(db: Session, class_id: str) -> RosterClass:
    row = db.get(RosterClass, class_id)
    if row is None:
        raise _missing(f"no class {class_id!r} in the roster")
    return row


def class_results(db: Session, class_id: str, exam_id: str) -> ClassResults:
    _class_or_404(db, class_id)
    students = class_students(db, [class_id])
    answers = standing_answers(db, exam_id, students)
    questions: dict[str, float] = {}
    for a in answers:
        questions[a.question_id] = max(questions.get(a.question_id, 0.0), a.points_possible)
    possible = sum(questions.values())
    per: dict[str, list[Standing]] = {}
    for a in answers:
        per.setdefault(a.learner, []).append(a)
    totals = [
        StudentTotals(
            student_id=student,
            points_awarded=sum(a.points_awarded or 0.0 for a in mine if a.status == "scored"),
            points_possible=possible,
            answered=len(mine),
            review=sum(1 for a in mine if a.status == "review"),
        )
        for student, mine in sorted(per.items(), key=lambda kv: natural_key(kv[0]))
    ]
    return ClassResults(
        class_id=class_id, exam_id=exam_id, students=totals, items=item_statistics(answers)
    )


@router.get("/api/classes/{class_id}/results", responses={404: {}})
def api_class_results(class_id: str, exam_id: ExamQuery, db: Db) -> ClassResults:
    return class_results(db, class_id, exam_id)


@router.get("/api/classes/{class_id}/items", responses={404: {}})
def api_class_items(class_id: str, exam_id: ExamQuery, db: Db) -> list[ItemStats]:
    return class_results(db, class_id, exam_id).items


@router.get("/api/exams/{exam_id:path}/items", responses={404: {}})
def api_exam_items(exam_id: str, db: Db, access: CurrentAccess) -> list[ItemStats]:
    """Over every learner who sat the exam; for a teacher, over the students of their classes."""
    answers = standing_answers(db, exam_id, access.students)
    if not answers:
        raise _missing(f"no answers for exam {exam_id!r}")
    return item_statistics(answers)


@router.get("/api/students/{student_id}/results", responses={404: {}})
def api_student_results(student_id: str, db: Db) -> list[StudentExam]:
    answers = standing_answers(db, None, [student_id])
    if not answers and db.get(RosterUser, student_id) is None:
        raise _missing(f"no answers and no roster entry for student {student_id!r}")
    by_exam: dict[str, list[Standing]] = {}
    for a in answers:
        by_exam.setdefault(a.exam_id, []).append(a)
    return [
        StudentExam(
            exam_id=exam,
            points_awarded=sum(a.points_awarded or 0.0 for a in mine if a.status == "scored"),
            points_possible=sum(a.points_possible for a in mine),
            review=sum(1 for a in mine if a.status == "review"),
            answers=[
                AnswerOut.of(a) for a in sorted(mine, key=lambda a: natural_key(a.question_id))
            ],
        )
        for exam, mine in sorted(by_exam.items(), key=lambda kv: natural_key(kv[0]))
    ]


EVENT = frozenset(ReviewAnswer.model_fields) - {"decisions"}


def review_answer(db: Session, event_id: str, access: Access) -> tuple[AnswerEvent, ReviewAnswer]:
    event = db.get(AnswerEvent, event_id)
    if event is None:
        raise _missing(f"no answer event {event_id!r}")
    access.require_student(event.student_id)
    rows = db.scalars(
        select(AnswerDecision)
        .where(AnswerDecision.event_id == event_id)
        .order_by(AnswerDecision.decided_at, AnswerDecision.id)
    )
    view = ReviewAnswer.model_validate(
        {
            **{
                name: getattr(event, name)
                for name in ReviewAnswer.model_fields
                if name != "decisions"
            },
            "decisions": [DecisionOut.model_validate(r, from_attributes=True) for r in rows],
        }
    )
    return event, view


@router.get("/api/review/{event_id}", responses={403: {}, 404: {}})
def api_review_answer(event_id: str, db: Db, access: CurrentAccess) -> ReviewAnswer:
    return review_answer(db, event_id, access)[1]


def _superseded(db: Session, event: AnswerEvent) -> int | None:
    newer = db.scalar(
        select(AnswerEvent.revision)
        .where(
            and_(
                AnswerEvent.exam_id == event.exam_id,
                AnswerEvent.question_id == event.question_id,
                AnswerEvent.student_id == event.student_id
                if event.student_id is not None
                else and_(AnswerEvent.student_id.is_(None), AnswerEvent.pen_id == event.pen_id),
                AnswerEvent.revision > event.revision,
            )
        )
        .order_by(AnswerEvent.revision.desc())
        .limit(1)
    )
    return newer


def decide(request: Request, event_id: str, body: DecisionIn, access: Access) -> DecisionOut:
    """Stores a decision on an answer; the answer event itself stays as the gateway sent it."""
    with request.app.state.sessions.begin() as db:
        event, _ = review_answer(db, event_id, access)
        newer = _superseded(db, event)
        if newer is not None:
            raise HTTPException(409, f"answer {event_id} is superseded by revision {newer}")
        if body.action == "correct" and body.label is None:
            raise HTTPException(422, "a correction needs the label the student really wrote")
        points = body.points_awarded if body.points_awarded is not None else event.points_awarded
        if points is None:
            raise HTTPException(
                422, "the machine did not score this answer: send points_awarded with it"
            )
        if points > event.points_possible:
            raise HTTPException(
                422, f"points_awarded {points:g} exceeds the question's {event.points_possible:g}"
            )
        correct = body.correct if body.correct is not None else points >= event.points_possible
        row = AnswerDecision(
            event_id=event_id,
            action=body.action,
            label=body.label if body.action == "correct" else event.label,
            correct=correct,
            points_awarded=points,
            decided_by=access.principal.user_id,
            decided_role=access.principal.role,
            decided_at=datetime.now(UTC),
        )
        db.add(row)
        db.flush()
        return DecisionOut.model_validate(row, from_attributes=True)


@router.post(
    "/api/review/{event_id}/decision",
    status_code=201,
    responses={403: {}, 404: {}, 409: {}, 422: {}},
)
def api_decide(
    request: Request, event_id: str, body: Annotated[DecisionIn, Body()], access: CurrentAccess
) -> DecisionOut:
    return decide(request, event_id, body, access)


def learner_names(request: Request, access: Access):
    if not access.pseudonymise:
        return lambda learner: learner
    key = server_secret(request.app.state.sessions, "pseudonym")
    return lambda learner: pseudonym(key, learner)


@router.get("/api/export/xapi")
def api_export_xapi(
    request: Request,
    db: Db,
    access: CurrentAccess,
    exam_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    """An xAPI StatementResult: answers (and decisions) from `offset`, `limit` answers a page;
    a teacher's holds only the students of their classes, a researcher's is pseudonymised."""
    home = str(request.base_url).rstrip("/")
    names = learner_names(request, access)
    found = list(statements(db, home, names, exam_id, offset, limit + 1, access.students))
    answers = [s for s in found if s["verb"]["display"]["en-US"] == "answered"]
    more = ""
    if len(answers) > limit:
        cut = found.index(answers[limit])
        found = found[:cut]
        query = f"offset={offset + limit}&limit={limit}"
        if exam_id is not None:
            query += f"&exam_id={quote(exam_id, safe='')}"
        more = f"/api/export/xapi?{query}"
    return {"statements": found, "more": more}
