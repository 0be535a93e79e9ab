"""Tracing in the central web app: the skill graph, mastery, recommendations and class reports as
JSON, and server-rendered pages with the knowledge graph picture and the class heat map."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from central.models import AnswerEvent
from central.tracing import TracingError
from central.tracing.catalogue import prerequisite_map, put_item, put_resource, put_skill
from central.tracing.files import ResourceSpec, SkillSpec, resource_from_record
from central.tracing.mastery import latest_version, replay_student, tracer_of
from central.tracing.models import ItemSkill, MasteryStep, ModelVersion, Resource, Skill
from central.tracing.picture import (
    knowledge_graph_svg,
    mastery_colour,
    skills_in_graph_order,
    sparkline_svg,
)
from central.tracing.recommend import (
    MASTERED,
    ClassReport,
    Recommendation,
    SkillState,
    class_mastery,
    class_report,
    class_students,
    recommend,
    student_skills,
)

router = APIRouter()

_environment = jinja2.Environment(
    loader=jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
            # central/templates, for base.html and not_found.html.
            jinja2.FileSystemLoader(Path(__file__).parents[1] / "templates"),
        ]
    ),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters["mastery_colour"] = mastery_colour
_environment.filters["percent"] = lambda v: "–" if v is None else f"{round(100 * v)}%"


def _page_context(request: Request) -> dict[str, Any]:
    return {"root": request.scope.get("root_path", "")}


templates = Jinja2Templates(env=_environment, context_processors=[_page_context])


def _open_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def _open_transaction(request: Request) -> Iterator[Session]:
    with request.app.state.sessions.begin() as session:
        yield session


Db = Annotated[Session, Depends(_open_session)]
Tx = Annotated[Session, Depends(_open_transaction)]


class SkillIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    prerequisites: list[str] = []


class SkillOut(SkillIn):
    skill_id: str


class ItemIn(BaseModel):
    exam_id: str = Field(min_length=1, max_length=128)
    question_id: str = Field(min_length=1, max_length=128)
    skills: list[str]


class ResourceIn(BaseModel):
    title: str
    kind: str
    url: str = ""
    minutes: float | None = None
    skills: list[str]


class ResourceOut(ResourceIn):
    resource_id: str


class HistoryPoint(BaseModel):
    answered_at: datetime
    exam_id: str
    question_id: str
    correct: bool
    predicted: float
    mastery: float


class SkillMastery(SkillState):
    history: list[HistoryPoint]


class StudentMastery(BaseModel):
    student_id: str
    mastered_from: float
    model_version: int | None
    skills: list[SkillMastery]


class HeatMap(BaseModel):
    exam_id: str
    students: list[str]
    skills: list[dict[str, str]]
    # mastery[i][j]: student i, skill j; None where the student has no answers on the skill.
    mastery: list[list[float | None]]


class VersionOut(BaseModel):
    version: int
    created_at: datetime
    answers: int
    students: int
    logistic: bool
    note: str


def _refuse(error: TracingError) -> HTTPException:
    return HTTPException(status_code=422, detail=str(error))


def _check_id(value: str, what: str) -> str:
    if not value.strip() or len(value) > 128:
        raise HTTPException(status_code=422, detail=f"{what} must be 1 to 128 characters")
    return value


# --- the skill graph, item tags and resources ---------------------------------------------


@router.get("/api/tracing/skills")
def list_skills(db: Db) -> list[SkillOut]:
    requires = prerequisite_map(db)
    return [
        SkillOut(
            skill_id=s.skill_id,
            name=s.name,
            description=s.description,
            prerequisites=sorted(requires.get(s.skill_id, ())),
        )
        for s in db.scalars(select(Skill).order_by(Skill.skill_id))
    ]


@router.put("/api/tracing/skills/{skill_id}", responses={422: {}})
def save_skill(skill_id: str, body: SkillIn, db: Tx) -> SkillOut:
    spec = SkillSpec(_check_id(skill_id, "skill_id"), body.name, body.description,
                     tuple(body.prerequisites))  # fmt: skip
    try:
        put_skill(db, spec)
    except TracingError as error:
        raise _refuse(error) from error
    return SkillOut(skill_id=skill_id, **body.model_dump())


@router.delete("/api/tracing/skills/{skill_id}", status_code=204, responses={404: {}})
def remove_skill(skill_id: str, db: Tx) -> Response:
    skill = db.get(Skill, skill_id)
    if skill is None:
        raise HTTPException(status_code=404, detail=f"no skill {skill_id!r}")
    # Edges and tags go with it (ON DELETE CASCADE); resources only lose it from their list.
    for resource in db.scalars(select(Resource)):
        if skill_id in resource.skills:
            resource.skills = [s for s in resource.skills if s != skill_id]
    db.delete(skill)
    return Response(status_code=204)


@router.get("/api/tracing/items")
def list_items(db: Db, exam_id: str | None = None) -> list[ItemIn]:
    query = select(ItemSkill).order_by(ItemSkill.exam_id, ItemSkill.question_id, ItemSkill.skill_id)
    if exam_id is not None:
        query = query.where(ItemSkill.exam_id == exam_id)
    items: dict[tuple[str, str], list[str]] = defaultdict(list)
    for tag in db.scalars(query):
        items[tag.exam_id, tag.question_id].append(tag.skill_id)
    return [ItemIn(exam_id=e, question_id=q, skills=s) for (e, q), s in items.items()]


@router.put("/api/tracing/items", responses={422: {}})
def save_item(body: ItemIn, db: Tx) -> ItemIn:
    try:
        put_item(db, body.exam_id, body.question_id, body.skills)
    except TracingError as error:
        raise _refuse(error) from error
    return body


@router.get("/api/tracing/resources")
def list_resources(db: Db) -> list[ResourceOut]:
    return [
        ResourceOut(
            resource_id=r.resource_id,
            title=r.title,
            kind=r.kind,
            url=r.url,
            minutes=r.minutes,
            skills=r.skills,
        )  # fmt: skip
        for r in db.scalars(select(Resource).order_by(Resource.resource_id))
    ]


@router.put("/api/tracing/resources/{resource_id}", responses={422: {}})
def save_resource(resource_id: str, body: ResourceIn, db: Tx) -> ResourceOut:
    try:
        spec: ResourceSpec = resource_from_record(
            dict(body.model_dump(), resource_id=resource_id), f"resource {resource_id!r}"
        )
        put_resource(db, spec)
    except TracingError as error:
        raise _refuse(error) from error
    return ResourceOut(resource_id=resource_id, **body.model_dump())


@router.delete("/api/tracing/resources/{resource_id}", status_code=204, responses={404: {}})
def remove_resource(resource_id: str, db: Tx) -> Response:
    deleted = db.execute(delete(Resource).where(Resource.resource_id == resource_id)).rowcount
    if not deleted:
        raise HTTPException(status_code=404, detail=f"no resource {resource_id!r}")
    return Response(status_code=204)


@router.get("/api/tracing/models")
def list_versions(db: Db) -> list[VersionOut]:
    return [
        VersionOut(
            version=v.version,
            created_at=v.created_at,
            answers=v.answers,
            students=v.students,
            logistic=v.logistic is not None,
            note=v.note,
        )  # fmt: skip
        for v in db.scalars(select(ModelVersion).order_by(ModelVersion.version.desc()))
    ]


# --- students -----------------------------------------------------------------------------


def _student_mastery(db: Session, student_id: str) -> StudentMastery:
    states = student_skills(db, student_id)
    history: dict[str, list[HistoryPoint]] = defaultdict(list)
    for step in db.scalars(
        select(MasteryStep).where(MasteryStep.student_id == student_id).order_by(MasteryStep.id)
    ):
        history[step.skill_id].append(
            HistoryPoint(
                answered_at=step.answered_at,
                exam_id=step.exam_id,
                question_id=step.question_id,
                correct=step.correct,
                predicted=step.predicted,
                mastery=step.mastery_after,
            )
        )
    version = latest_version(db)
    return StudentMastery(
        student_id=student_id,
        mastered_from=MASTERED,
        model_version=None if version is None else version.version,
        skills=[
            SkillMastery(**state.model_dump(), history=history.get(skill, []))
            for skill, state in states.items()
        ],
    )


def _known_student(db: Session, student_id: str) -> None:
    found = db.scalar(select(AnswerEvent.event_id).where(AnswerEvent.student_id == student_id))
    if found is None:
        raise HTTPException(
            status_code=404, detail=f"no student {student_id!r}: central has no answers of theirs"
        )


@router.get("/api/tracing/students/{student_id:path}/mastery", responses={404: {}})
def api_student_mastery(student_id: str, db: Db) -> StudentMastery:
    _known_student(db, student_id)
    return _student_mastery(db, student_id)


@router.get("/api/tracing/students/{student_id:path}/recommendations", responses={404: {}})
def api_recommendations(student_id: str, db: Db, limit: int = 5) -> list[Recommendation]:
    _known_student(db, student_id)
    return recommend(db, student_id, max(1, min(limit, 50)))


@router.post("/api/tracing/students/{student_id:path}/replay", responses={404: {}})
def api_replay(student_id: str, db: Tx) -> dict[str, int]:
    """Recompute a student's mastery from all their answers, e.g. after new item tags."""
    _known_student(db, student_id)
    version = latest_version(db)
    number = None if version is None else version.version
    return {"skill_answers": replay_student(db, student_id, tracer_of(version), number)}


