"""Tables of tutoring: teachers' stated side, requests, session outcomes, recorded sessions.

On central's own `Base`, so `create_schema` creates them with the rest. Teachers' and requests'
bodies are kept as validated JSON: the library recompiles them into arrays, and new optional fields
need no migration.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base

_AUTO_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER only


class MatchingTeacher(Base):
    __tablename__ = "matching_teachers"

    teacher_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    spec: Mapped[dict[str, Any]]  # a TeacherSpec
    updated_at: Mapped[datetime]


class MatchingRequest(Base):
    __tablename__ = "matching_requests"

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    student_id: Mapped[str] = mapped_column(String(128))
    body: Mapped[dict[str, Any]]  # a TutoringRequest
    # open → assigned → done; a batch that cannot serve an open request raises `waited_slots`.
    status: Mapped[str] = mapped_column(String(16))
    teacher_id: Mapped[str | None] = mapped_column(String(128))
    expected_gain: Mapped[float | None] = mapped_column(Float)
    waited_slots: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    assigned_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_matching_requests_status", "status", "teacher_id"),)


class MatchingOutcome(Base):
    """What a session achieved: the student's mastery before and after on the requested skills."""

    __tablename__ = "matching_outcomes"

    id: Mapped[int] = mapped_column(_AUTO_ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str | None] = mapped_column(String(128))
    session_id: Mapped[str | None] = mapped_column(String(128))
    teacher_id: Mapped[str] = mapped_column(String(128))
    student_id: Mapped[str] = mapped_column(String(128))
    skills: Mapped[list[Any]]
    mastery_before: Mapped[list[Any]]
    mastery_after: Mapped[list[Any]]
    rating: Mapped[int | None] = mapped_column(Integer)
    recorded_at: Mapped[datetime]

    __table_args__ = (Index("ix_matching_outcomes_teacher", "teacher_id"),)


class TutoringSessionRecord(Base):
    """A recorded session: the teacher's pen strokes and the audio, on one clock.

    Stroke times are milliseconds from the session start; the audio's own time 0 is at
    `audio_offset_ms` on that clock.
    """

    __tablename__ = "matching_sessions"

    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(128))
    teacher_id: Mapped[str] = mapped_column(String(128))
    student_id: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime]
    strokes: Mapped[list[Any]]
    audio_url: Mapped[str | None] = mapped_column(Text)
    audio_offset_ms: Mapped[int] = mapped_column(BigInteger, default=0)


class SessionAudio(Base):
    """Audio uploaded to central itself (instead of an external `audio_url`)."""

    __tablename__ = "matching_session_audio"

    session_id: Mapped[str] = mapped_column(
        String(128),
        ForeignKey("matching_sessions.session_id", ondelete="CASCADE"),
        primary_key=True,
    )
    media_type: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
