"""Recorded tutoring sessions: strokes in the classroom format, time-aligned audio, export.

Strokes are the `answers` events' format (protocol_specs/mqtt.md): `{"t0_ms", "points": [[x_mm,
y_mm, dt_ms, force], ...]}` with t0_ms from the session start and dt_ms from the stroke's start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.matching.models import MatchingOutcome, SessionAudio, TutoringSessionRecord
from central.matching.strokes import Stroke

MAX_POINTS_PER_SESSION = 500_000


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(min_length=1, max_length=128)
    request_id: str | None = Field(default=None, max_length=128)
    teacher_id: str = Field(min_length=1, max_length=128)
    student_id: str = Field(min_length=1, max_length=128)
    started_at: datetime
    strokes: list[Stroke]
    # An external recording, or None and the audio is uploaded to central (PUT .../audio).
    audio_url: str | None = Field(default=None, max_length=2000)
    audio_offset_ms: int = 0

    @field_validator("started_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("started_at needs a time zone (e.g. a trailing Z)")
        return value

    @field_validator("strokes")
    @classmethod
    def _size(cls, strokes: list[Stroke]) -> list[Stroke]:
        if sum(len(s.points) for s in strokes) > MAX_POINTS_PER_SESSION:
            raise ValueError(f"more than {MAX_POINTS_PER_SESSION} points in one session")
        return strokes

    @field_validator("audio_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://", "/")):
            raise ValueError("audio_url must be an http(s) URL or a path on this server")
        return value


def session_end_ms(strokes: list[dict]) -> float:
    return max((s["t0_ms"] + sum(p[2] for p in s["points"]) for s in strokes), default=0.0)


def pseudonym(key: bytes, kind: str, identifier: str) -> str:
    """A keyed hash: stable across exports with the same key, not reversible without it."""
    digest = hmac.new(key, f"{kind}:{identifier}".encode(), hashlib.sha256).hexdigest()
    return f"{kind[0]}-{digest[:20]}"


def export_sessions(db: Session, key: bytes) -> Iterator[str]:
    """One JSON line per recorded session for research: ids pseudonymised, the start reduced to
    its date, the audio's location left out (it may name people), outcomes joined in."""
    if len(key) < 16:
        raise ValueError("the pseudonymisation key must be at least 16 bytes")
    outcomes: dict[str, MatchingOutcome] = {
        o.session_id: o
        for o in db.scalars(select(MatchingOutcome).where(MatchingOutcome.session_id.is_not(None)))
    }
    with_audio = set(db.scalars(select(SessionAudio.session_id)))
    records = db.scalars(select(TutoringSessionRecord).order_by(TutoringSessionRecord.started_at))
    for record in records:
        outcome = outcomes.get(record.session_id)
        line = {
            "session": pseudonym(key, "session", record.session_id),
            "teacher": pseudonym(key, "teacher", record.teacher_id),
            "student": pseudonym(key, "student", record.student_id),
            "date": record.started_at.date().isoformat(),
            "duration_ms": session_end_ms(record.strokes),
            "strokes": record.strokes,
            "has_audio": record.audio_url is not None or record.session_id in with_audio,
            "audio_offset_ms": record.audio_offset_ms,
            "outcome": None
            if outcome is None
            else {
                "skills": outcome.skills,
                "mastery_before": outcome.mastery_before,
                "mastery_after": outcome.mastery_after,
                "rating": outcome.rating,
            },
        }
        yield json.dumps(line, separators=(",", ":"), ensure_ascii=False)
