"""Roster tables: OneRoster orgs, users, classes and enrolments, keyed by their sourcedIds.

A student's sourcedId is the student id gateways put in answers (their pen roster maps pen
addresses to it), so results join the roster on `answer_events.student_id`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base


class RosterOrg(Base):
    __tablename__ = "roster_orgs"

    sourced_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    type: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(String(128))


class RosterUser(Base):
    __tablename__ = "roster_users"

    sourced_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # student, teacher, administrator, …: the OneRoster role of the user's primary enrolment.
    role: Mapped[str] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(256))
    given_name: Mapped[str] = mapped_column(String(256))
    family_name: Mapped[str] = mapped_column(String(256))
    identifier: Mapped[str] = mapped_column(String(256), default="")
    org_id: Mapped[str | None] = mapped_column(String(128))


class RosterClass(Base):
    __tablename__ = "roster_classes"

    sourced_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    title: Mapped[str] = mapped_column(String(256))
    class_code: Mapped[str] = mapped_column(String(128), default="")
    school_id: Mapped[str] = mapped_column(ForeignKey("roster_orgs.sourced_id"))


class RosterEnrollment(Base):
    __tablename__ = "roster_enrollments"

    sourced_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    class_id: Mapped[str] = mapped_column(ForeignKey("roster_classes.sourced_id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("roster_users.sourced_id"))
    role: Mapped[str] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_roster_enrollments_class", "class_id", "role"),
        Index("ix_roster_enrollments_user", "user_id", "role"),
    )


class PenAssignment(Base):
    """Which student writes with which pen (the gateway's pen roster is generated from these)."""

    __tablename__ = "roster_pen_assignments"

    pen_id: Mapped[str] = mapped_column(String(17), primary_key=True)
    student_id: Mapped[str] = mapped_column(ForeignKey("roster_users.sourced_id"))
    assigned_by: Mapped[str] = mapped_column(String(128))
    assigned_at: Mapped[datetime]
