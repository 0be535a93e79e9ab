"""Marking mode end to end in-process: pen bytes from a student's and a teacher's pen → gateway
pipeline → answer events (schema-valid) → central ingest → results and the review list.
"""

from __future__ import annotations

import json
import random

import jsonschema
import numpy as np
import pytest
from conftest import admin_headers
from fastapi.testclient import TestClient

from central.api import create_app
from central.ingest import Ingestor, OutcomeKind
from central.settings import CentralSettings
from classink.shared_data import REPO_ROOT
from firmware_bridge.protocol import PenConnection
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from gateway.scoring.recognizer import Recognizer
from gateway.strokes import PEN_UNIT_MM
from gateway.templates import BookletManifest, TemplateIndex, load_template
from hardware_sim import pen_wire as w
from hardware_sim.handwriting import held_out_pool
from hardware_sim.pen import place_in_box

ALL_KINDS = REPO_ROOT / "protocol_specs/examples/all-kinds.exam.json"
SCHEMA = json.loads((REPO_ROOT / "protocol_specs/schemas/answer-event.v1.json").read_text())
TEMPLATE = load_template(ALL_KINDS)
REGIONS = {r.question_id: r for r in TEMPLATE.pages[0].regions}
STUDENT_MAC, TEACHER_MAC = "9c7bef000001", "9c7bef000009"
BOOKLET_PAGE = (3, 27, 2001, 1)  # stu-001's own printed copy of the template's page
TEMPLATE_PAGE = (3, 27, 1002, 1)  # the template's page, printed for nobody in particular


def booklets() -> BookletManifest:
    return BookletManifest.model_validate(
        {
            "schema": "classink.booklet-manifest.v1",
            "template_id": TEMPLATE.template_id,
            "students": [
                {
                    "student_id": "stu-001",
                    "pages": [{"address": "3.27.2001.1", "template_address": "3.27.1002.1"}],
                }
            ],
        }
    )


@pytest.fixture
def pipeline(tmp_path) -> Pipeline:
    return Pipeline(
        site_id="s1",
        gateway_id="g1",
        templates=TemplateIndex([TEMPLATE], [booklets()]),
        roster={"9c:7b:ef:00:00:01": "stu-001", "9c:7b:ef:00:00:09": "teacher:t-07"},
        outbox=Outbox(tmp_path / "outbox.db"),
        recognizer=Recognizer.load(),
    )


def sample(kind: str, value: str, index: int = 0):
    pool = held_out_pool()[kind]
    return [s for writer in sorted(pool) for s in pool[writer].get(value, [])][index]


def in_box(kind: str, value: str, box, index: int = 0) -> list[np.ndarray]:
    return [s[:, :2] for s in place_in_box(sample(kind, value, index), box, random.Random(index))]


def wire(mac: str, page: tuple[int, int, int, int], strokes_mm: list[np.ndarray]) -> bytes:
    out, c = bytearray(w.version_response("sim", "1", bytes.fromhex(mac))), 0
    for s in strokes_mm:
        out += w.pen_down(c, 1000) + w.paper_info(c + 1, *page)
        c += 2
        for x, y in (s / PEN_UNIT_MM).tolist():
            out += w.dot(c & 0xFF, 8, 400, x, y)
            c += 1
        out += w.pen_up(c & 0xFF, 2000, len(s))
        c += 1
    return bytes(out)


def feed(p: Pipeline, link: str, data: bytes) -> None:
    conn = PenConnection()
    p.on_pen_events(link, conn.receive_data(data), now=0.0)
    p.on_pen_events(link, conn.close(), now=0.1)
    p.tick(now=100.0)


def events(p: Pipeline) -> list[dict]:
    out = [json.loads(r.payload) for r in p.outbox.pending(0, 1000)]
    for e in out:
        jsonschema.validate(e, SCHEMA)
    return out


def teacher_marks_booklet(p: Pipeline, page=BOOKLET_PAGE) -> None:
    x, y, w_, h = REGIONS["q1"].box_mm
    tick_beside_q1 = in_box("mark", "tick", (x + w_ + 0.5, y + 2, 7, h - 4))
    cross_on_q3 = in_box("mark", "cross", REGIONS["q3"].box_mm)
    three_in_s7 = in_box("digit", "3", REGIONS["s7"].box_mm, index=40)
    feed(p, "/dev/ttyACM1", wire(TEACHER_MAC, page, tick_beside_q1 + cross_on_q3 + three_in_s7))


def test_a_teachers_ticks_crosses_and_score_become_the_students_marks(pipeline):
    teacher_marks_booklet(pipeline)
    got = {(e["kind"], e["question_id"]): e for e in events(pipeline)}
    assert sorted(got) == [("score", "q7"), ("teacher_mark", "q1"), ("teacher_mark", "q3")]
    for e in got.values():
        assert (e["student_id"], e["marker_id"], e["pen_id"]) == (
            "stu-001",
            "t-07",
            "9c:7b:ef:00:00:09",
        )
        assert e["status"] == "scored", e
    tick, cross, three = got["teacher_mark", "q1"], got["teacher_mark", "q3"], got["score", "q7"]
    assert (tick["label"], tick["correct"], tick["points_awarded"]) == ("tick", True, 1.0)
    assert (cross["label"], cross["correct"], cross["points_awarded"]) == ("cross", False, 0.0)
    assert (three["label"], three["points_awarded"], three["points_possible"]) == ("3", 3.0, 4.0)
    assert three["correct"] is False  # 3 of 4 is not full marks
    assert three["box_mm"] == list(REGIONS["s7"].box_mm)