@router.get("/tracing/students/{student_id:path}/graph.svg", responses={404: {}})
def student_graph_svg(student_id: str, db: Db) -> Response:
    _known_student(db, student_id)
    svg = knowledge_graph_svg(student_skills(db, student_id))
    return Response(svg, media_type="image/svg+xml")


@router.get("/tracing/students/{student_id:path}", response_class=HTMLResponse)
def student_page(request: Request, student_id: str, db: Db) -> HTMLResponse:
    try:
        _known_student(db, student_id)
    except HTTPException as missing:
        return templates.TemplateResponse(
            request, "not_found.html", {"message": missing.detail}, status_code=404
        )
    mastery = _student_mastery(db, student_id)
    states = {s.skill_id: SkillState(**s.model_dump(exclude={"history"})) for s in mastery.skills}
    return templates.TemplateResponse(
        request,
        "tracing_student.html",
        {
            "mastery": mastery,
            # Built only from escaped text and numbers formatted in central/tracing/picture.py.
            "graph": Markup(knowledge_graph_svg(states)),
            "sparklines": {
                s.skill_id: Markup(sparkline_svg([p.mastery for p in s.history]))
                for s in mastery.skills
            },
            "recommendations": recommend(db, student_id),
        },
    )


# --- classes ------------------------------------------------------------------------------


