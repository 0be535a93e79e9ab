"""The review list: answers the gateways would not score on their own, for a person to look at.

An answer event with status `review` (low confidence, a scribble, two answers, a free response, a
teacher's mark whose student is unknown: `review_reason` in protocol_specs/mqtt.md) is listed
until a later revision of the same answer from the same pen supersedes it. `GET /api/review` gives
the list as JSON with the strokes; `GET /review` is a page showing each answer's handwriting.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session, aliased

from central.auth.security import CurrentAccess
from central.models import AnswerEvent
from central.results import Stroke
from central.school.models import AnswerDecision
from central.svg import answer_svg

router = APIRouter()
DEFAULT_LIMIT = 200
MAX_LIMIT = 1000


class ReviewItem(BaseModel):
    event_id: str
    exam_id: str
    page_address: str
    student_id: str | None
    pen_id: str
    marker_id: str | None
    question_id: str
    kind: str
    revision: int
    label: str
    confidence: float
    review_reason: str | None
    points_possible: float
    box_mm: tuple[float, float, float, float]
    strokes: list[Stroke]
    created_at: datetime


def _open_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


Db = Annotated[Session, Depends(_open_session)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def review_list(
    session: Session,
    exam_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
    students: Collection[str] | None = None,
) -> list[ReviewItem]:
    """Review answers not superseded by a later revision, oldest first (first come, first seen).
    `students` limits the list to their answers (a teacher's classes; unrostered pens left out)."""
    if students is not None and not students:
        return []
    newer = aliased(AnswerEvent)
    superseded = exists().where(
        and_(
            newer.exam_id == AnswerEvent.exam_id,
            newer.page_address == AnswerEvent.page_address,
            newer.pen_id == AnswerEvent.pen_id,
            newer.question_id == AnswerEvent.question_id,
            newer.kind == AnswerEvent.kind,
            newer.revision > AnswerEvent.revision,
        )
    )
    # A marker's decision (central/school) takes the answer off the list.
    decided = exists().where(AnswerDecision.event_id == AnswerEvent.event_id)
    query = select(AnswerEvent).where(AnswerEvent.status == "review", ~superseded, ~decided)
    if exam_id is not None:
        query = query.where(AnswerEvent.exam_id == exam_id)
    if students is not None:
        query = query.where(AnswerEvent.student_id.in_(sorted(students)))
    # Within one millisecond, a gateway's own sequence keeps the order it finalised answers in.
    query = query.order_by(
        AnswerEvent.created_at, AnswerEvent.site_id, AnswerEvent.gateway_id, AnswerEvent.seq
    ).limit(limit)
    return [ReviewItem.model_validate(e, from_attributes=True) for e in session.scalars(query)]


@router.get("/api/review")
def api_review(
    db: Db, access: CurrentAccess, exam_id: str | None = None, limit: Limit = DEFAULT_LIMIT
) -> list[ReviewItem]:
    return review_list(db, exam_id, limit, access.students)


@router.get("/review", response_class=HTMLResponse)
def review_page(
    db: Db, access: CurrentAccess, exam_id: str | None = None, limit: Limit = DEFAULT_LIMIT
) -> HTMLResponse:
    items = review_list(db, exam_id, limit, access.students)
    rows = "".join(_row(item) for item in items)
    body = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>classink: answers to review</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}td,th{padding:.3em .6em;"
        "border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}</style></head><body>"
        f"<h1>Answers to review ({len(items)})</h1>"
        + (
            "<table><thead><tr><th>exam</th><th>student</th><th>question</th><th>kind</th>"
            "<th>read as</th><th>confidence</th><th>why</th><th>marker</th><th>handwriting</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>"
            if items
            else "<p>Nothing to review.</p>"
        )
        + "</body></html>"
    )
    return HTMLResponse(body)


def _row(item: ReviewItem) -> str:
    # answer_svg emits only numbers it formatted itself; every other value is escaped here.
    who = item.student_id or f"pen {item.pen_id}"
    cells = (
        item.exam_id,
        who,
        item.question_id,
        item.kind,
        item.label,
        f"{item.confidence:.2f}",
        item.review_reason or "",
        item.marker_id or "",
    )
    ink = answer_svg([stroke.points for stroke in item.strokes], item.box_mm)
    return (
        f"<tr id='{escape(item.event_id)}'>"
        + "".join(f"<td>{escape(c)}</td>" for c in cells)
        + f"<td>{ink}</td></tr>"
    )
