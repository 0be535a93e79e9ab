"""The skill graph, item tags and resources in the database: import, edit, read.

Imports are all-or-nothing (one transaction) and refuse what would leave the graph broken: an edge,
tag or resource naming a skill that does not exist, or prerequisites that go round in a circle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from central.tracing import TracingError
from central.tracing.files import ItemTag, PrerequisiteSpec, ResourceSpec, SkillSpec
from central.tracing.models import ItemSkill, Prerequisite, Resource, Skill


@dataclass(frozen=True)
class ImportSummary:
    skills: int = 0
    prerequisites: int = 0
    item_tags: int = 0
    resources: int = 0


def find_cycle(requires: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A list of skills going round a circle of prerequisites (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(requires):
        if state.get(start):
            continue
        path = [start]
        stack = [iter(sorted(requires.get(start, ())))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(requires.get(nxt, ()))))
    return None


def prerequisite_map(session: Session) -> dict[str, set[str]]:
    requires: dict[str, set[str]] = defaultdict(set)
    for skill_id, requires_id in session.execute(
        select(Prerequisite.skill_id, Prerequisite.requires_id)
    ):
        requires[skill_id].add(requires_id)
    return dict(requires)


def _check_graph(session: Session) -> None:
    session.flush()
    cycle = find_cycle(prerequisite_map(session))
    if cycle:
        raise TracingError(f"prerequisites go round in a circle: {' -> '.join(cycle)}")


def _known_skills(session: Session) -> set[str]:
    return set(session.scalars(select(Skill.skill_id)))


def _require_skills(known: set[str], wanted: Iterable[str], what: str) -> None:
    unknown = sorted(set(wanted) - known)
    if unknown:
        shown = ", ".join(unknown[:8]) + (" …" if len(unknown) > 8 else "")
        raise TracingError(f"{what} name(s) unknown skill(s): {shown}; import the skills first")


def _put_skill_row(session: Session, spec: SkillSpec) -> None:
    row = session.get(Skill, spec.skill_id)
    if row is None:
        session.add(Skill(skill_id=spec.skill_id, name=spec.name, description=spec.description))
    else:
        row.name = spec.name
        row.description = spec.description


def _set_prerequisites(session: Session, skill_id: str, requires: Iterable[str]) -> None:
    session.execute(delete(Prerequisite).where(Prerequisite.skill_id == skill_id))
    for requires_id in dict.fromkeys(requires):
        if requires_id == skill_id:
            raise TracingError(f"skill {skill_id!r} cannot require itself")
        session.add(Prerequisite(skill_id=skill_id, requires_id=requires_id))


def import_catalogue(
    session: Session,
    *,
    skills: list[SkillSpec] | None = None,
    prerequisites: list[PrerequisiteSpec] | None = None,
    items: list[ItemTag] | None = None,
    resources: list[ResourceSpec] | None = None,
) -> ImportSummary:
    """Skills and resources are added or updated by id; a prerequisites file replaces every edge;
    an items file replaces the tags of each exam it names. Call inside a transaction."""
    for spec in skills or ():
        _put_skill_row(session, spec)
    session.flush()
    known = _known_skills(session)
    edges = 0
    for spec in skills or ():
        if spec.prerequisites:
            _require_skills(known, spec.prerequisites, f"skill {spec.skill_id!r}'s prerequisites")
            _set_prerequisites(session, spec.skill_id, spec.prerequisites)
            edges += len(set(spec.prerequisites))
    if prerequisites is not None:
        _require_skills(
            known,
            [e.skill_id for e in prerequisites] + [e.requires_id for e in prerequisites],
            "the prerequisites",
        )
        session.execute(delete(Prerequisite))
        session.flush()
        unique = {(e.skill_id, e.requires_id) for e in prerequisites}
        session.add_all(Prerequisite(skill_id=s, requires_id=r) for s, r in sorted(unique))
        edges = len(unique)
    _check_graph(session)
    if items is not None:
        _require_skills(known, [t.skill_id for t in items], "the item tags")
        exams = {t.exam_id for t in items}
        session.execute(delete(ItemSkill).where(ItemSkill.exam_id.in_(exams)))
        session.flush()
        session.add_all(
            ItemSkill(exam_id=t.exam_id, question_id=t.question_id, skill_id=t.skill_id)
            for t in items
        )
    for resource in resources or ():
        _require_skills(known, resource.skills, f"resource {resource.resource_id!r}")
        put_resource(session, resource)
    session.flush()
    return ImportSummary(
        skills=len(skills or ()),
        prerequisites=edges,
        item_tags=len(items or ()),
        resources=len(resources or ()),
    )


def put_skill(session: Session, spec: SkillSpec) -> None:
    """Add or replace one skill together with its prerequisites."""
    _put_skill_row(session, spec)
    session.flush()
    _require_skills(_known_skills(session), spec.prerequisites, "the prerequisites")
    _set_prerequisites(session, spec.skill_id, spec.prerequisites)
    _check_graph(session)


def put_item(session: Session, exam_id: str, question_id: str, skill_ids: list[str]) -> None:
    """Set the skills a question exercises (an empty list removes its tags)."""
    _require_skills(_known_skills(session), skill_ids, "the item's skills")
    session.execute(
        delete(ItemSkill).where(ItemSkill.exam_id == exam_id, ItemSkill.question_id == question_id)
    )
    session.flush()
    session.add_all(
        ItemSkill(exam_id=exam_id, question_id=question_id, skill_id=s)
        for s in dict.fromkeys(skill_ids)
    )
    session.flush()


def put_resource(session: Session, spec: ResourceSpec) -> None:
    _require_skills(_known_skills(session), spec.skills, f"resource {spec.resource_id!r}")
    row = session.get(Resource, spec.resource_id)
    if row is None:
        row = Resource(resource_id=spec.resource_id)
        session.add(row)
    row.title = spec.title
    row.kind = spec.kind
    row.url = spec.url
    row.minutes = spec.minutes
    row.skills = list(spec.skills)
    session.flush()


def item_skills(session: Session, exam_id: str, question_id: str) -> list[str]:
    return sorted(
        session.scalars(
            select(ItemSkill.skill_id).where(
                ItemSkill.exam_id == exam_id, ItemSkill.question_id == question_id
            )
        )
    )


def skill_names(session: Session) -> dict[str, str]:
    return dict(session.execute(select(Skill.skill_id, Skill.name).order_by(Skill.skill_id)).all())
