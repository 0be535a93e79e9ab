"""Tables of competency tracking, on the central store's `Base` so that `create_schema` makes them.

Skills, their prerequisite edges, which skills each exam question exercises, and the resource
catalogue are imported from files (docs/tracing.md) and editable through the API. Fitted model
parameters are versioned: every refit adds a row and the highest version is the one in use.
Mastery is kept per student and skill, with its history answer by answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base

ID_LENGTH = 128

# SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY.
_SERIAL = BigInteger().with_variant(Integer, "sqlite")


class Skill(Base):
    __tablename__ = "tracing_skills"

    skill_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")


class Prerequisite(Base):
    """`skill_id` builds on `requires_id`: master that one first."""

    __tablename__ = "tracing_prerequisites"

    skill_id: Mapped[str] = mapped_column(
        ForeignKey(Skill.skill_id, ondelete="CASCADE"), primary_key=True
    )
    requires_id: Mapped[str] = mapped_column(
        ForeignKey(Skill.skill_id, ondelete="CASCADE"), primary_key=True
    )


class ItemSkill(Base):
    """Question `question_id` of exam `exam_id` exercises `skill_id` (an item may have several)."""

    __tablename__ = "tracing_item_skills"

    exam_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    question_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    skill_id: Mapped[str] = mapped_column(
        ForeignKey(Skill.skill_id, ondelete="CASCADE"), primary_key=True
    )


class Resource(Base):
    """A learning material: a micro-lecture, a practice set, ..., and the skills it teaches."""

    __tablename__ = "tracing_resources"

    resource_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text, default="")
    minutes: Mapped[float | None] = mapped_column(Float)
    skills: Mapped[list[Any]]


class ModelVersion(Base):
    """The parameters of one fit: BKT (always) and the logistic model (when the data allowed)."""

    __tablename__ = "tracing_model_versions"

    version: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime]
    answers: Mapped[int] = mapped_column(BigInteger)
    students: Mapped[int] = mapped_column(BigInteger)
    bkt: Mapped[dict[str, Any]]
    logistic: Mapped[dict[str, Any] | None]
    note: Mapped[str] = mapped_column(Text, default="")


class StudentTraceRow(Base):
    """Everything the online update needs of one student (central/tracing/online.StudentTrace)."""

    __tablename__ = "tracing_student_traces"

    student_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    trace: Mapped[dict[str, Any]]
    model_version: Mapped[int | None] = mapped_column(BigInteger)
    # created_at of the latest answer traced, to notice answers that arrive out of order.
    last_answer_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class Mastery(Base):
    """P(mastered) of one skill by one student, at their next answer on it."""

    __tablename__ = "tracing_mastery"

    student_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    skill_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    mastery: Mapped[float] = mapped_column(Float)
    answers: Mapped[int] = mapped_column(BigInteger)
    correct: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class MasteryStep(Base):
    """One answer's effect on one skill's mastery: the history behind `Mastery`."""

    __tablename__ = "tracing_mastery_history"

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    student_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    skill_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    event_id: Mapped[str] = mapped_column(String(36))
    exam_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    question_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    answered_at: Mapped[datetime]
    correct: Mapped[bool] = mapped_column(Boolean)
    predicted: Mapped[float] = mapped_column(Float)
    mastery_before: Mapped[float] = mapped_column(Float)
    mastery_after: Mapped[float] = mapped_column(Float)
    model_version: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_tracing_history_student", "student_id", "skill_id", "id"),)