def _class_or_404(db: Session, exam_id: str) -> list[str]:
    students = class_students(db, exam_id)
    if not students:
        raise HTTPException(status_code=404, detail=f"no students have answers in exam {exam_id!r}")
    return students


def _heat_map(db: Session, exam_id: str) -> HeatMap:
    students = _class_or_404(db, exam_id)
    names, rows = class_mastery(db, students)
    skills = skills_in_graph_order(names, prerequisite_map(db))
    return HeatMap(
        exam_id=exam_id,
        students=students,
        skills=[{"skill_id": s, "name": names[s]} for s in skills],
        mastery=[
            [rows[student, s].mastery if (student, s) in rows else None for s in skills]
            for student in students
        ],
    )


@router.get("/api/tracing/classes/{exam_id:path}/report", responses={404: {}})
def api_class_report(exam_id: str, db: Db) -> ClassReport:
    return class_report(db, _class_or_404(db, exam_id))


@router.get("/api/tracing/classes/{exam_id:path}/heatmap", responses={404: {}})
def api_heat_map(exam_id: str, db: Db) -> HeatMap:
    return _heat_map(db, exam_id)


@router.get("/tracing/classes/{exam_id:path}", response_class=HTMLResponse)
def class_page(request: Request, exam_id: str, db: Db) -> HTMLResponse:
    try:
        heat_map = _heat_map(db, exam_id)
    except HTTPException as missing:
        return templates.TemplateResponse(
            request, "not_found.html", {"message": missing.detail}, status_code=404
        )
    return templates.TemplateResponse(
        request,
        "tracing_class.html",
        {
            "heat_map": heat_map,
            "report": class_report(db, heat_map.students),
            "mastered_from": MASTERED,
        },
    )


@router.get("/tracing", response_class=HTMLResponse)
def tracing_index(request: Request, db: Db) -> HTMLResponse:
    exams = sorted(db.scalars(select(AnswerEvent.exam_id).distinct()))
    students = sorted(
        db.scalars(
            select(AnswerEvent.student_id).where(AnswerEvent.student_id.is_not(None)).distinct()
        )
    )
    return templates.TemplateResponse(
        request,
        "tracing_index.html",
        {"exams": exams, "students": students, "skills": list_skills(db)},
    )
