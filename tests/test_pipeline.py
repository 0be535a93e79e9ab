"""The gateway pipeline in-process: pen bytes → events → strokes → answers → outbox payloads."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest

from classink.shared_data import REPO_ROOT
from firmware_bridge.protocol import PenConnection
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from gateway.scoring.recognizer import Recognizer
from gateway.strokes import PEN_UNIT_MM
from gateway.templates import TemplateIndex
from hardware_sim import pen_wire as w
from hardware_sim.classroom import Classroom
from hardware_sim.cli import SAMPLE_EXAM
from hardware_sim.pen import PageAddress, ScriptedStroke

SCHEMA = json.loads((REPO_ROOT / "protocol_specs/schemas/answer-event.v1.json").read_text())
MAC = bytes.fromhex("9c7bef000000")


def wire(strokes: list[ScriptedStroke]) -> bytes:
    """The bytes a pen sends for these strokes, via the simulator's own encoder."""
    out, c = bytearray(w.version_response("sim", "1", MAC)), 0
    for s in strokes:
        p = s.page
        out += w.pen_down(c, 1000) + w.paper_info(c + 1, p.section, p.owner, p.note, p.page)
        c += 2
        for (x, y), dt, f in zip(s.xy_units, s.dt_ms, s.force, strict=True):
            out += w.dot(c & 0xFF, int(dt), int(f), x, y)
            c += 1
        out += w.pen_up(c & 0xFF, 2000, len(s.xy_units))
        c += 1
    return bytes(out)


@pytest.fixture
def pipeline(tmp_path):
    def make(review_below: float = 0.6) -> Pipeline:
        return Pipeline(
            site_id="s1",
            gateway_id="g1",
            templates=TemplateIndex.from_files([SAMPLE_EXAM]),
            roster={"9c:7b:ef:00:00:00": "stu-001"},
            outbox=Outbox(tmp_path / f"outbox-{review_below}.db"),
            recognizer=Recognizer.load(),
            review_below=review_below,
        )

    return make


def payloads(p: Pipeline) -> list[dict]:
    return [json.loads(r.payload) for r in p.outbox.pending(0, 1000)]


def feed(p: Pipeline, data: bytes, chunk: int = 97) -> None:
    conn = PenConnection()
    t = 0.0
    for i in range(0, len(data), chunk):
        p.on_pen_events("/dev/ttyACM0", conn.receive_data(data[i : i + chunk]), now=t)
        t += 0.01
    p.on_pen_events("/dev/ttyACM0", conn.close(), now=t)
    p.tick(now=t + 100)


def test_an_exam_becomes_one_schema_valid_event_per_question(pipeline):
    room = Classroom(SAMPLE_EXAM, pens=1, seed=5)
    room.stop()  # only its scripted strokes are needed, not its pseudo-terminals
    p = pipeline()
    feed(p, wire(room.pens[0].strokes))
    events = payloads(p)
    assert [e["question_id"] for e in events] == [a.question_id for a in room.answers]
    assert [e["seq"] for e in events] == list(range(1, 13))
    for e, truth in zip(events, room.answers, strict=True):
        jsonschema.validate(e, SCHEMA)
        assert (e["student_id"], e["pen_id"], e["page_address"]) == (
            "stu-001",
            truth.pen_id,
            "3.27.1001.1",
        )
        assert e["revision"] == 1 and e["points_possible"] > 0
    assert len({e["event_id"] for e in events}) == 12


def test_below_the_threshold_answers_go_to_review_without_a_score(pipeline):
    room = Classroom(SAMPLE_EXAM, pens=1, seed=5)
    room.stop()
    p = pipeline(review_below=1.01)
    feed(p, wire(room.pens[0].strokes))
    events = payloads(p)
    assert events and all(e["status"] == "review" and e["correct"] is None for e in events)
    for e in events:
        jsonschema.validate(e, SCHEMA)


