"""Offline strokes through the pipeline: answers marked offline, and a batch reported durable only
once every stroke of it is settled in the outbox (pen-wire.md §3.7), across a restart too."""

from __future__ import annotations

import json

import pytest

from firmware_bridge.events import OfflineChunk, PenInfo
from firmware_bridge.protocol import decode_stream
from firmware_bridge.session import OfflineBatch
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from gateway.scoring.recognizer import Recognizer
from gateway.templates import TemplateIndex
from hardware_sim import pen_wire as w
from hardware_sim.classroom import Classroom
from hardware_sim.cli import SAMPLE_EXAM
from hardware_sim.pen import ScriptedStroke

MAC = bytes.fromhex("9c7bef000000")
PEN = "9c:7b:ef:00:00:00"
LINK = "/dev/ttyACM0"


def stored(s: ScriptedStroke, start_ms: int) -> w.StoredStroke:
    dots = tuple(
        w.OfflineDot(int(dt), int(f), float(x), float(y))
        for (x, y), dt, f in zip(s.xy_units, s.dt_ms, s.force, strict=True)
    )
    return w.StoredStroke(s.page.page, start_ms, start_ms + int(s.dt_ms.sum()), dots)


def batch(strokes: list[ScriptedStroke], batch_id: int = 0, note: int = 1001) -> OfflineBatch:
    """The batch a session hands on, built from real chunk bytes by the pen's own encoder."""
    pages = tuple(sorted({s.page.page for s in strokes}))
    fetched = []
    for i, s in enumerate(strokes):
        last = w.CHUNK_LAST if i == len(strokes) - 1 else w.CHUNK_MIDDLE
        frame = w.offline_chunk(i, last, (3, 27, note), [stored(s, 1_700_000_000_000 + 1000 * i)])
        [chunk] = decode_stream(frame)
        assert isinstance(chunk, OfflineChunk)
        fetched += chunk.strokes
    return OfflineBatch(batch_id, fetched[0].note, pages, tuple(fetched))


@pytest.fixture(scope="module")
def script() -> list[ScriptedStroke]:
    room = Classroom(SAMPLE_EXAM, pens=1, seed=5)
    room.stop()
    return room.pens[0].strokes


def make_pipeline(path) -> Pipeline:
    return Pipeline(
        site_id="s1",
        gateway_id="g1",
        templates=TemplateIndex.from_files([SAMPLE_EXAM]),
        roster={PEN: "stu-001"},
        outbox=Outbox(path),
        recognizer=Recognizer.load(),
    )


def hello(p: Pipeline) -> None:
    p.on_pen_events(LINK, [PenInfo("sim", "1", "2.18", "sim", 1, MAC)], now=0.0)


def answers(p: Pipeline) -> list[dict]:
    return [json.loads(r.payload) for r in p.outbox.pending(0, 1000)]


def test_offline_strokes_become_answers_and_the_batch_is_durable_only_after(tmp_path, script):
    p = make_pipeline(tmp_path / "outbox.db")
    hello(p)
    p.on_pen_events(LINK, [batch(script)], now=1.0)
    # The last answer is still open (idle time not over): not every stroke is settled.
    assert len(answers(p)) == 11 and p.take_durable_batches() == []
    p.tick(now=100.0)
    events = answers(p)
    assert [e["question_id"] for e in events] == [f"q{i}" for i in range(1, 13)]
    assert all(s.get("offline") is True for e in events for s in e["strokes"])
    assert p.take_durable_batches() == [(LINK, 0)]
    assert p.take_durable_batches() == []  # reported once


def test_a_batch_fetched_again_is_not_used_twice_even_after_a_restart(tmp_path, script):
    p = make_pipeline(tmp_path / "outbox.db")
    hello(p)
    p.on_pen_events(LINK, [batch(script)], now=1.0)
    p.tick(now=100.0)
    p.take_durable_batches()
    p.outbox.close()

    again = make_pipeline(tmp_path / "outbox.db")  # the gateway restarted before the delete
    hello(again)
    again.on_pen_events(LINK, [batch(script, batch_id=4)], now=1.0)
    assert again.take_durable_batches() == [(LINK, 4)]
    again.tick(now=100.0)
    assert len(answers(again)) == 12 and again.stats.strokes == 0


def test_strokes_the_pipeline_drops_are_settled_too(tmp_path, script):
    p = make_pipeline(tmp_path / "outbox.db")
    hello(p)
    p.on_pen_events(LINK, [batch(script[:3], note=4242)], now=1.0)  # no template has this page
    assert p.take_durable_batches() == [(LINK, 0)]
    assert answers(p) == [] and p.rejects.counts["unknown_page"] == 3


def test_nothing_is_durable_while_an_answer_waits(tmp_path, script):
    p = make_pipeline(tmp_path / "outbox.db")
    hello(p)
    p.on_pen_events(LINK, [batch(script[:1])], now=1.0)
    p.tick(now=2.0)
    assert p.take_durable_batches() == [] and answers(p) == []
    p.flush()
    assert p.take_durable_batches() == [(LINK, 0)] and len(answers(p)) == 1
