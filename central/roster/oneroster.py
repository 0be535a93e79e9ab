"""Import a OneRoster 1.2 CSV zip (bulk): orgs, users, classes, enrollments, and roles if given.

Headers and references are checked before anything is written; every problem is reported with
its file and line, and nothing is stored unless the whole zip is good. Rows whose status is
`tobedeleted` remove the record. Users take their role from roles.csv (1.2), else from a `role`
column (1.1 files), else from their enrolments.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from central.roster.models import RosterClass, RosterEnrollment, RosterOrg, RosterUser

REQUIRED = {
    "orgs.csv": ("sourcedId", "name", "type"),
    "users.csv": ("sourcedId", "username", "givenName", "familyName"),
    "classes.csv": ("sourcedId", "title", "schoolSourcedId"),
    "enrollments.csv": ("sourcedId", "classSourcedId", "userSourcedId", "role"),
}
ROLES_REQUIRED = ("userSourcedId", "role")
ENROLMENT_ROLES = {"student", "teacher", "administrator", "aide", "guardian", "proctor"}
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_ERRORS = 50
MAX_ID = 128


class RosterError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class ImportSummary:
    orgs: int = 0
    users: int = 0
    classes: int = 0
    enrollments: int = 0
    deleted: int = 0
    students: int = 0
    teachers: int = 0


@dataclass
class _Rows:
    name: str
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)


def _read(archive: zipfile.ZipFile, name: str, required: tuple[str, ...], errors: list[str]):
    members = {info.filename.rsplit("/", 1)[-1]: info for info in archive.infolist()}
    if name not in members:
        return None
    text = archive.read(members[name]).decode("utf-8-sig", errors="strict")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [column for column in required if column not in header]
    if missing:
        errors.append(f"{name} line 1: missing column(s) {', '.join(missing)}")
        return None
    out = _Rows(name)
    for row in reader:
        line = reader.line_num
        if None in row:
            errors.append(f"{name} line {line}: more fields than the header has")
            continue
        clean = {k: (v or "").strip() for k, v in row.items()}
        for column in required:
            if not clean[column]:
                errors.append(f"{name} line {line}: {column} is empty")
            elif len(clean[column]) > (MAX_ID if column.endswith("Id") else 256):
                errors.append(f"{name} line {line}: {column} is too long")
        out.rows.append((line, clean))
    return out


def _deleted(row: dict[str, str]) -> bool:
    return row.get("status", "").lower() == "tobedeleted"


def _unique(rows: _Rows, errors: list[str]) -> dict[str, tuple[int, dict[str, str]]]:
    seen: dict[str, tuple[int, dict[str, str]]] = {}
    for line, row in rows.rows:
        key = row["sourcedId"]
        if key in seen:
            errors.append(f"{rows.name} line {line}: sourcedId {key!r} repeats line {seen[key][0]}")
        seen[key] = (line, row)
    return seen


def import_oneroster(session: Session, data: bytes) -> ImportSummary:
    """Validates and stores the zip in `session` (the caller commits); raises RosterError."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise RosterError([f"not a zip file: {error}"]) from None
    if sum(info.file_size for info in archive.infolist()) > MAX_UNCOMPRESSED_BYTES:
        raise RosterError(["the zip unpacks to more than 200 MB"])
    errors: list[str] = []
    try:
        files = {name: _read(archive, name, cols, errors) for name, cols in REQUIRED.items()}
        roles_file = _read(archive, "roles.csv", ROLES_REQUIRED, errors)
    except (UnicodeDecodeError, csv.Error, zipfile.BadZipFile) as error:
        raise RosterError([f"unreadable CSV: {error}"]) from None
    for name, rows in files.items():
        if rows is None and not any(name in e for e in errors):
            errors.append(f"{name}: missing from the zip")
    if errors:
        raise RosterError(errors[:MAX_ERRORS])
    orgs = _unique(files["orgs.csv"], errors)
    users = _unique(files["users.csv"], errors)
    classes = _unique(files["classes.csv"], errors)
    enrollments = _unique(files["enrollments.csv"], errors)

    def known(model: type, ids: dict[str, tuple[int, dict[str, str]]], key: str) -> bool:
        if key in ids:
            return not _deleted(ids[key][1])
        return session.get(model, key) is not None

    for line, row in orgs.values():
        parent = row.get("parentSourcedId", "")
        if parent and not _deleted(row) and not known(RosterOrg, orgs, parent):
            errors.append(f"orgs.csv line {line}: parentSourcedId {parent!r} is not an org")
    for line, row in classes.values():
        school = row["schoolSourcedId"]
        if not _deleted(row) and not known(RosterOrg, orgs, school):
            errors.append(f"classes.csv line {line}: schoolSourcedId {school!r} is not an org")
    for line, row in enrollments.values():
        if _deleted(row):
            continue
        if not known(RosterClass, classes, row["classSourcedId"]):
            errors.append(
                f"enrollments.csv line {line}: classSourcedId {row['classSourcedId']!r}"
                " is not a class"
            )
        if not known(RosterUser, users, row["userSourcedId"]):
            errors.append(
                f"enrollments.csv line {line}: userSourcedId {row['userSourcedId']!r} is not a user"
            )
        if row["role"] not in ENROLMENT_ROLES:
            errors.append(
                f"enrollments.csv line {line}: role {row['role']!r} is not one of "
                + ", ".join(sorted(ENROLMENT_ROLES))
            )
    user_roles: dict[str, str] = {}
    if roles_file is not None:
        for line, row in roles_file.rows:
            if row["userSourcedId"] not in users:
                errors.append(f"roles.csv line {line}: userSourcedId {row['userSourcedId']!r}"
                              " is not in users.csv")  # fmt: skip
            elif row.get("roleType", "primary") in ("primary", ""):
                user_roles[row["userSourcedId"]] = row["role"]
    if errors:
        raise RosterError(errors[:MAX_ERRORS])

    for _, row in enrollments.values():
        user_roles.setdefault(row["userSourcedId"], row["role"])
    summary = ImportSummary()
    # Parents before children, children deleted before parents.
    for key, (_, row) in enrollments.items():
        if _deleted(row):
            summary.deleted += session.execute(
                delete(RosterEnrollment).where(RosterEnrollment.sourced_id == key)
            ).rowcount
    for key, (_, row) in orgs.items():
        if not _deleted(row):
            session.merge(
                RosterOrg(
                    sourced_id=key,
                    name=row["name"],
                    type=row["type"],
                    parent_id=row.get("parentSourcedId") or None,
                )
            )
            summary.orgs += 1
    for key, (_, row) in users.items():
        if not _deleted(row):
            role = user_roles.get(key) or row.get("role") or "student"
            session.merge(
                RosterUser(
                    sourced_id=key,
                    role=role,
                    username=row["username"],
                    given_name=row["givenName"],
                    family_name=row["familyName"],
                    identifier=row.get("identifier", ""),
                    org_id=row.get("primaryOrgSourcedId") or row.get("orgSourcedIds") or None,
                )
            )
            summary.users += 1
            summary.students += role == "student"
            summary.teachers += role == "teacher"
    for key, (_, row) in classes.items():
        if not _deleted(row):
            session.merge(
                RosterClass(
                    sourced_id=key,
                    title=row["title"],
                    class_code=row.get("classCode", ""),
                    school_id=row["schoolSourcedId"],
                )
            )
            summary.classes += 1
    session.flush()
    for key, (_, row) in enrollments.items():
        if not _deleted(row):
            session.merge(
                RosterEnrollment(
                    sourced_id=key,
                    class_id=row["classSourcedId"],
                    user_id=row["userSourcedId"],
                    role=row["role"],
                )
            )
            summary.enrollments += 1
    session.flush()
    for model, rows in ((RosterClass, classes), (RosterUser, users), (RosterOrg, orgs)):
        for key, (_, row) in rows.items():
            if _deleted(row):
                summary.deleted += session.execute(
                    delete(model).where(model.sourced_id == key)
                ).rowcount
    return summary


def roster_classes(session: Session, class_ids: frozenset[str] | None) -> list[RosterClass]:
    query = select(RosterClass).order_by(RosterClass.sourced_id)
    if class_ids is not None:
        query = query.where(RosterClass.sourced_id.in_(sorted(class_ids)))
    return list(session.scalars(query))
