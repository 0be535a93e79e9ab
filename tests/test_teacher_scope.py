"""A teacher reads the exam, results, review and export routes filtered to the students of their
own classes, on SQLite and PostgreSQL; another class's student is never shown, whether asked for
in a list or by id; markers and admins see everyone."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import dump_dom, login_url, needs_chromium, serve
from conftest import Messages, _open_store
from pg import create_database
from school_data import CLASS_1, CLASS_2, School, school

from central.ingest import Ingestor, OutcomeKind

OWN = set(CLASS_1)
OTHERS = set(CLASS_2)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def town(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[School]:
    """One school per backend for the whole module: the tests only read, except the review test,
    which adds an answer to an exam of its own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('scope') / 'central.db'}"
    else:
        url = create_database(request.getfixturevalue("postgres_url"), "classink_teacher_scope")
    for store in _open_store(url):
        with school(store, Messages()) as made:
            yield made


def _students(results: dict) -> set[str]:
    return {s["student_id"] for s in results["students"]}


def test_exam_lists_and_results_hold_a_teacher_to_their_class(town: School) -> None:
    t1 = town.client("teacher", "t1")
    exams = t1.get("/api/exams")
    assert exams.status_code == 200
    assert [(e["exam_id"], e["students"]) for e in exams.json()] == [("exam-1", len(CLASS_1))]
    results = t1.get("/api/exams/exam-1/results")
    assert results.status_code == 200
    assert _students(results.json()) == OWN
    # The per-question counts are over the teacher's students only, not the whole exam.
    assert {q["answered"] for q in results.json()["questions"]} == {len(CLASS_1)}
    admin = town.admin.get("/api/exams/exam-1/results").json()
    assert _students(admin) == OWN | OTHERS
    assert _students(town.client("marker", "m1").get("/api/exams/exam-1/results").json()) == (
        OWN | OTHERS
    )
    t2 = town.client("teacher", "t2")
    assert _students(t2.get("/api/exams/exam-1/results").json()) == OTHERS


def test_a_teacher_without_classes_sees_nothing(town: School) -> None:
    nobody = town.client("teacher", "t-new")
    assert nobody.get("/api/exams").json() == []
    assert nobody.get("/api/exams/exam-1/results").status_code == 404
    assert nobody.get("/api/review").json() == []
    assert nobody.get("/api/export/xapi").json()["statements"] == []
    assert nobody.get("/api/exams/exam-1/items").status_code == 404


def test_item_statistics_are_over_the_teachers_students(town: School) -> None:
    mine = town.client("teacher", "t1").get("/api/exams/exam-1/items").json()
    everyone = town.admin.get("/api/exams/exam-1/items").json()
    assert {i["learners"] for i in mine} == {len(CLASS_1)}
    assert {i["learners"] for i in everyone} == {len(CLASS_1) + len(CLASS_2)}


def test_the_review_list_holds_only_the_teachers_students(town: School) -> None:
    # A second review answer, in the other class (and an exam of its own, so that the other
    # tests' exam-1 figures stay as they are): t1 must not see it, t2 must.
    messages = Messages(gateway_id="gw-review")
    event = messages.answer(
        exam_id="exam-review", student_id="s8", pen_id="9c:7b:ef:00:00:08", question_id="q2",
        status="review", label="?", confidence=0.2, review_reason="scribble",
    )  # fmt: skip
    stored = Ingestor(town.app.state.sessions).handle(messages.topic(), json.dumps(event).encode())
    assert stored.kind == OutcomeKind.STORED
    t1, t2 = town.client("teacher", "t1"), town.client("teacher", "t2")
    assert {i["student_id"] for i in t1.get("/api/review").json()} == {"s4"}
    assert {i["student_id"] for i in t2.get("/api/review").json()} == {"s8"}
    assert {i["student_id"] for i in town.admin.get("/api/review").json()} == {"s4", "s8"}
    page = t1.get("/review")
    assert page.status_code == 200 and "s4" in page.text and "scribble" not in page.text
    queue = t1.get("/dashboard/review")
    assert "Review queue (1)" in queue.text and "s8" not in queue.text
    # Asked for by id, the other class's answer is refused, never shown.
    by_id = t1.get(f"/api/review/{event['event_id']}")
    assert by_id.status_code in (403, 404) and set(by_id.json()) == {"detail"}


def test_pages_show_only_the_teachers_students(town: School) -> None:
    t1 = town.client("teacher", "t1")
    index = t1.get("/")
    assert index.status_code == 200 and "exam-1" in index.text
    page = t1.get("/exams/exam-1")
    assert page.status_code == 200
    dashboard = t1.get("/dashboard/exams/exam-1")
    assert dashboard.status_code == 200
    for html in (page.text, dashboard.text):
        assert all(f">{s}<" in html for s in OWN), "every own student is shown"
        assert not any(f">{s}<" in html for s in OTHERS), "no other class's student is shown"
    admin_page = town.admin.get("/dashboard/exams/exam-1").text
    assert all(f">{s}<" in admin_page for s in OWN | OTHERS)
    home = t1.get("/dashboard").text
    assert "/dashboard/exams/exam-1" in home


def test_another_classs_student_by_id_is_refused(town: School) -> None:
    t1 = town.client("teacher", "t1")
    for path in (
        "/api/students/s7/results",
        "/api/tracing/students/s7/mastery",
        f"/api/review/{town.events['s7']['q1']}",
        "/api/classes/c2/results?exam_id=exam-1",
        "/dashboard/classes/c2",
    ):
        response = t1.get(path)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert "Students7" not in response.text and "points_awarded" not in response.text
    assert t1.get("/api/students/s1/results").status_code == 200


def test_the_xapi_export_holds_a_teacher_to_their_class(town: School) -> None:
    def actors(client) -> set[str]:
        found = client.get("/api/export/xapi", params={"limit": 5000}).json()["statements"]
        return {s["actor"]["account"]["name"] for s in found}

    assert actors(town.client("teacher", "t1")) == OWN
    assert actors(town.admin) == OWN | OTHERS
    pseudonyms = actors(town.client("researcher", "r1"))
    assert len(pseudonyms) == len(OWN | OTHERS) and not pseudonyms & (OWN | OTHERS)


@needs_chromium
def test_a_teacher_sees_only_their_class_replayed_in_chromium(town: School, tmp_path: Path) -> None:
    token = town.app.state.issue_token("teacher", "t1")
    with serve(town.app) as base:
        home = dump_dom(login_url(base, token, "/dashboard"), tmp_path / "p1")
        assert "/dashboard/exams/exam-1" in home
        exam = dump_dom(login_url(base, token, "/dashboard/exams/exam-1"), tmp_path / "p2", 8000)
    drawn = re.findall(r'<svg class="replay"[^>]*data-drawn="(\d+)"', exam)
    assert len(drawn) == len(CLASS_1) * 4 and all(int(n) == 4 for n in drawn)
    rows = set(re.findall(r"<tr><th>(s\d+)</th>", exam))
    assert rows == OWN
