"""Tutoring endpoints: teachers, requests ranked with reasons, batch assignment, outcomes, recorded
sessions with a replay page, and the pseudonymised research export."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from central.matching.models import (
    MatchingOutcome,
    MatchingRequest,
    MatchingTeacher,
    SessionAudio,
    TutoringSessionRecord,
)
from central.matching.ranking import RankedTeacher
from central.matching.replay import replay_svg
from central.matching.requests import TutoringRequest
from central.matching.service import MatchingError, MatchingService
from central.matching.sessions import SessionIn, export_sessions
from central.matching.teachers import TeacherSpec

EXPORT_KEY_ENV = "CLASSINK_MATCHING_EXPORT_KEY"
MAX_AUDIO_BYTES = 64 * 1024 * 1024
AUDIO_TYPES = ("audio/wav", "audio/x-wav", "audio/wave", "audio/mpeg", "audio/ogg", "audio/webm")

_templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
)

router = APIRouter()


def _db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def _service(request: Request) -> MatchingService:
    state = request.app.state
    if getattr(state, "matching", None) is None:
        state.matching = MatchingService()
    return state.matching


Db = Annotated[Session, Depends(_db)]
Service = Annotated[MatchingService, Depends(_service)]


class TeacherOut(BaseModel):
    spec: TeacherSpec
    sessions: int
    skills: dict[str, tuple[float, float]]  # skill → (effectiveness, sd)


class RankingOut(BaseModel):
    request_id: str
    status: str
    teachers: list[RankedTeacher]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot_start_hour: int = Field(ge=0, lt=168)
    slot_end_hour: int = Field(gt=0, le=336)
    request_ids: list[str] | None = None


class BatchItem(BaseModel):
    request_id: str
    teacher_id: str | None
    expected_gain: float | None


class BatchOut(BaseModel):
    considered: int
    assigned: int
    assignments: list[BatchItem]


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str
    session_id: str | None = None
    mastery_before: dict[str, float]
    mastery_after: dict[str, float]
    rating: int | None = Field(default=None, ge=1, le=5)

    @model_validator(mode="after")
    def _check(self) -> OutcomeIn:
        if set(self.mastery_before) != set(self.mastery_after) or not self.mastery_before:
            raise ValueError("mastery_before and mastery_after must name the same skills")
        for value in (*self.mastery_before.values(), *self.mastery_after.values()):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"mastery {value} is not within 0..1")
        return self


class OutcomeOut(BaseModel):
    learned: bool


# --- teachers -----------------------------------------------------------------------------------


@router.put("/api/matching/teachers/{teacher_id}", response_model=TeacherSpec)
def put_teacher(teacher_id: str, spec: TeacherSpec, db: Db, service: Service) -> Any:
    if spec.teacher_id != teacher_id:
        raise HTTPException(422, f"body teacher_id {spec.teacher_id!r} differs from the path")
    row = db.get(MatchingTeacher, teacher_id)
    now = datetime.now(UTC)
    if row is None:
        db.add(MatchingTeacher(teacher_id=teacher_id, spec=spec.model_dump(), updated_at=now))
    else:
        row.spec, row.updated_at = spec.model_dump(), now
    db.commit()
    service.invalidate()
    return spec


@router.get("/api/matching/teachers/{teacher_id}", response_model=TeacherOut)
def get_teacher(teacher_id: str, db: Db, service: Service) -> Any:
    if db.get(MatchingTeacher, teacher_id) is None:
        raise HTTPException(404, f"no teacher {teacher_id!r}")
    matcher = service.matcher(db)
    row = matcher.teachers.ids.index(teacher_id)
    snap = matcher.profiles.snapshot()
    spec = TeacherSpec.model_validate(db.get(MatchingTeacher, teacher_id).spec)
    skills = {
        skill: (
            round(float(snap.mean[i, row]), 4),
            round(float(snap.var[i, row] ** 0.5), 4),
        )
        for skill in spec.skills
        if (i := matcher.catalog.skills.get(skill)) is not None
    }
    return TeacherOut(spec=spec, sessions=int(matcher.profiles.sessions[row]), skills=skills)


# --- requests and assignment --------------------------------------------------------------------


@router.post("/api/matching/requests", response_model=RankingOut, status_code=201)
def post_request(
    body: TutoringRequest,
    db: Db,
    service: Service,
    top_k: Annotated[int | None, Query(ge=1, le=200)] = None,
) -> Any:
    if db.get(MatchingRequest, body.request_id) is not None:
        raise HTTPException(409, f"request {body.request_id!r} exists already")
    try:
        ranked = service.rank(db, body, top_k)
    except MatchingError as error:
        raise HTTPException(422, str(error)) from error
    db.add(
        MatchingRequest(
            request_id=body.request_id,
            student_id=body.student_id,
            body=body.model_dump(),
            status="open",
            waited_slots=body.waited_slots,
            created_at=datetime.now(UTC),
        )
    )
    db.commit()
    return RankingOut(request_id=body.request_id, status="open", teachers=ranked)


@router.get("/api/matching/requests/{request_id}", response_model=RankingOut)
def get_request(
    request_id: str,
    db: Db,
    service: Service,
    top_k: Annotated[int | None, Query(ge=1, le=200)] = None,
) -> Any:
    row = db.get(MatchingRequest, request_id)
    if row is None:
        raise HTTPException(404, f"no request {request_id!r}")
    try:
        ranked = service.rank(db, TutoringRequest.model_validate(row.body), top_k)
    except MatchingError as error:
        raise HTTPException(422, str(error)) from error
    return RankingOut(request_id=request_id, status=row.status, teachers=ranked)


@router.post("/api/matching/assignments", response_model=BatchOut)
def post_assignments(body: BatchIn, db: Db, service: Service) -> Any:
    if body.slot_end_hour <= body.slot_start_hour:
        raise HTTPException(422, "the slot ends before it starts")
    results = service.assign_open(db, (body.slot_start_hour, body.slot_end_hour), body.request_ids)
    db.commit()
    items = [BatchItem(**vars(r)) for r in results]
    return BatchOut(
        considered=len(items),
        assigned=sum(item.teacher_id is not None for item in items),
        assignments=items,
    )


@router.post("/api/matching/outcomes", response_model=OutcomeOut, status_code=201)
def post_outcome(body: OutcomeIn, db: Db, service: Service) -> Any:
    request = db.get(MatchingRequest, body.request_id)
    if request is None:
        raise HTTPException(404, f"no request {body.request_id!r}")
    if request.status != "assigned" or request.teacher_id is None:
        raise HTTPException(409, f"request {body.request_id!r} is {request.status}, not assigned")
    skills = sorted(body.mastery_before)
    outcome = MatchingOutcome(
        request_id=body.request_id,
        session_id=body.session_id,
        teacher_id=request.teacher_id,
        student_id=request.student_id,
        skills=skills,
        mastery_before=[body.mastery_before[s] for s in skills],
        mastery_after=[body.mastery_after[s] for s in skills],
        rating=body.rating,
        recorded_at=datetime.now(UTC),
    )
    db.add(outcome)
    request.status = "done"
    db.commit()
    return OutcomeOut(learned=service.record_outcome(db, outcome))


# --- recorded sessions --------------------------------------------------------------------------


@router.post("/api/matching/sessions", status_code=201)
def post_session(body: SessionIn, db: Db) -> dict[str, str]:
    if db.get(TutoringSessionRecord, body.session_id) is not None:
        raise HTTPException(409, f"session {body.session_id!r} exists already")
    db.add(
        TutoringSessionRecord(
            session_id=body.session_id,
            request_id=body.request_id,
            teacher_id=body.teacher_id,
            student_id=body.student_id,
            started_at=body.started_at,
            strokes=[s.model_dump() for s in body.strokes],
            audio_url=body.audio_url,
            audio_offset_ms=body.audio_offset_ms,
        )
    )
    db.commit()
    return {"session_id": body.session_id}


@router.put("/api/matching/sessions/{session_id}/audio", status_code=204)
async def put_audio(session_id: str, request: Request) -> Response:
    media_type = request.headers.get("content-type", "").split(";")[0].strip()
    if media_type not in AUDIO_TYPES:
        raise HTTPException(415, f"audio must be one of {', '.join(AUDIO_TYPES)}")
    data = await request.body()
    if not data or len(data) > MAX_AUDIO_BYTES:
        raise HTTPException(413, f"audio must be 1 byte to {MAX_AUDIO_BYTES} bytes")
    with request.app.state.sessions() as db:
        if db.get(TutoringSessionRecord, session_id) is None:
            raise HTTPException(404, f"no session {session_id!r}")
        row = db.get(SessionAudio, session_id)
        if row is None:
            db.add(SessionAudio(session_id=session_id, media_type=media_type, data=data))
        else:
            row.media_type, row.data = media_type, data
        db.commit()
    return Response(status_code=204)


@router.get("/api/matching/sessions/{session_id}/audio")
def get_audio(session_id: str, request: Request, db: Db) -> Response:
    row = db.get(SessionAudio, session_id)
    if row is None:
        raise HTTPException(404, f"no audio uploaded for session {session_id!r}")
    size = len(row.data)
    wanted = _byte_range(request.headers.get("range"), size)
    if wanted is None:
        return Response(row.data, media_type=row.media_type, headers={"Accept-Ranges": "bytes"})
    first, last = wanted
    # Browsers seek in media by asking for byte ranges; without them the audio is not seekable.
    return Response(
        row.data[first : last + 1],
        status_code=206,
        media_type=row.media_type,
        headers={"Accept-Ranges": "bytes", "Content-Range": f"bytes {first}-{last}/{size}"},
    )


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One `bytes=a-b`, `bytes=a-` or `bytes=-n` range; anything else is answered in full."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_text, _, last_text = header[len("bytes=") :].partition("-")
    try:
        if first_text:
            first = int(first_text)
            last = min(int(last_text), size - 1) if last_text else size - 1
        else:
            first, last = max(size - int(last_text), 0), size - 1
    except ValueError:
        return None
    if first > last or first >= size:
        raise HTTPException(416, f"range {header!r} outside {size} bytes")
    return first, last


@router.get("/matching/sessions/{session_id}", response_class=HTMLResponse)
def replay_page(request: Request, session_id: str, db: Db) -> HTMLResponse:
    record = db.get(TutoringSessionRecord, session_id)
    if record is None:
        raise HTTPException(404, f"no session {session_id!r}")
    root = request.scope.get("root_path", "")
    audio_url = record.audio_url
    if audio_url is None and db.get(SessionAudio, session_id) is not None:
        audio_url = f"{root}/api/matching/sessions/{session_id}/audio"
    timeline = [
        {"t0_ms": s["t0_ms"], "points": [[p[0], p[1], p[2]] for p in s["points"]]}
        for s in record.strokes
    ]
    return _templates.TemplateResponse(
        request,
        "replay.html",
        {
            "record": record,
            "audio_url": audio_url,
            # replay_svg emits only numbers it formatted itself; the JSON goes in a script element
            # with `<` escaped, so neither can inject markup.
            "svg": Markup(replay_svg(record.strokes)),
            "timeline": Markup(json.dumps(timeline).replace("<", "\\u003c")),
        },
    )


@router.get("/api/matching/export/sessions.jsonl")
def export(db: Db) -> StreamingResponse:
    key = os.environ.get(EXPORT_KEY_ENV, "")
    if len(key) < 16:
        raise HTTPException(
            503, f"set {EXPORT_KEY_ENV} (16+ characters) to pseudonymise the research export"
        )
    lines = list(export_sessions(db, key.encode()))
    return StreamingResponse(iter(line + "\n" for line in lines), media_type="application/x-ndjson")
