"""A marker's decision on an answer, kept beside the answer event, which is never changed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base


class AnswerDecision(Base):
    """Accepting what the machine read, or correcting it; the latest decision on an event wins."""

    __tablename__ = "answer_decisions"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(ForeignKey("answer_events.event_id"))
    action: Mapped[str] = mapped_column(String(16))  # accept | correct
    label: Mapped[str] = mapped_column(String(64))
    correct: Mapped[bool]
    points_awarded: Mapped[float] = mapped_column(Float)
    decided_by: Mapped[str] = mapped_column(String(128))
    decided_role: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime]

    __table_args__ = (Index("ix_answer_decisions_event", "event_id", "decided_at"),)
