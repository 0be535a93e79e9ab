"""What a teacher may see: the classes they teach and the students enrolled in them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.roster.models import RosterEnrollment

TEACHING_ROLES = ("teacher", "administrator", "aide")


def taught_classes(session: Session, teacher_id: str, extra: Iterable[str] = ()) -> set[str]:
    classes = set(
        session.scalars(
            select(RosterEnrollment.class_id).where(
                RosterEnrollment.user_id == teacher_id,
                RosterEnrollment.role.in_(TEACHING_ROLES),
            )
        )
    )
    return classes | set(extra)


def class_students(session: Session, class_ids: Iterable[str]) -> set[str]:
    ids = list(class_ids)
    if not ids:
        return set()
    return set(
        session.scalars(
            select(RosterEnrollment.user_id).where(
                RosterEnrollment.class_id.in_(ids), RosterEnrollment.role == "student"
            )
        )
    )
