"""Dashboard pages: fleet health, exam results with handwriting replay, the review queue with
accept/correct forms, and class item statistics with an SVG chart.

Server-rendered; the only script replays strokes in writing order. Every value from the store is
escaped; stroke coordinates go through central/svg.py's number formatting.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import parse_qs, quote

import anyio
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from central.auth.security import CurrentAccess
from central.fleet.api import _fleet
from central.results import list_exams, natural_key
from central.review import review_list
from central.roster.oneroster import roster_classes
from central.roster.scope import class_students
from central.school.answers import Standing, standing_answers
from central.school.api import Db, DecisionIn, class_results, decide
from central.svg import _num, answer_svg

router = APIRouter(tags=["dashboard"])

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}"
    "td,th{border:1px solid #ddd;padding:.3rem .5rem;vertical-align:middle}"
    "table{border-collapse:collapse}th{background:#f4f4f4}nav a{margin-right:1em}"
    ".online{background:#e6f4ea}.degraded{background:#fff4d6}.offline{background:#fde8e8}"
    ".review{background:#fff4d6}.correct{background:#e6f4ea}.wrong{background:#fde8e8}"
)
# Draws each answer's strokes point by point in the order and rhythm they were written.
REPLAY_JS = """
document.querySelectorAll('svg.replay').forEach(svg => {
  const strokes = JSON.parse(svg.dataset.strokes);
  const g = svg.querySelector('g.ink');
  let delay = 0;
  strokes.forEach(s => {
    const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    path.setAttribute('class', 'stroke');
    g.appendChild(path);
    let d = '';
    s.forEach((p, i) => {
      delay += Math.min(p[2], 60);
      setTimeout(() => {
        d += (i ? ' L' : 'M') + p[0] + ' ' + p[1];
        path.setAttribute('d', d);
        path.dataset.points = i + 1;
        svg.dataset.drawn = Number(svg.dataset.drawn || 0) + 1;
      }, delay);
    });
  });
});
"""


def _page(request: Request, title: str, body: str, script: str = "") -> HTMLResponse:
    root = escape(request.scope.get("root_path", ""))
    nav = "".join(
        f"<a href='{root}{href}'>{label}</a>"
        for href, label in (
            ("/dashboard", "dashboard"),
            ("/dashboard/fleet", "fleet"),
            ("/dashboard/review", "review queue"),
        )
    )
    return HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} · classink</title><style>{STYLE}</style></head><body>"
        f"<nav>{nav}<form method='post' action='{root}/logout' style='display:inline'>"
        f"<button>sign out</button></form></nav><h1>{escape(title)}</h1>{body}"
        + (f"<script>{script}</script>" if script else "")
        + "</body></html>"
    )


def _table(headers: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


@router.get("/dashboard", response_class=HTMLResponse)
def home(request: Request, db: Db, access: CurrentAccess) -> HTMLResponse:
    root = escape(request.scope.get("root_path", ""))
    role = access.principal.role
    parts = [f"<p>Signed in as {escape(access.principal.user_id)} ({role}).</p>"]
    # Only links the role may follow (central/auth/policy.py).
    if role in ("admin", "teacher", "marker"):
        links = "".join(
            f"<li><a href='{root}/dashboard/classes/{quote(c.sourced_id, safe='')}'>"
            f"{escape(c.title)}</a></li>"
            for c in roster_classes(db, access.classes)
        )
        parts.append(f"<h2>Classes</h2><ul>{links}</ul>")
    if role in ("admin", "teacher", "marker"):
        exams = "".join(
            f"<li><a href='{root}/dashboard/exams/{quote(e.exam_id, safe='')}'>"
            f"{escape(e.exam_id)}</a> ({e.students} students)</li>"
            for e in list_exams(db, access.students)
        )
        parts.append(f"<h2>Exams</h2><ul>{exams}</ul>")
    if role == "admin":
        parts.append(
            f"<h2>Fleet</h2><p><a href='{root}/dashboard/fleet'>table</a> · "
            f"<a href='{root}/dashboard/fleet/map'>map</a></p>"
        )
    if role == "researcher":
        parts.append(f"<p><a href='{root}/api/export/xapi'>Pseudonymised xAPI export</a></p>")
    return _page(request, "classink dashboard", "".join(parts))


@router.get("/dashboard/fleet", response_class=HTMLResponse)
def fleet_page(request: Request) -> HTMLResponse:
    fleet = _fleet(request)
    rows = [
        f"<tr class='{escape(g.health)}'><td>{escape(g.site_id)}</td>"
        f"<td>{escape(g.gateway_id)}</td>"
        f"<td>{escape(g.health)}</td><td>{escape(str(g.health_since or ''))}</td>"
        f"<td>{escape(', '.join(g.health_reasons or []))}</td>"
        f"<td>{g.config_version_acked or 0}/{g.config_version_published or 0}</td></tr>"
        for g in fleet.gateways()
    ]
    alerts = [
        f"<li>{escape(a.site_id)}/{escape(a.gateway_id)}: {escape(a.message)}</li>"
        for a in fleet.alerts()
    ]
    root = escape(request.scope.get("root_path", ""))
    body = f"<p><a href='{root}/dashboard/fleet/map' id='map-view'>map view</a></p>" + _table(
        ["site", "gateway", "health", "since", "why", "config acked"], rows
    )
    return _page(
        request, "Fleet", body + f"<h2>Open alerts ({len(alerts)})</h2><ul>{''.join(alerts)}</ul>"
    )


def _replay_svg(answer: Standing) -> str:
    # The static drawing first (visible without script); the script redraws it in writing order.
    still = answer_svg([s["points"] for s in answer.strokes], answer.box_mm)
    points = [[[_num(p[0]), _num(p[1]), int(p[2])] for p in s["points"]] for s in answer.strokes]
    data = escape(str(points).replace("'", '"'))
    x, y, w, h = (float(v) for v in answer.box_mm)
    return (
        f"<svg class='replay' data-strokes='{data}' viewBox='{_num(x - 2)} {_num(y - 2)} "
        f"{_num(w + 4)} {_num(h + 4)}' width='120' height='{_num(120 * (h + 4) / (w + 4))}'>"
        "<g class='ink' fill='none' stroke='#1a5fb4' stroke-width='0.45' stroke-linecap='round'>"
        f"</g></svg><span hidden>{still}</span>"
    )


def _results_table(answers: list[Standing]) -> str:
    """One row per student, one cell per question: handwriting (replayed), label, colour."""
    questions = sorted({a.question_id for a in answers}, key=natural_key)
    grid: dict[str, dict[str, Standing]] = {}
    for a in answers:
        grid.setdefault(a.learner, {})[a.question_id] = a
    rows = []
    for learner in sorted(grid, key=natural_key):
        cells = []
        for q in questions:
            a = grid[learner].get(q)
            if a is None:
                cells.append("<td></td>")
                continue
            css = "review" if a.status == "review" else ("correct" if a.correct else "wrong")
            cells.append(f"<td class='{css}'>{_replay_svg(a)} <b>{escape(a.label)}</b></td>")
        rows.append(f"<tr><th>{escape(learner)}</th>{''.join(cells)}</tr>")
    return _table(["student", *questions], rows)


@router.get("/dashboard/exams/{exam_id:path}", response_class=HTMLResponse)
def exam_page(request: Request, exam_id: str, db: Db, access: CurrentAccess) -> HTMLResponse:
    answers = standing_answers(db, exam_id, access.students)
    if not answers:
        raise HTTPException(404, f"no answers for exam {exam_id!r}")
    return _page(request, f"Results: {exam_id}", _results_table(answers), REPLAY_JS)


@router.get("/dashboard/review", response_class=HTMLResponse)
def review_page(request: Request, db: Db, access: CurrentAccess) -> HTMLResponse:
    root = escape(request.scope.get("root_path", ""))
    items = review_list(db, None, 1000, access.students)
    rows = []
    for item in items:
        ink = answer_svg([s.points for s in item.strokes], item.box_mm)
        action = f"{root}/dashboard/review/{quote(item.event_id, safe='')}"
        rows.append(
            f"<tr id='r-{escape(item.event_id)}'><td>{escape(item.exam_id)}</td>"
            f"<td>{escape(item.student_id or 'pen ' + item.pen_id)}</td>"
            f"<td>{escape(item.question_id)}</td><td>{ink}</td><td>{escape(item.label)}</td>"
            f"<td>{escape(item.review_reason or '')}</td><td><form method='post' action='{action}'>"
            f"<label>read <input name='label' value='{escape(item.label)}' size='4'></label> "
            f"<label>points <input name='points_awarded' type='number' step='any' min='0' "
            f"max='{item.points_possible:g}' required style='width:4em'></label> "
            f"<small>of {item.points_possible:g}</small> "
            "<button name='action' value='accept'>accept</button>"
            "<button name='action' value='correct'>correct</button></form></td></tr>"
        )
    body = (
        _table(["exam", "student", "question", "handwriting", "read as", "why", "decide"], rows)
        if rows
        else "<p>Nothing to review.</p>"
    )
    return _page(request, f"Review queue ({len(rows)})", body)


@router.post("/dashboard/review/{event_id}", responses={303: {}, 422: {}})
async def review_decide(request: Request, event_id: str, access: CurrentAccess) -> Any:
    """The review page's form (urlencoded); the same checks as the JSON endpoint."""
    raw = await request.body()
    if len(raw) > 4096:
        raise HTTPException(413, "the form is too large")
    form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", errors="replace")).items()}
    try:
        body = DecisionIn.model_validate(
            {
                "action": form.get("action"),
                "label": form.get("label") or None,
                "points_awarded": form.get("points_awarded") or None,
            }
        )
    except ValidationError as error:
        raise HTTPException(422, error.errors(include_url=False, include_context=False)) from None
    await anyio.to_thread.run_sync(decide, request, event_id, body, access)
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/dashboard/review", status_code=303)


