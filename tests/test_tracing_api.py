"""Tracing pages and JSON over a class whose answers went through the real ingest and refit, on
SQLite and PostgreSQL; recommendations; and the pages in headless Chromium."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from browser import dump_dom, login_url, needs_chromium, screenshot, serve
from conftest import Messages, Store, admin_headers
from fastapi.testclient import TestClient
from PIL import Image
from test_tracing_central import Class, import_catalogue

from central.api import create_app
from central.settings import CentralSettings
from central.tracing.mastery import attach, refit
from central.tracing.picture import mastery_colour
from central.tracing.recommend import SkillState, focus_skills

QUESTIONS = {"q1": ["count"], "q2": ["add"], "q3": ["sub"], "q4": ["place"],
             "q5": ["add2", "place"]}  # fmt: skip
DIFFICULTY = {"count": -2.0, "add": -0.5, "sub": 0.3, "place": 0.0, "add2": 1.2}
STUDENTS = [f"stu-{i:02d}" for i in range(1, 13)]
MIDDLE = STUDENTS[7]  # some skills mastered, some not
SVG = "{http://www.w3.org/2000/svg}"


def _sit_exams(school: Class) -> None:
    """Twelve students sit four weekly sheets; stronger students and practice do better."""
    rng = np.random.default_rng(11)
    answers = []
    for index, student in enumerate(STUDENTS):
        ability = 1.6 - 0.3 * index
        for week in range(1, 5):
            for question, skills in QUESTIONS.items():
                difficulty = max(DIFFICULTY[s] for s in skills)
                p = 1 / (1 + math.exp(-(ability - difficulty + 0.35 * week)))
                answers.append((student, question, bool(rng.random() < p), week))
    # Most are stored directly (quick); the last week of the first student goes through ingest.
    school.store_directly(a for a in answers if not (a[0] == STUDENTS[0] and a[3] == 4))
    refit(school.store.sessions)
    for student, question, correct, week in answers:
        if student == STUDENTS[0] and week == 4:
            school.answer(student, question, correct, week)


def _school(store: Store, tmp_path: Path) -> Class:
    import_catalogue(store.url, tmp_path)
    updater = attach(store.ingestor, store.sessions)
    school = Class(store, Messages(), updater, datetime(2026, 11, 2, 8, 0, tzinfo=UTC))
    _sit_exams(school)
    return school


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    """On SQLite and PostgreSQL."""
    school = _school(store, tmp_path)
    app = create_app(CentralSettings(database_url=school.store.url))
    with TestClient(app, headers=admin_headers(app)) as test_client:
        yield test_client


@pytest.fixture
def sqlite_client(sqlite_store: Store, tmp_path: Path) -> Iterator[TestClient]:
    """For what does not depend on the database."""
    school = _school(sqlite_store, tmp_path)
    app = create_app(CentralSettings(database_url=school.store.url))
    with TestClient(app, headers=admin_headers(app)) as test_client:
        yield test_client


def test_student_mastery_with_history(client: TestClient) -> None:
    response = client.get(f"/api/tracing/students/{STUDENTS[0]}/mastery")
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == 1
    skills = {s["skill_id"]: s for s in body["skills"]}
    assert set(skills) == {"count", "add", "sub", "place", "add2"}
    place = skills["place"]
    assert place["answers"] == 8 and len(place["history"]) == 8  # q4 and q5, four weeks
    assert place["requires"] == [] and skills["add2"]["requires"] == ["add", "place"]
    assert place["history"][-1]["mastery"] == pytest.approx(place["mastery"])
    assert client.get("/api/tracing/students/nobody/mastery").status_code == 404


def test_strong_and_weak_students_differ(sqlite_client: TestClient) -> None:
    def mean_mastery(student: str) -> float:
        skills = sqlite_client.get(f"/api/tracing/students/{student}/mastery").json()["skills"]
        return sum(s["mastery"] for s in skills) / len(skills)

    assert mean_mastery(STUDENTS[0]) > mean_mastery(STUDENTS[-1]) + 0.2


def test_recommendations_explain_themselves(sqlite_client: TestClient) -> None:
    weakest = STUDENTS[-1]
    recommendations = sqlite_client.get(f"/api/tracing/students/{weakest}/recommendations").json()
    assert 1 <= len(recommendations) <= 5
    first = recommendations[0]
    assert first["reason"] and first["skill_name"] in first["reason"]
    mastery = {
        s["skill_id"]: s
        for s in sqlite_client.get(f"/api/tracing/students/{weakest}/mastery").json()["skills"]
    }
    for rec in recommendations:
        # Never a skill whose prerequisites are not mastered.
        assert all(mastery[r]["mastered"] for r in mastery[rec["skill_id"]]["requires"])
        assert not mastery[rec["skill_id"]]["mastered"]


def test_class_report_and_heat_map(client: TestClient) -> None:
    report = client.get("/api/tracing/classes/exam-1/report").json()
    assert report["students"] == STUDENTS
    shares = [s["not_mastered_share"] for s in report["skills"]]
    assert shares == sorted(shares, reverse=True)
    by_id = {s["skill_id"]: s for s in report["skills"]}
    assert by_id["add2"]["not_mastered_share"] >= by_id["count"]["not_mastered_share"]
    assert any(s["most_not_mastered"] for s in report["skills"])
    heat = client.get("/api/tracing/classes/exam-1/heatmap").json()
    assert heat["students"] == STUDENTS and len(heat["mastery"]) == 12
    assert all(len(row) == 5 and all(0 <= v <= 1 for v in row) for row in heat["mastery"])
    assert client.get("/api/tracing/classes/no-such-exam/report").status_code == 404


def test_graph_svg_draws_every_skill_and_arrow(sqlite_client: TestClient) -> None:
    response = sqlite_client.get(f"/tracing/students/{STUDENTS[0]}/graph.svg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/svg+xml"
    root = ET.fromstring(response.text)
    nodes = root.findall(f".//{SVG}g[@class='skill']")
    edges = root.findall(f".//{SVG}path[@class='edge']")
    assert len(nodes) == 5 and len(edges) == 4
    assert {(e.get("data-from"), e.get("data-to")) for e in edges} == {
        ("count", "add"), ("add", "sub"), ("add", "add2"), ("place", "add2")
    }  # fmt: skip
    # Prerequisites sit above what builds on them.
    y = {n.get("data-skill"): float(n.find(f"{SVG}rect").get("y")) for n in nodes}
    assert y["count"] < y["add"] < y["sub"] and y["place"] < y["add2"]
    for node in nodes:
        fill = node.find(f"{SVG}rect").get("fill")
        assert fill == mastery_colour(float(node.get("data-mastery")))


def test_editing_the_graph_through_the_api(sqlite_client: TestClient) -> None:
    hostile = {"name": "<script>alert(1)</script> & more", "prerequisites": ["add2"]}
    assert sqlite_client.put("/api/tracing/skills/mult", json=hostile).status_code == 200
    svg = sqlite_client.get(f"/tracing/students/{STUDENTS[0]}/graph.svg").text
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)
    cycle = sqlite_client.put(
        "/api/tracing/skills/count", json={"name": "C", "prerequisites": ["mult"]}
    )
    assert cycle.status_code == 422 and "circle" in cycle.json()["detail"]
    unknown = sqlite_client.put("/api/tracing/items", json={"exam_id": "e", "question_id": "q",
                                                     "skills": ["nope"]})  # fmt: skip
    assert unknown.status_code == 422
    item = {"exam_id": "exam-9", "question_id": "q1", "skills": ["mult", "add"]}
    assert sqlite_client.put("/api/tracing/items", json=item).status_code == 200
    assert sqlite_client.get("/api/tracing/items", params={"exam_id": "exam-9"}).json() == [
        {"exam_id": "exam-9", "question_id": "q1", "skills": ["add", "mult"]}
    ]
    bad = {"title": "T", "kind": "film", "skills": ["mult"]}
    assert sqlite_client.put("/api/tracing/resources/r1", json=bad).status_code == 422
    good = dict(bad, kind="practice")
    assert sqlite_client.put("/api/tracing/resources/r1", json=good).status_code == 200
    assert sqlite_client.delete("/api/tracing/skills/mult").status_code == 204
    resources = {r["resource_id"]: r for r in sqlite_client.get("/api/tracing/resources").json()}
    assert resources["r1"]["skills"] == []
    assert sqlite_client.get("/api/tracing/items", params={"exam_id": "exam-9"}).json()[0][
        "skills"
    ] == ["add"]
    assert sqlite_client.delete("/api/tracing/skills/mult").status_code == 404


def test_pages_render(sqlite_client: TestClient) -> None:
    student = sqlite_client.get(f"/tracing/students/{MIDDLE}")
    assert student.status_code == 200
    assert 'class="knowledge-graph"' in student.text and "Why:" in student.text
    page = sqlite_client.get("/tracing/classes/exam-1")
    assert page.status_code == 200 and page.text.count("<tr>") >= 12
    assert sqlite_client.get("/tracing").status_code == 200
    assert sqlite_client.get("/tracing/students/nobody").status_code == 404


def _state(skill: str, mastery: float, answers: int, requires: list[str]) -> SkillState:
    return SkillState(skill_id=skill, name=skill.title(), mastery=mastery, answers=answers,
                      correct=answers // 2, mastered=answers > 0 and mastery >= 0.85,
                      requires=requires)  # fmt: skip


def test_focus_goes_to_learnable_prerequisites_first() -> None:
    states = {
        "count": _state("count", 0.95, 6, []),
        "place": _state("place", 0.30, 4, []),
        "add": _state("add", 0.60, 5, ["count"]),
        "add2": _state("add2", 0.10, 3, ["add", "place"]),
        "sub": _state("sub", 0.4, 0, ["add"]),
    }
    focus = dict(focus_skills(states))
    assert list(focus) == ["place", "add"]
    assert "needed first for Add2" in focus["place"]
    assert "Add: mastery 60% after 5 answers" in focus["add"]
    assert "count" not in focus and "add2" not in focus and "sub" not in focus
    states["add"] = _state("add", 0.9, 8, ["count"])
    focus = dict(focus_skills(states))
    assert list(focus) == ["place", "sub"]
    assert "next to learn" in focus["sub"]


# --- in a browser ---------------------------------------------------------------------------


@pytest.fixture
def served(sqlite_store: Store, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The app's base URL and an admin token."""
    _school(sqlite_store, tmp_path)
    app = create_app(CentralSettings(database_url=sqlite_store.url))
    token = admin_headers(app)["Authorization"].removeprefix("Bearer ")
    with serve(app) as base_url:
        yield base_url, token