def test_unknown_page_and_scribbles_are_counted_not_sent(pipeline):
    room = Classroom(SAMPLE_EXAM, pens=1, seed=5)
    room.stop()
    first = room.pens[0].strokes[0]
    elsewhere = ScriptedStroke(
        PageAddress(3, 27, 4242, 1), 0, first.xy_units, first.dt_ms, first.force
    )
    margin = ScriptedStroke(
        first.page, 0, first.xy_units - first.xy_units.min(axis=0) + 1.0, first.dt_ms, first.force
    )
    p = pipeline()
    feed(p, wire([elsewhere, margin]))
    assert payloads(p) == []
    assert p.rejects.counts["unknown_page"] == 1 and p.rejects.counts["outside_regions"] == 1


def test_writing_again_in_a_box_sends_a_new_revision_with_all_strokes(pipeline):
    room = Classroom(SAMPLE_EXAM, pens=1, seed=5)
    room.stop()
    strokes = room.pens[0].strokes
    x, y, bw, bh = 150, 40, 20, 20  # q1's box in the sample exam
    q1 = [s for s in strokes if (s.xy_units.mean(axis=0) * PEN_UNIT_MM < (x + bw, y + bh)).all()]
    p = pipeline()
    data = wire(q1)
    feed(p, data)
    feed(p, data)  # the same strokes again, later: a correction in the same box
    events = payloads(p)
    assert [(e["question_id"], e["revision"]) for e in events] == [("q1", 1), ("q1", 2)]
    assert len(events[1]["strokes"]) == 2 * len(events[0]["strokes"])


def test_pen_events_before_the_handshake_are_refused(pipeline):
    p = pipeline()
    conn = PenConnection()
    p.on_pen_events(
        "/dev/ttyACM0", conn.receive_data(w.pen_down(0, 1) + w.paper_info(1, 3, 27, 1001, 1))
    )
    assert p.rejects.counts["before_handshake"] == 2


def test_noise_between_frames_loses_no_answer(pipeline):
    room = Classroom(SAMPLE_EXAM, pens=1, seed=5)
    room.stop()
    clean = wire(room.pens[0].strokes)
    rng = random.Random(1)
    # 0xC1 only ever ends a frame (inside one it is escaped): noise can follow any of them.
    frames = clean.split(b"\xc1")[:-1]
    noisy = b"".join(f + b"\xc1" + (b"\x05\x06" if rng.random() < 0.1 else b"") for f in frames)
    p = pipeline()
    feed(p, noisy)
    assert len(payloads(p)) == 12
    assert p.rejects.counts["garbage"] > 0


def test_a_stroke_still_being_written_keeps_its_answer_open(pipeline):
    """A busy gateway can see the second bar of a cross arrive slowly: the idle time runs from the
    pen's last ink, not from its last finished stroke, so the two bars stay one answer."""
    room = Classroom(SAMPLE_EXAM, pens=1, seed=5)
    room.stop()
    x, y, bw, bh = 150, 40, 20, 20  # q1's box in the sample exam
    q1 = [
        s
        for s in room.pens[0].strokes
        if (s.xy_units.mean(axis=0) * PEN_UNIT_MM < (x + bw, y + bh)).all()
    ]
    assert len(q1) >= 2
    p = pipeline()
    conn = PenConnection()
    data = wire(q1[:2])
    # Frames start with 0xC0 (escaped everywhere else): split at the two PenUp frames.
    first_up, second_up = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xc0\x6a"]
    p.on_pen_events("/dev/ttyACM0", conn.receive_data(data[: first_up + 1]), now=0.0)
    t = 0.0
    for i in range(first_up + 1, second_up, 8):  # the second bar trickles in, a dot at a time
        t += 0.1
        p.on_pen_events("/dev/ttyACM0", conn.receive_data(data[i : min(i + 8, second_up)]), now=t)
        p.tick(now=t)
    assert t > p.idle_s, "the second bar must take longer than the idle time"
    assert payloads(p) == []
    p.on_pen_events("/dev/ttyACM0", conn.receive_data(data[second_up:]), now=t)
    p.tick(now=t + 100)
    events = payloads(p)
    assert [(e["question_id"], e["revision"], len(e["strokes"])) for e in events] == [("q1", 1, 2)]
