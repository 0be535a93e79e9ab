"""The central web app: exam results as JSON and as a server-rendered page with the handwriting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import BaseModel
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from central.auth.security import CurrentAccess, authorize, install_security
from central.db import make_engine, make_session_factory
from central.fleet.api import router as fleet_router
from central.fleet.map import router as fleet_map_router
from central.fleet.sites import router as fleet_sites_router
from central.matching.api import router as matching_router
from central.results import Answer, ExamResults, ExamSummary, exam_results, list_exams
from central.review import router as review_router
from central.school.routes import router as school_router
from central.settings import CentralSettings
from central.svg import answer_svg
from central.tracing.api import router as tracing_router
from classink import __version__

TEMPLATES_DIR = Path(__file__).parent / "templates"


class Health(BaseModel):
    status: str


class NotFound(BaseModel):
    detail: str


def _handwriting(answer: Answer) -> Markup:
    # answer_svg emits only numbers it formatted itself, so its output is safe to insert as is.
    return Markup(answer_svg([stroke.points for stroke in answer.strokes], answer.box_mm))


def _points(value: float) -> str:
    return f"{value:g}"


def _page_context(request: Request) -> dict[str, Any]:
    # Links stay right when the app is served under a path prefix.
    return {"root": request.scope.get("root_path", "")}


def _exam_not_found(exam_id: str) -> str:
    return f"no results for exam {exam_id!r}: central has received no answers for it"


def _open_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


Db = Annotated[Session, Depends(_open_session)]


def create_app(settings: CentralSettings, engine: Engine | None = None) -> FastAPI:
    """The app reads through `engine` when given (shared with the ingest), else opens its own."""
    owns_engine = engine is None
    bound_engine = engine if engine is not None else make_engine(settings.database_url)
    sessions = make_session_factory(bound_engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_engine:
            bound_engine.dispose()

    app = FastAPI(
        title="classink central",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(authorize)],  # every route: token and role (central/auth)
        # The schema and its docs are served by central/auth, behind the same token check.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.sessions = sessions
    install_security(app)
    app.include_router(school_router)  # rosters, results, review decisions, xAPI, dashboard
    app.include_router(review_router)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    templates = Jinja2Templates(env=environment, context_processors=[_page_context])
    templates.env.filters["handwriting"] = _handwriting
    templates.env.filters["points"] = _points
    app.include_router(matching_router)
    app.include_router(tracing_router)
    app.include_router(fleet_router)
    app.include_router(fleet_sites_router)  # sites and their coordinates, for the map
    app.include_router(fleet_map_router)

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    def healthz(db: Db) -> Any:
        try:
            db.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return Health(status="ok")

    # A teacher's `access.students` holds these to the students of their classes; for everyone
    # else it is None (unrestricted), and the policy keeps researchers off per-student results.
    @app.get("/api/exams")
    def api_exams(db: Db, access: CurrentAccess) -> list[ExamSummary]:
        return list_exams(db, access.students)

    # `:path` because exam ids are free text (template ids) and may contain a slash.
    @app.get("/api/exams/{exam_id:path}/results", responses={404: {"model": NotFound}})
    def api_exam_results(exam_id: str, db: Db, access: CurrentAccess) -> ExamResults:
        results = exam_results(db, exam_id, access.students)
        if results is None:
            raise HTTPException(status_code=404, detail=_exam_not_found(exam_id))
        return results

    @app.get("/", response_class=HTMLResponse)
    def index_page(request: Request, db: Db, access: CurrentAccess) -> HTMLResponse:
        exams = list_exams(db, access.students)
        return templates.TemplateResponse(request, "index.html", {"exams": exams})

    @app.get("/exams/{exam_id:path}", response_class=HTMLResponse)
    def exam_page(request: Request, exam_id: str, db: Db, access: CurrentAccess) -> HTMLResponse:
        results = exam_results(db, exam_id, access.students)
        if results is None:
            return templates.TemplateResponse(
                request, "not_found.html", {"message": _exam_not_found(exam_id)}, status_code=404
            )
        return templates.TemplateResponse(request, "exam.html", {"results": results})

    return app
