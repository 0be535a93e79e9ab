"""OneRoster import, results per class and student with item statistics, markers' decisions on
review answers, and the xAPI export — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import Messages, Store
from school_data import CLASS_1, SCORES, School, oneroster_files, school, zip_of
from sqlalchemy import select

from central.models import AnswerEvent
from central.school.xapi import STATEMENT_NAMESPACE
from classink.cli import main


@pytest.fixture
def town(store: Store, messages: Messages) -> Iterator[School]:
    with school(store, messages) as made:
        yield made


def _import(town: School, files: dict[str, str]) -> tuple[int, list[str]]:
    response = town.admin.post(
        "/api/roster/import", content=zip_of(files), headers={"content-type": "application/zip"}
    )
    body = response.json()
    return response.status_code, body["detail"]["errors"] if response.status_code == 422 else []


def test_roster_errors_name_the_file_and_line(town: School) -> None:
    files = oneroster_files()
    files["enrollments.csv"] += "e-x,active,c9,sch-1,s1,student\ne-y,active,c1,sch-1,nobody,pupil\n"
    status, errors = _import(town, files)
    assert status == 422
    assert "enrollments.csv line 13: classSourcedId 'c9' is not a class" in errors
    assert "enrollments.csv line 14: userSourcedId 'nobody' is not a user" in errors
    assert any(e.startswith("enrollments.csv line 14: role 'pupil'") for e in errors)
    headerless = dict(oneroster_files(), **{"classes.csv": "sourcedId,title\nc1,A\n"})
    assert _import(town, headerless) == (
        422,
        ["classes.csv line 1: missing column(s) schoolSourcedId"],
    )
    no_users = {k: v for k, v in oneroster_files().items() if k != "users.csv"}
    assert _import(town, no_users) == (422, ["users.csv: missing from the zip"])
    not_zip = town.admin.post(
        "/api/roster/import", content=b"hello", headers={"content-type": "application/zip"}
    )
    assert not_zip.status_code == 422 and "not a zip" in not_zip.text
    wrong_type = town.admin.post("/api/roster/import", content=b"x")
    assert wrong_type.status_code == 415
    # Nothing of a refused zip was stored.
    assert [c["class_id"] for c in town.admin.get("/api/roster/classes").json()] == ["c1", "c2"]


def test_roles_csv_must_name_users_of_the_zip(town: School) -> None:
    files = oneroster_files()
    files["roles.csv"] = "userSourcedId,roleType,role\nt1,primary,teacher\nghost,primary,teacher\n"
    assert _import(town, files) == (
        422,
        ["roles.csv line 3: userSourcedId 'ghost' is not in users.csv"],
    )


def test_roster_import_deletes_rows_marked_tobedeleted(town: School) -> None:
    files = oneroster_files()
    files["enrollments.csv"] = files["enrollments.csv"].replace(
        "e-s6,active,c1", "e-s6,tobedeleted,c1"
    )
    assert _import(town, files) == (200, [])
    [c1, _] = town.admin.get("/api/roster/classes").json()
    assert (c1["students"], c1["teachers"]) == (5, ["t1"])


def test_class_results_and_item_statistics(town: School) -> None:
    results = town.admin.get("/api/classes/c1/results", params={"exam_id": "exam-1"}).json()
    totals = {s["student_id"]: s for s in results["students"]}
    assert sorted(totals) == sorted(CLASS_1)
    assert totals["s1"]["points_awarded"] == 4 and totals["s1"]["points_possible"] == 4
    assert totals["s4"]["review"] == 1 and totals["s4"]["points_awarded"] == 2
    items = {i["question_id"]: i for i in results["items"]}
    # q1 by hand: everyone but s6 right; the rest scores (q2..q4, review counted 0).
    item = [SCORES[s][0] for s in CLASS_1]
    rest = [sum(SCORES[s][1:]) - (SCORES[s][3] if s == "s4" else 0) for s in CLASS_1]
    assert items["q1"]["p_value"] == pytest.approx(5 / 6)
    assert items["q1"]["discrimination"] == pytest.approx(np.corrcoef(item, rest)[0, 1])
    # q4: s4's answer waits for review, so it is out of the p-value and counted as review.
    assert items["q4"]["p_value"] == pytest.approx(3 / 5)
    assert items["q4"]["review_rate"] == pytest.approx(1 / 6)
    assert items["q4"]["blank_rate"] == 0
    assert (
        town.admin.get("/api/classes/c1/items", params={"exam_id": "exam-1"}).json()
        == (results["items"])
    )
    everyone = town.admin.get("/api/exams/exam-1/items").json()
    assert everyone[0]["learners"] == 9
    assert town.admin.get("/api/classes/c1/results").status_code == 422
    assert town.admin.get("/api/classes/nope/results?exam_id=exam-1").status_code == 404


def test_a_correction_is_stored_with_who_and_when_and_changes_results(
    town: School, store: Store
) -> None:
    event_id = town.events["s4"]["q4"]
    marker = town.client("marker", "m-7")
    shown = marker.get(f"/api/review/{event_id}").json()
    assert shown["label"] == "?" and shown["strokes"] and shown["decisions"] == []
    assert event_id in [r["event_id"] for r in marker.get("/api/review").json()]
    refused = marker.post(f"/api/review/{event_id}/decision", json={"action": "accept"})
    assert refused.status_code == 422 and "points_awarded" in refused.text
    too_many = {"action": "correct", "label": "1", "points_awarded": 5}
    assert marker.post(f"/api/review/{event_id}/decision", json=too_many).status_code == 422
    no_label = {"action": "correct", "points_awarded": 1}
    assert marker.post(f"/api/review/{event_id}/decision", json=no_label).status_code == 422
    fix = {"action": "correct", "label": "1", "points_awarded": 1}
    made = marker.post(f"/api/review/{event_id}/decision", json=fix)
    assert made.status_code == 201, made.text
    decision = made.json()
    assert (decision["decided_by"], decision["decided_role"], decision["correct"]) == (
        "m-7",
        "marker",
        True,
    )
    assert decision["decided_at"]
    assert event_id not in [r["event_id"] for r in marker.get("/api/review").json()]
    student = {e["exam_id"]: e for e in marker.get("/api/students/s4/results").json()}["exam-1"]
    q4 = {a["question_id"]: a for a in student["answers"]}["q4"]
    assert (q4["label"], q4["status"], q4["decided_by"]) == ("1", "scored", "m-7")
    assert student["points_awarded"] == 3
    exam = town.admin.get("/api/exams/exam-1/results").json()
    s4 = next(s for s in exam["students"] if s["student_id"] == "s4")
    assert s4["answers"]["q4"]["label"] == "1" and s4["totals"]["points_awarded"] == 3
    # The answer event itself is as the gateway sent it.
    with store.sessions() as session:
        stored = session.scalar(select(AnswerEvent).where(AnswerEvent.event_id == event_id))
        assert (stored.label, stored.status, stored.points_awarded) == ("?", "review", None)
    assert len(marker.get(f"/api/review/{event_id}").json()["decisions"]) == 1
    with store.sessions() as session:
        older = session.scalar(
            select(AnswerEvent.event_id).where(
                AnswerEvent.student_id == "s4",
                AnswerEvent.question_id == "q4",
                AnswerEvent.revision == 1,
            )
        )
    stale = marker.post(f"/api/review/{older}/decision", json=fix)
    assert stale.status_code == 409 and "revision 2" in stale.text
    assert marker.get("/api/review/no-such-event").status_code == 404


def test_xapi_statement_ids_come_from_event_ids(town: School, tmp_path: Path) -> None:
    event_id = town.events["s4"]["q4"]
    fix = {"action": "correct", "label": "1", "points_awarded": 1}
    assert town.admin.post(f"/api/review/{event_id}/decision", json=fix).status_code == 201
    first = town.admin.get("/api/export/xapi").json()
    again = town.admin.get("/api/export/xapi").json()
    assert first == again and first["more"] == ""
    answered = [s for s in first["statements"] if s["verb"]["display"]["en-US"] == "answered"]
    assert len(answered) == 9 * 4 + 1
    by_event = {s["context"]["extensions"]["https://classink.example/xapi/extensions/event-id"]: s
                for s in answered}  # fmt: skip
    assert by_event[event_id]["id"] == str(uuid.uuid5(STATEMENT_NAMESPACE, event_id))
    assert len({s["id"] for s in first["statements"]}) == len(first["statements"])
    right = by_event[town.events["s1"]["q1"]]
    assert right["actor"]["account"]["name"] == "s1"
    assert right["result"]["success"] is True and right["result"]["score"]["scaled"] == 1
    [scored] = [s for s in first["statements"] if s["verb"]["display"]["en-US"] == "scored"]
    assert scored["context"]["statement"]["id"] == by_event[event_id]["id"]
    assert scored["result"]["response"] == "1"

    paged = town.admin.get("/api/export/xapi", params={"limit": 10}).json()
    assert paged["more"] == "/api/export/xapi?offset=10&limit=10"
    assert paged["statements"] == first["statements"][:10]

    researcher = town.client("researcher", "r-1")
    pseudo = researcher.get("/api/export/xapi").json()["statements"]
    assert [s["id"] for s in pseudo] == [s["id"] for s in first["statements"]]
    names = {s["actor"]["account"]["name"] for s in pseudo}
    assert all(n.startswith("p-") for n in names) and len(names) == 9
    assert not any(f'"s{i}"' in json.dumps(pseudo) for i in range(1, 10))
    assert researcher.get("/api/export/xapi").json()["statements"] == pseudo  # stable pseudonyms

    out = tmp_path / "xapi.jsonl"
    url = str(town.app.state.sessions.kw["bind"].url.render_as_string(hide_password=False))
    assert main(["central", "export-xapi", "--database-url", url, "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["id"] for s in lines] == [s["id"] for s in first["statements"]]


def test_pens_are_assigned_to_rostered_students(town: School) -> None:
    put = town.admin.put("/api/pens/9c:7b:ef:00:00:01", json={"student_id": "s1"})
    assert put.status_code == 200 and put.json()["assigned_by"] == "test-admin"
    assert town.admin.put("/api/pens/not-a-pen", json={"student_id": "s1"}).status_code == 422
    assert town.admin.put("/api/pens/9c:7b:ef:00:00:02", json={"student_id": "t1"}).status_code == (
        404
    )
    assert town.admin.put("/api/pens/9c:7b:ef:00:00:02", json={}).status_code == 422
    assert [p["pen_id"] for p in town.admin.get("/api/pens").json()] == ["9c:7b:ef:00:00:01"]
