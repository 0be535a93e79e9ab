"""The stroke journal: strokes of answers still open survive a gateway that dies, once each."""

from __future__ import annotations

import json

import pytest
from test_pipeline import feed, wire

from firmware_bridge.protocol import PenConnection
from gateway import stroke_journal
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from gateway.scoring.recognizer import Recognizer
from gateway.strokes import PEN_UNIT_MM
from gateway.templates import TemplateIndex
from hardware_sim.classroom import Classroom
from hardware_sim.cli import SAMPLE_EXAM

LINK = "/dev/ttyACM0"


def make_pipeline(path, revisit_s: float = 3 * 3600.0) -> Pipeline:
    return Pipeline(
        revisit_s=revisit_s,
        site_id="s1",
        gateway_id="g1",
        templates=TemplateIndex.from_files([SAMPLE_EXAM]),
        roster={"9c:7b:ef:00:00:00": "stu-001"},
        outbox=Outbox(path),
        recognizer=Recognizer.load(),
    )


def scripted():
    room = Classroom(SAMPLE_EXAM, pens=1, seed=5)
    room.stop()
    return room.pens[0].strokes, room.answers


def events(p: Pipeline) -> list[dict]:
    return [json.loads(r.payload) for r in p.outbox.pending(0, 1000)]


def test_a_stroke_round_trips_through_its_encoding():
    strokes, _ = scripted()
    p = make_pipeline(":memory:")
    p.on_pen_events(LINK, PenConnection().receive_data(wire(strokes[:1])), now=0.0)
    (journal_id, blob), *_ = p.outbox.journaled()
    back = stroke_journal.decode(journal_id, blob)
    assert back.key.startswith("3.27.1001.1/1000/2000/")
    assert back.points.shape[1] == 4 and back.journal_id == journal_id


def test_open_answers_come_back_after_a_crash_and_leave_the_journal_with_their_answer(tmp_path):
    strokes, answers = scripted()
    data = wire(strokes)
    db = tmp_path / "outbox.db"
    first = make_pipeline(db)
    # Everything arrives, but the last answers are still open when the process dies (no flush).
    first.on_pen_events(LINK, PenConnection().receive_data(data), now=0.0)
    stored_before = len(events(first))
    open_strokes = len(first.outbox.journaled())
    assert stored_before < len(answers) and open_strokes > 0
    first.outbox.close()  # as kill -9 leaves it: committed transactions only

    second = make_pipeline(db)
    assert second.replay_journal(now=0.0) == open_strokes
    second.tick(now=5.0)
    assert len(events(second)) == stored_before, "held until the pen is back or the hold ends"
    second.tick(now=100.0)  # the pen never came back: its strokes go into answers now
    second.tick(now=200.0)  # which close after the idle time
    got = events(second)
    assert [e["question_id"] for e in got] == [a.question_id for a in answers]
    assert sum(len(e["strokes"]) for e in got) == len(strokes)
    assert second.outbox.journaled() == []


def test_a_stroke_the_pen_offers_again_is_used_once(tmp_path):
    """After a lost link the pen re-offers its last streamed strokes as offline ones; those already
    journaled or stored are recognised by key and only settled."""
    from firmware_bridge.events import Dot, NoteId, OfflineStroke
    from firmware_bridge.session import OfflineBatch

    strokes, answers = scripted()
    p = make_pipeline(tmp_path / "outbox.db")
    p.on_pen_events(LINK, PenConnection().receive_data(wire(strokes)), now=0.0)
    again = []
    for s in strokes[-3:]:
        dots = tuple(
            Dot(float(x), float(y), int(f), int(dt), 0, 0, 0)
            for (x, y), dt, f in zip(s.xy_units, s.dt_ms, s.force, strict=True)
        )
        note = NoteId(s.page.section, s.page.owner, s.page.note)
        again.append(OfflineStroke(note, s.page.page, 1000, 2000, 0, 0, dots))
    batch = OfflineBatch(0, again[0].note, (again[0].page,), tuple(again))
    p.on_pen_events(LINK, [batch], now=1.0)
    p.tick(now=100.0)
    assert p.take_durable_batches() == [(LINK, 0)]  # the pen may delete them
    got = events(p)
    assert len(got) == len(answers)
    assert sum(len(e["strokes"]) for e in got) == len(strokes)


def test_a_full_disk_is_said_loudly_and_answers_wait_in_order(tmp_path, caplog):
    """SQLite's max_page_count stands in for a full disk here (tests/test_faults.py fills a real
    tmpfs): every write fails with SQLITE_FULL until there is room again."""
    strokes, answers = scripted()
    p = make_pipeline(tmp_path / "outbox.db")
    db = p.outbox._db
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count={pages}")
    p.on_pen_events(LINK, PenConnection().receive_data(wire(strokes)), now=0.0)
    p.tick(now=100.0)
    # What fits in pages already free is stored; the rest waits in memory.
    assert len(events(p)) < len(answers) and p.stats.storage_errors > 0
    assert "GATEWAY STORAGE FAILING" in caplog.text
    db.execute("PRAGMA max_page_count=1000000")
    p.tick(now=102.0)
    got = events(p)
    assert [e["question_id"] for e in got] == [a.question_id for a in answers]
    assert [e["seq"] for e in got] == list(range(1, len(answers) + 1))