def test_marks_on_a_page_of_nobody_in_particular_go_to_review(pipeline):
    teacher_marks_booklet(pipeline, page=TEMPLATE_PAGE)
    marks = events(pipeline)
    assert len(marks) == 3
    for e in marks:
        assert (e["status"], e["review_reason"], e["student_id"]) == (
            "review",
            "unknown_student",
            None,
        )
        assert e["correct"] is None and e["points_awarded"] is None


def test_more_than_the_question_is_worth_goes_to_review(pipeline):
    nine = in_box("digit", "9", REGIONS["s7"].box_mm, index=40)
    feed(pipeline, "/dev/ttyACM1", wire(TEACHER_MAC, BOOKLET_PAGE, nine))
    (e,) = events(pipeline)
    assert (e["kind"], e["label"], e["status"], e["review_reason"]) == (
        "score",
        "9",
        "review",
        "over_maximum",
    )


def test_bad_input_from_either_pen_is_counted_not_sent(pipeline):
    sx, sy, _, _ = REGIONS["s7"].box_mm
    touch = [np.array([[sx + 5, sy + 5], [sx + 5.2, sy + 5.1]])]
    feed(pipeline, "/dev/ttyACM1", wire(TEACHER_MAC, BOOKLET_PAGE, touch))
    student_in_score_box = in_box("digit", "4", REGIONS["s7"].box_mm)
    feed(pipeline, "/dev/ttyACM0", wire(STUDENT_MAC, BOOKLET_PAGE, student_in_score_box))
    assert events(pipeline) == []
    assert pipeline.rejects.counts["blank_mark"] == 1
    assert pipeline.rejects.counts["score_box_by_student"] == len(student_in_score_box)


def test_student_answers_of_every_kind_flow_to_central_and_its_review_list(pipeline, tmp_path):
    x, y, _, _ = REGIONS["q7"].box_mm
    free = [np.array([[x + 5, y + 5], [x + 40, y + 12], [x + 60, y + 6]])]
    seven = in_box("digit", "7", REGIONS["q1"].box_mm, index=30)
    feed(pipeline, "/dev/ttyACM0", wire(STUDENT_MAC, BOOKLET_PAGE, seven + free))
    teacher_marks_booklet(pipeline, page=TEMPLATE_PAGE)  # three marks for review
    sent = events(pipeline)
    assert [(e["kind"], e["status"]) for e in sent[:2]] == [("digit", "scored"), ("free", "review")]
    assert "marker_id" not in sent[0] and sent[1]["review_reason"] == "free_response"

    settings = CentralSettings(database_url=f"sqlite:///{tmp_path / 'central.db'}")
    app = create_app(settings)
    with TestClient(app) as client:
        from central.db import create_schema, make_engine, make_session_factory

        engine = make_engine(settings.database_url)
        create_schema(engine)
        client.headers.update(admin_headers(app))
        ingest = Ingestor(make_session_factory(engine))
        for e in sent:
            outcome = ingest.handle("classink/v1/s1/g1/answers", json.dumps(e).encode())
            assert outcome.kind == OutcomeKind.STORED, outcome
        review = client.get("/api/review").json()
        assert [(r["kind"], r["review_reason"]) for r in review] == [
            ("free", "free_response"),
            ("teacher_mark", "unknown_student"),
            ("teacher_mark", "unknown_student"),
            ("score", "unknown_student"),
        ]
        assert review[1]["marker_id"] == "t-07" and review[0]["strokes"][0]["points"]
        assert client.get("/api/review", params={"exam_id": "other"}).json() == []
        page = client.get("/review")
        assert page.status_code == 200
        assert page.text.count("<svg") == 4 and "free_response" in page.text
        engine.dispose()


def unrostered_pipeline(tmp_path) -> Pipeline:
    """A gateway with an empty roster, on an outbox that outlives it (a restart opens it again)."""
    return Pipeline(
        site_id="s1",
        gateway_id="g1",
        templates=TemplateIndex([TEMPLATE]),
        roster={},
        outbox=Outbox(tmp_path / "outbox.db"),
        recognizer=Recognizer.load(),
    )


def test_a_pen_nobody_rostered_takes_the_student_id_written_on_the_page(tmp_path):
    p = unrostered_pipeline(tmp_path)
    x, y, _, h = REGIONS["sid"].box_mm
    sid, digit_x = [], x + 2
    for d in "3071":
        placed = in_box("digit", d, (digit_x, y + 1, 10, h - 2), index=60)
        sid += placed
        digit_x = float(np.concatenate(placed)[:, 0].max()) + 3
    seven = in_box("digit", "7", REGIONS["q1"].box_mm, index=30)
    feed(p, "/dev/ttyACM0", wire(STUDENT_MAC, TEMPLATE_PAGE, sid + seven))
    read_id, answer = events(p)
    assert (read_id["kind"], read_id["label"], read_id["status"]) == (
        "student_id",
        "3071",
        "scored",
    )
    assert read_id["correct"] is None and read_id["points_possible"] == 0
    assert (answer["question_id"], answer["student_id"]) == ("q1", "3071")

    # A restarted gateway still knows whose page it is.
    p.outbox.close()
    again = unrostered_pipeline(tmp_path)
    two = in_box("digit", "2", REGIONS["q2"].box_mm, index=31)
    feed(again, "/dev/ttyACM0", wire(STUDENT_MAC, TEMPLATE_PAGE, two))
    after = events(again)[-1]
    assert (after["question_id"], after["student_id"]) == ("q2", "3071")
