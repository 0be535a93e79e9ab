"""The files a school imports into tracing: skills, prerequisites, item tags, resources.

Formats (docs/tracing.md): CSV with a header line, or JSON. Every problem is a TracingError that
names the file and, for CSV, the line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from central.tracing import TracingError

RESOURCE_KINDS = ("micro-lecture", "practice", "reading", "video", "activity")
MAX_ID = 128


@dataclass(frozen=True)
class SkillSpec:
    skill_id: str
    name: str
    description: str = ""
    # Only from JSON skill files, where prerequisites may be given with the skill.
    prerequisites: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class PrerequisiteSpec:
    skill_id: str
    requires_id: str


@dataclass(frozen=True)
class ItemTag:
    exam_id: str
    question_id: str
    skill_id: str


@dataclass(frozen=True)
class ResourceSpec:
    resource_id: str
    title: str
    kind: str
    skills: tuple[str, ...]
    url: str = ""
    minutes: float | None = None


def _text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TracingError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise TracingError(f"{path}: cannot read it as UTF-8 text: {error}") from error


def _identifier(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TracingError(f"{where}: {what} must be a non-empty text")
    value = value.strip()
    if len(value) > MAX_ID:
        raise TracingError(f"{where}: {what} {value[:20]!r}... is longer than {MAX_ID} characters")
    return value


def _csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    """(where, row) per non-blank data row, with `where` = "FILE, line N"."""
    reader = csv.DictReader(io.StringIO(_text(path), newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in required if name not in header]
    if missing:
        raise TracingError(
            f"{path}: missing column(s) {', '.join(missing)} "
            f"(header is {','.join(header) or 'empty'}; expected {','.join(required)})"
        )
    reader.fieldnames = header
    try:
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            if None in row:
                raise TracingError(f"{where}: more fields than the header names")
            values = {key: (value or "").strip() for key, value in row.items()}
            if any(values.values()):
                yield where, values
    except csv.Error as error:
        raise TracingError(f"{path}: not valid CSV: {error}") from error


def _json(path: Path) -> Any:
    try:
        return json.loads(_text(path))
    except json.JSONDecodeError as error:
        raise TracingError(f"{path}: not valid JSON: {error}") from error


def _json_records(path: Path, key: str) -> list[tuple[str, dict[str, Any]]]:
    doc = _json(path)
    records = doc.get(key) if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise TracingError(f"{path}: expected a list of {key}, or an object with a {key!r} list")
    out = []
    for index, record in enumerate(records):
        where = f"{path}, {key}[{index}]"
        if not isinstance(record, dict):
            raise TracingError(f"{where}: expected an object")
        out.append((where, record))
    return out


def _is_json(path: Path) -> bool:
    return Path(path).suffix.lower() == ".json"


def read_skills(path: Path) -> list[SkillSpec]:
    if _is_json(path):
        skills = []
        for where, record in _json_records(path, "skills"):
            requires = record.get("prerequisites", [])
            if not isinstance(requires, list):
                raise TracingError(f"{where}: prerequisites must be a list of skill ids")
            skill_id = _identifier(record.get("skill_id"), "skill_id", where)
            skills.append(
                SkillSpec(
                    skill_id,
                    str(record.get("name") or skill_id).strip(),
                    str(record.get("description") or "").strip(),
                    tuple(_identifier(r, "a prerequisite", where) for r in requires),
                )
            )
    else:
        skills = [
            SkillSpec(
                _identifier(row["skill_id"], "skill_id", where),
                row.get("name") or row["skill_id"],
                row.get("description", ""),
            )
            for where, row in _csv_rows(path, ("skill_id", "name"))
        ]
    seen: set[str] = set()
    for skill in skills:
        if skill.skill_id in seen:
            raise TracingError(f"{path}: skill {skill.skill_id!r} is listed twice")
        seen.add(skill.skill_id)
    if not skills:
        raise TracingError(f"{path}: no skills in the file")
    return skills


def read_prerequisites(path: Path) -> list[PrerequisiteSpec]:
    if _is_json(path):
        rows = [
            (where, {"skill_id": r.get("skill_id"), "requires": r.get("requires")})
            for where, r in _json_records(path, "prerequisites")
        ]
    else:
        rows = list(_csv_rows(path, ("skill_id", "requires")))
    edges = []
    for where, row in rows:
        edge = PrerequisiteSpec(
            _identifier(row["skill_id"], "skill_id", where),
            _identifier(row["requires"], "requires", where),
        )
        if edge.skill_id == edge.requires_id:
            raise TracingError(f"{where}: skill {edge.skill_id!r} cannot require itself")
        edges.append(edge)
    return edges


def read_items(path: Path) -> list[ItemTag]:
    if _is_json(path):
        rows = []
        for where, record in _json_records(path, "items"):
            skills = record.get("skills")
            if not isinstance(skills, list) or not skills:
                raise TracingError(f"{where}: skills must be a non-empty list of skill ids")
            rows.extend((where, dict(record, skill_id=skill)) for skill in skills)
    else:
        rows = list(_csv_rows(path, ("exam_id", "question_id", "skill_id")))
    tags = {
        ItemTag(
            _identifier(row["exam_id"], "exam_id", where),
            _identifier(row["question_id"], "question_id", where),
            _identifier(row["skill_id"], "skill_id", where),
        ): None
        for where, row in rows
    }
    if not tags:
        raise TracingError(f"{path}: no item tags in the file")
    return list(tags)


def _minutes(value: Any, where: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        raise TracingError(f"{where}: minutes must be a number, not {value!r}") from None
    if not 0 < minutes < 10_000:
        raise TracingError(f"{where}: minutes must be positive, not {value!r}")
    return minutes


def resource_from_record(record: dict[str, Any], where: str) -> ResourceSpec:
    skills = record.get("skills")
    if isinstance(skills, str):
        skills = [s for s in skills.split(";") if s.strip()]
    if not isinstance(skills, list) or not skills:
        raise TracingError(f"{where}: skills must name at least one skill")
    kind = str(record.get("kind") or "").strip()
    if kind not in RESOURCE_KINDS:
        raise TracingError(
            f"{where}: kind must be one of {', '.join(RESOURCE_KINDS)}, not {kind!r}"
        )
    title = str(record.get("title") or "").strip()
    if not title:
        raise TracingError(f"{where}: title is missing")
    return ResourceSpec(
        _identifier(record.get("resource_id"), "resource_id", where),
        title,
        kind,
        tuple(dict.fromkeys(_identifier(s, "a skill id", where) for s in skills)),
        str(record.get("url") or "").strip(),
        _minutes(record.get("minutes"), where),
    )


def read_resources(path: Path) -> list[ResourceSpec]:
    if _is_json(path):
        rows = _json_records(path, "resources")
    else:
        rows = list(_csv_rows(path, ("resource_id", "title", "kind", "skills")))
    resources = [resource_from_record(record, where) for where, record in rows]
    ids = [r.resource_id for r in resources]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise TracingError(f"{path}: resource(s) listed twice: {', '.join(duplicates)}")
    if not resources:
        raise TracingError(f"{path}: no resources in the file")
    return resources