@needs_chromium
def test_knowledge_graph_and_heat_map_in_chromium(served: tuple[str, str], tmp_path: Path) -> None:
    base_url, token = served
    dom = dump_dom(login_url(base_url, token, f"/tracing/students/{MIDDLE}"), tmp_path / "a")
    assert dom.count('class="skill"') == 5 and dom.count('class="edge"') == 4
    assert "Why:" in dom

    heat = dump_dom(login_url(base_url, token, "/tracing/classes/exam-1"), tmp_path / "b")
    assert heat.count("<tr>") >= 12 + 1 and 'class="heatmap"' in heat

    for name, path in (("graph", f"/tracing/students/{MIDDLE}"),
                       ("heatmap", "/tracing/classes/exam-1")):  # fmt: skip
        shot = screenshot(
            login_url(base_url, token, path), tmp_path / f"p-{name}", tmp_path / f"{name}.png"
        )
        pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
        colours = {tuple(int(c) for c in rgb) for rgb in np.unique(pixels, axis=0)}
        # The picture really shows mastery colours, not a blank or error page.
        drawn = {mastery_colour(v) for v in (0.0, 0.85)}
        found = {f"#{r:02x}{g:02x}{b:02x}" for r, g, b in colours}
        assert drawn & found, f"no mastery colour in the {name} screenshot"