def _chart(items: list[Any]) -> str:
    """p-value (bar) and discrimination (dot) per question, 0..1 on the same axis."""
    width, height, bar = 60 * max(len(items), 1) + 40, 220, 30
    parts = [
        f"<svg class='chart' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'"
        f" viewBox='0 0 {width} {height}' role='img' aria-label='item statistics'>",
        "<line x1='30' y1='190' x2='100%' y2='190' stroke='#888'/>",
    ]
    for n, item in enumerate(items):
        x = 40 + 60 * n
        if item.p_value is not None:
            h = 170 * item.p_value
            parts.append(
                f"<rect class='p-value' x='{x}' y='{_num(190 - h)}' width='{bar}' "
                f"height='{_num(h)}' fill='#3584e4'><title>p = {item.p_value:.2f}</title></rect>"
            )
        if item.discrimination is not None:
            y = 190 - 170 * max(item.discrimination, 0.0)
            parts.append(
                f"<circle class='discrimination' cx='{x + bar / 2:g}' cy='{_num(y)}' r='5' "
                f"fill='#e66100'><title>r = {item.discrimination:.2f}</title></circle>"
            )
        parts.append(
            f"<text x='{x + bar / 2:g}' y='207' text-anchor='middle' font-size='12'>"
            f"{escape(item.question_id)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


@router.get("/dashboard/classes/{class_id}", response_class=HTMLResponse)
def class_page(request: Request, class_id: str, db: Db, exam_id: str | None = None) -> HTMLResponse:
    students = class_students(db, [class_id])
    exams = sorted({a.exam_id for a in standing_answers(db, None, students)}, key=natural_key)
    if exam_id is None:
        if not exams:
            return _page(request, f"Class {class_id}", "<p>No answers yet.</p>")
        exam_id = exams[0]
    results = class_results(db, class_id, exam_id)

    def fmt(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f}"

    rows = [
        f"<tr><th>{escape(i.question_id)}</th><td>{fmt(i.p_value)}</td>"
        f"<td>{fmt(i.discrimination)}</td><td>{fmt(i.blank_rate)}</td>"
        f"<td>{fmt(i.review_rate)}</td><td>{i.learners}</td></tr>"
        for i in results.items
    ]
    table = _table(["question", "p-value", "discrimination", "blank", "review", "learners"], rows)
    legend = "<p>Bars: p-value (share of points). Dots: discrimination (point-biserial).</p>"
    other = " ".join(
        f"<a href='?exam_id={quote(e, safe='')}'>{escape(e)}</a>" for e in exams if e != exam_id
    )
    answers = standing_answers(db, exam_id, students)
    return _page(
        request,
        f"Class {class_id}: {exam_id}",
        _chart(results.items)
        + legend
        + table
        + (f"<p>Other exams: {other}</p>" if other else "")
        + "<h2>Answers</h2>"
        + _results_table(answers),
        REPLAY_JS,
    )
