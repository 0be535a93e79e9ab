"""Central web app: results JSON and the results page, over answers stored by the real ingest."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from conftest import Messages, Store, admin_headers
from fastapi.testclient import TestClient

from central.api import create_app
from central.ingest import OutcomeKind
from central.settings import CentralSettings
from central.svg import answer_svg

UNKNOWN_PEN = "aa:bb:cc:dd:ee:01"


def _store_exam(store: Store, messages: Messages) -> None:
    def stored(**fields: object) -> None:
        outcome = store.ingestor.handle(
            messages.topic(), messages.payload(messages.answer(**fields))
        )
        assert outcome.kind == OutcomeKind.STORED

    # s1 rewrote q1: revision 2 arrives first and must still win over the older revision 1.
    stored(student_id="s1", question_id="q1", revision=2, label="7", correct=True)
    stored(
        student_id="s1", question_id="q1", revision=1, label="1", correct=False, points_awarded=0
    )
    stored(student_id="s1", question_id="q2", kind="choice", label="B", status="review")
    stored(student_id="s2", question_id="q1", label="7")
    stored(student_id="s2", question_id="q10", label="4", points_awarded=2, points_possible=2)
    wrong = {"correct": False, "points_awarded": 0}
    stored(student_id=None, pen_id=UNKNOWN_PEN, question_id="q1", label="<b>", **wrong)
    stored(exam_id="exam-2", student_id="s1", question_id="q1")
    stored(exam_id="math/week 3", student_id="s1", question_id="q1")


@pytest.fixture
def client(store: Store, messages: Messages) -> Iterator[TestClient]:
    _store_exam(store, messages)
    app = create_app(CentralSettings(database_url=store.url))
    with TestClient(app, headers=admin_headers(app)) as test_client:
        yield test_client


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_exam_list(client: TestClient) -> None:
    exams = client.get("/api/exams").json()
    assert [exam["exam_id"] for exam in exams] == ["exam-1", "exam-2", "math/week 3"]
    assert {key: exams[0][key] for key in ("students", "questions", "answer_events")} == {
        "students": 3,
        "questions": 3,
        "answer_events": 6,
    }


def test_results_json_keeps_the_highest_revision(client: TestClient) -> None:
    response = client.get("/api/exams/exam-1/results")
    assert response.status_code == 200
    results = response.json()

    assert results["exam_id"] == "exam-1"
    assert results["questions"] == [
        {"question_id": "q1", "kind": "digit", "points_possible": 1.0, "answered": 3,
         "scored": 3, "correct": 2, "correct_share": pytest.approx(2 / 3), "review": 0},
        {"question_id": "q2", "kind": "choice", "points_possible": 1.0, "answered": 1,
         "scored": 0, "correct": 0, "correct_share": None, "review": 1},
        {"question_id": "q10", "kind": "digit", "points_possible": 2.0, "answered": 1,
         "scored": 1, "correct": 1, "correct_share": 1.0, "review": 0},
    ]  # fmt: skip

    students = results["students"]
    assert [(s["student_id"], s["pen_id"]) for s in students] == [
        ("s1", None),
        ("s2", None),
        (None, UNKNOWN_PEN),
    ]
    s1 = students[0]
    assert set(s1["answers"]) == {"q1", "q2"}
    q1 = s1["answers"]["q1"]
    assert (q1["revision"], q1["label"], q1["correct"], q1["points_awarded"]) == (2, "7", True, 1)
    assert q1["box_mm"] == [20.0, 30.0, 15.0, 10.0]
    assert q1["strokes"][0] == {"t0_ms": 0, "points": [[22.0, 31.5, 0, 0.4], [27.5, 31.0, 40, 0.6]]}
    q2 = s1["answers"]["q2"]
    assert (q2["status"], q2["correct"], q2["points_awarded"]) == ("review", None, None)
    assert s1["totals"] == {
        "points_awarded": 1.0,
        "points_possible": 4.0,
        "answered": 2,
        "correct": 1,
        "review": 1,
    }
    assert students[1]["totals"]["points_awarded"] == 3.0
    assert students[2]["totals"]["correct"] == 0


def test_exam_ids_with_a_slash_are_reachable(client: TestClient) -> None:
    response = client.get("/api/exams/math%2Fweek%203/results")
    assert response.status_code == 200
    assert response.json()["exam_id"] == "math/week 3"
    assert client.get("/exams/math/week%203").status_code == 200


def test_unknown_exam_is_404_with_a_clear_message(client: TestClient) -> None:
    response = client.get("/api/exams/no-such-exam/results")
    assert response.status_code == 404
    assert response.json() == {
        "detail": "no results for exam 'no-such-exam': central has received no answers for it"
    }
    page = client.get("/exams/no-such-exam")
    assert page.status_code == 404
    assert "no answers for it" in page.text


def test_results_page_draws_every_answer_beside_its_label(client: TestClient) -> None:
    response = client.get("/exams/exam-1")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text

    cells = re.findall(r'<td class="answer (\w+)"[^>]*>(.*?)</td>', page, re.S)
    assert len(cells) == 5  # s1: q1 q2, s2: q1 q10, unknown pen: q1
    assert page.count("<svg") == 5
    assert all(cell.lstrip().startswith("<svg") for _, cell in cells)
    labels = [re.findall(r'<span class="label">(.*?)</span>', cell) for _, cell in cells]
    assert labels == [["7"], ["B"], ["7"], ["4"], ["&lt;b&gt;"]]
    assert [verdict for verdict, _ in cells] == ["correct", "review", "correct", "correct", "wrong"]
    assert "<b>" not in page
    assert "pen aa:bb:cc:dd:ee:01" in page
    assert page.count('<td class="missing">') == 4
    assert "1 / 4" in page and "3 / 4" in page  # totals
    assert "67%" in page  # q1 correct share
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no assets


def test_index_page_links_every_exam(client: TestClient) -> None:
    page = client.get("/").text
    assert 'href="/exams/exam-1"' in page
    assert 'href="/exams/math/week%203"' in page


def test_svg_uses_the_grown_answer_box_as_viewbox() -> None:
    svg = answer_svg(
        [[[22, 31.5, 0, 0.4], [27.25, 31, 40, 0.6]], [[30, 35, 0, 0.5]]], [20, 30, 15, 10]
    )
    assert 'viewBox="18 28 19 14"' in svg
    assert '<path d="M22 31.5 L27.25 31"/>' in svg
    assert '<circle cx="30" cy="35"' in svg  # a single sample is drawn as a dot
    with pytest.raises(ValueError):
        answer_svg([[[float("nan"), 1, 0, 0]]], [0, 0, 1, 1])
