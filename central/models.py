"""Tables of the central store: answer events as received, gateway state, and dead letters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no time zones, so values are stored there as naive UTC and made aware again on the
    way out; PostgreSQL keeps them as timestamptz. Naive input is refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class AnswerEvent(Base):
    """One `answers` message, exactly as the gateway sent it; revisions are separate rows."""

    __tablename__ = "answer_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    schema: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str] = mapped_column(String(63))
    gateway_id: Mapped[str] = mapped_column(String(63))
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    exam_id: Mapped[str] = mapped_column(String(128))
    # Text where the schema sets no maximum length, so that PostgreSQL accepts whatever SQLite does.
    page_address: Mapped[str] = mapped_column(Text)
    pen_id: Mapped[str] = mapped_column(String(17))
    student_id: Mapped[str | None] = mapped_column(String(128))
    question_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    correct: Mapped[bool | None]
    points_awarded: Mapped[float | None] = mapped_column(Float)
    points_possible: Mapped[float] = mapped_column(Float)
    box_mm: Mapped[list[Any]]
    strokes: Mapped[list[Any]]
    # Optional in the contract: the teacher who wrote a marking event, and why a person must look.
    marker_id: Mapped[str | None] = mapped_column(String(128), default=None)
    review_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    received_at: Mapped[datetime]

    __table_args__ = (
        # The results page reads one exam at a time, grouped by student and question.
        Index("ix_answer_events_exam", "exam_id", "student_id", "question_id"),
        Index("ix_answer_events_gateway_seq", "site_id", "gateway_id", "seq"),
    )


class GatewayState(Base):
    """What central knows about one gateway: its last status and how complete its stream is."""

    __tablename__ = "gateway_state"

    site_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    # Null until the gateway's first status message: answers can arrive before it.
    state: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    last_seen: Mapped[datetime]
    software_version: Mapped[str | None] = mapped_column(String(64))
    highest_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # Sequence numbers below highest_seq that have not arrived (yet).
    seq_gaps: Mapped[int] = mapped_column(BigInteger, default=0)


class DeadLetter(Base):
    """A message central could not store, kept verbatim so that it can be looked at later."""

    __tablename__ = "dead_letters"

    # SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
