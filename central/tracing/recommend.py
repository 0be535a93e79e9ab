"""What a student should work on next, and what a class as a whole has not mastered yet.

A skill counts as mastered from MASTERED on (P(mastered) by BKT). Recommendations go to the
weakest skills whose prerequisites are mastered; for a weak skill whose prerequisites are not, the
missing prerequisite that can be learnt now is recommended instead, and the reason says so.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.models import AnswerEvent
from central.tracing.catalogue import prerequisite_map, skill_names
from central.tracing.mastery import latest_version, tracer_of
from central.tracing.models import Mastery, Resource

MASTERED = 0.85
# Below this a skill is "not yet" rather than "developing": explanations before practice.
STRUGGLING = 0.5
RESOURCES_PER_SKILL = 2
# "Most of a class": the class report flags skills that at least this share has not mastered.
MOST = 0.5


class SkillState(BaseModel):
    skill_id: str
    name: str
    # P(mastered); for a skill without answers, the model's prior for it.
    mastery: float
    answers: int
    correct: int
    mastered: bool
    requires: list[str]

    @property
    def assessed(self) -> bool:
        return self.answers > 0


class Recommendation(BaseModel):
    resource_id: str
    title: str
    kind: str
    url: str
    minutes: float | None
    skill_id: str
    skill_name: str
    mastery: float
    reason: str


def _percent(value: float) -> str:
    return f"{round(100 * value)}%"


def student_skills(session: Session, student_id: str) -> dict[str, SkillState]:
    """Every skill of the graph (and any other skill the student has answers on), in name order."""
    names = skill_names(session)
    requires = prerequisite_map(session)
    tracer = tracer_of(latest_version(session))
    rows = {
        row.skill_id: row
        for row in session.scalars(select(Mastery).where(Mastery.student_id == student_id))
    }
    states = {}
    for skill_id in sorted(set(names) | set(rows), key=lambda s: (names.get(s, s), s)):
        row = rows.get(skill_id)
        mastery = row.mastery if row is not None else tracer.prior(skill_id)
        states[skill_id] = SkillState(
            skill_id=skill_id,
            name=names.get(skill_id, skill_id),
            mastery=mastery,
            answers=row.answers if row is not None else 0,
            correct=row.correct if row is not None else 0,
            mastered=row is not None and mastery >= MASTERED,
            requires=sorted(requires.get(skill_id, ())),
        )
    return states


def _evidence(state: SkillState) -> str:
    if not state.assessed:
        return f"{state.name}: no answers yet"
    return (
        f"{state.name}: mastery {_percent(state.mastery)} after {state.answers} "
        f"answer{'s' if state.answers != 1 else ''} ({state.correct} right)"
    )


def _learnable_roots(skill_id: str, states: dict[str, SkillState]) -> list[str]:
    """The unmastered prerequisites of `skill_id` (at any depth) whose own prerequisites are all
    mastered: where to start when `skill_id` is out of reach."""
    found: list[str] = []
    seen: set[str] = set()
    stack = [skill_id]
    while stack:
        current = stack.pop()
        for requirement in states[current].requires if current in states else ():
            if requirement in seen or requirement not in states:
                continue
            seen.add(requirement)
            if states[requirement].mastered:
                continue
            if all(states[r].mastered for r in states[requirement].requires if r in states):
                found.append(requirement)
            else:
                stack.append(requirement)
    return sorted(found, key=lambda s: (states[s].mastery, s))


def focus_skills(states: dict[str, SkillState]) -> list[tuple[str, str]]:
    """(skill, reason) to work on, most urgent first: weak skills that are assessed come before
    skills not tried yet, weaker before stronger."""
    reasons: dict[str, list[str]] = {}

    def ready(skill_id: str) -> bool:
        return all(states[r].mastered for r in states[skill_id].requires if r in states)

    def prerequisites_note(state: SkillState) -> str:
        if not state.requires:
            return "it needs no other skill first"
        named = ", ".join(states[r].name if r in states else r for r in state.requires)
        return f"its prerequisites ({named}) are mastered"

    weak = [s for s in states.values() if s.assessed and not s.mastered]
    for state in sorted(weak, key=lambda s: (s.mastery, s.skill_id)):
        if ready(state.skill_id):
            reasons.setdefault(state.skill_id, [_evidence(state), prerequisites_note(state)])
            continue
        for root in _learnable_roots(state.skill_id, states):
            reasons.setdefault(root, [_evidence(states[root])]).append(
                f"needed first for {state.name} (mastery {_percent(state.mastery)})"
            )
    untried = [s for s in states.values() if not s.assessed and ready(s.skill_id)]
    # Skills that build on mastered ones before skills that build on nothing.
    for state in sorted(untried, key=lambda s: (len(s.requires) == 0, s.skill_id)):
        reasons.setdefault(
            state.skill_id, [_evidence(state), f"next to learn: {prerequisites_note(state)}"]
        )
    return [(skill, "; ".join(parts)) for skill, parts in reasons.items()]


def recommend(session: Session, student_id: str, limit: int = 5) -> list[Recommendation]:
    states = student_skills(session, student_id)
    resources = session.scalars(select(Resource).order_by(Resource.resource_id)).all()
    by_skill: dict[str, list[Resource]] = {}
    for resource in resources:
        for skill in resource.skills:
            by_skill.setdefault(skill, []).append(resource)
    chosen: list[Recommendation] = []
    taken: set[str] = set()
    for skill_id, reason in focus_skills(states):
        state = states[skill_id]
        # Explanations first while a skill is weak; practice first once it is on its way.
        explain_first = state.mastery < STRUGGLING or not state.assessed
        candidates = sorted(
            (r for r in by_skill.get(skill_id, ()) if r.resource_id not in taken),
            key=lambda r: ((r.kind == "practice") == explain_first, len(r.skills), r.resource_id),
        )
        for resource in candidates[:RESOURCES_PER_SKILL]:
            taken.add(resource.resource_id)
            chosen.append(
                Recommendation(
                    resource_id=resource.resource_id,
                    title=resource.title,
                    kind=resource.kind,
                    url=resource.url,
                    minutes=resource.minutes,
                    skill_id=skill_id,
                    skill_name=state.name,
                    mastery=state.mastery,
                    reason=reason,
                )
            )
            if len(chosen) >= limit:
                return chosen
    return chosen


class ClassSkill(BaseModel):
    skill_id: str
    name: str
    students: int
    assessed: int
    mastered: int
    # Of the students assessed on the skill, the share that has not mastered it.
    not_mastered_share: float | None
    mean_mastery: float | None
    most_not_mastered: bool


class ClassReport(BaseModel):
    students: list[str]
    skills: list[ClassSkill]


def class_students(session: Session, exam_id: str) -> list[str]:
    """A class, as the students who sat an exam."""
    return sorted(
        session.scalars(
            select(AnswerEvent.student_id)
            .where(AnswerEvent.exam_id == exam_id, AnswerEvent.student_id.is_not(None))
            .distinct()
        )
    )


def class_mastery(
    session: Session, students: Iterable[str]
) -> tuple[dict[str, str], dict[tuple[str, str], Mastery]]:
    """(skill names, (student, skill) -> mastery row) for a class; names cover every skill that
    is in the graph or that a student of the class has answers on."""
    students = list(students)
    rows = {
        (row.student_id, row.skill_id): row
        for row in session.scalars(select(Mastery).where(Mastery.student_id.in_(students)))
    }
    names = skill_names(session)
    for _, skill in rows:
        names.setdefault(skill, skill)
    return names, rows


def class_report(session: Session, students: list[str]) -> ClassReport:
    names, rows = class_mastery(session, students)
    skills = []
    for skill_id, name in names.items():
        values = [rows[s, skill_id].mastery for s in students if (s, skill_id) in rows]
        mastered = sum(v >= MASTERED for v in values)
        share = (len(values) - mastered) / len(values) if values else None
        skills.append(
            ClassSkill(
                skill_id=skill_id,
                name=name,
                students=len(students),
                assessed=len(values),
                mastered=mastered,
                not_mastered_share=share,
                mean_mastery=sum(values) / len(values) if values else None,
                most_not_mastered=share is not None and share >= MOST,
            )
        )
    skills.sort(
        key=lambda s: (
            s.not_mastered_share is None,
            -(s.not_mastered_share or 0.0),
            s.mean_mastery or 0.0,
            s.skill_id,
        )
    )
    return ClassReport(students=students, skills=skills)