def q1_strokes():
    strokes, _ = scripted()
    x, y, bw, bh = 150, 40, 20, 20  # q1's box in the sample exam
    return [s for s in strokes if (s.xy_units.mean(axis=0) * PEN_UNIT_MM < (x + bw, y + bh)).all()]


def test_a_box_written_again_after_a_restart_gets_the_next_revision_and_its_earlier_ink(tmp_path):
    """Central keeps an answer's highest revision: a correction numbered 1 again after a restart
    would lose to the reading it corrects."""
    db, data = tmp_path / "outbox.db", wire(q1_strokes())
    first = make_pipeline(db)
    feed(first, data)
    feed(first, data)
    first.outbox.close()

    second = make_pipeline(db)
    feed(second, data)
    got = [(e["revision"], len(e["strokes"])) for e in events(second)]
    n = got[0][1]
    assert got == [(1, n), (2, 2 * n), (3, 3 * n)]


def test_ink_in_a_box_long_after_its_answer_is_a_new_attempt_numbered_on(tmp_path):
    db, data = tmp_path / "outbox.db", wire(q1_strokes())
    first = make_pipeline(db)
    feed(first, data)
    first.outbox.close()

    later = make_pipeline(db, revisit_s=1e-6)  # everything written before now is too old
    feed(later, data)
    got = [(e["revision"], len(e["strokes"])) for e in events(later)]
    assert got == [(1, got[0][1]), (2, got[0][1])]
    (box,) = later.outbox.answered_boxes()
    assert box.revision == 2 and box.question_id == "q1"


def _stream(stroke, t0: int, end: int) -> bytes:
    """One stroke as the pen streams it, at the given pen times."""
    from hardware_sim import pen_wire as w

    p = stroke.page
    out = bytearray(w.pen_down(0, t0) + w.paper_info(1, p.section, p.owner, p.note, p.page))
    c = 2
    for (x, y), dt, f in zip(stroke.xy_units, stroke.dt_ms, stroke.force, strict=True):
        out += w.dot(c & 0xFF, int(dt), int(f), x, y)
        c += 1
    return bytes(out + w.pen_up(c & 0xFF, end, len(stroke.xy_units)))


def _stored(stroke, t0: int, end: int):
    from firmware_bridge.events import Dot, NoteId, OfflineStroke

    p = stroke.page
    dots = tuple(
        Dot(float(x), float(y), int(f), int(dt), 0, 0, 0)
        for (x, y), dt, f in zip(stroke.xy_units, stroke.dt_ms, stroke.force, strict=True)
    )
    return OfflineStroke(NoteId(p.section, p.owner, p.note), p.page, t0, end, 0, 0, dots)


@pytest.mark.parametrize("fetches", [1, 2])
def test_after_a_restart_strokes_are_used_in_the_order_they_were_written(tmp_path, fetches):
    """Seen in the kill test: the last run journaled the first stroke of a two-stroke answer; the
    pen's memory then delivered a stroke written *before* it, in the box before, and after it the
    answer's second stroke. Used as they came, the older stroke closed the answer after one
    stroke, and its second stroke made a revision 2 of it."""
    from firmware_bridge.session import MemoryDrained, OfflineBatch

    strokes, answers = scripted()
    starts = [sum(a.strokes for a in answers[:i]) for i in range(len(answers))]
    k = next(i for i, a in enumerate(answers) if i > 0 and a.strokes == 2)
    before, first, second = strokes[starts[k] - 1], strokes[starts[k]], strokes[starts[k] + 1]
    times = {"before": (5000, 5400), "first": (6000, 6300), "second": (6500, 6700)}
    db = tmp_path / "outbox.db"
    dead = make_pipeline(db)
    hello = PenConnection().receive_data(wire([]))
    dead.on_pen_events(LINK, hello + PenConnection().receive_data(_stream(first, *times["first"])))
    assert len(dead.outbox.journaled()) == 1
    dead.outbox.close()  # killed with the answer open

    p = make_pipeline(db)
    assert p.replay_journal(now=0.0) == 1
    memory = [_stored(before, *times["before"]), _stored(first, *times["first"])]
    memory.append(_stored(second, *times["second"]))
    # With two fetches, the link dropped after the first and the pen was fetched again (its
    # strokes not yet durable, so not deleted): still each stroke once.
    for batch_id in range(fetches):
        batch = OfflineBatch(batch_id, memory[0].note, (memory[0].page,), tuple(memory))
        p.on_pen_events(LINK, hello + [batch], now=1.0)
    p.on_pen_events(LINK, [MemoryDrained()], now=1.5)
    p.tick(now=100.0)
    got = [(e["question_id"], e["revision"], len(e["strokes"])) for e in events(p)]
    assert got == [(answers[k - 1].question_id, 1, 1), (answers[k].question_id, 1, 2)]
    assert p.outbox.journaled() == []
    assert p.take_durable_batches() == [(LINK, fetches - 1)]
