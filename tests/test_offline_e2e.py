"""A pen that leaves the gateway's range mid-exam, over a real serial link (a pseudo-terminal):
it stores what is written, comes back, the gateway fetches and verifies it (through damaged
chunks), the answers reach the outbox marked offline, and only then is the pen told to delete."""

from __future__ import annotations

import json
import time

from firmware_bridge.serial import SerialHub
from firmware_bridge.session import SessionTimes
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from gateway.scoring.recognizer import Recognizer
from gateway.templates import TemplateIndex
from hardware_sim.classroom import Classroom
from hardware_sim.cli import SAMPLE_EXAM

TIMES = SessionTimes(retry_s=0.3, silence_s=0.4, lost_s=0.4, stall_s=2.0)


def run_gateway(pipeline: Pipeline, hub: SerialHub, until, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until():
        for link, events in hub.poll(0.02):
            pipeline.on_pen_events(link.device, events)
        pipeline.tick()
        for device, batch_id in pipeline.take_durable_batches():
            hub.batch_durable(device, batch_id)


def test_strokes_written_out_of_range_arrive_once_and_are_deleted_after_commit(tmp_path):
    room = Classroom(SAMPLE_EXAM, pens=1, seed=5, time_scale=10.0)
    pen = room.pens[0]
    first, last = pen.strokes[0].start_s, pen.strokes[-1].start_s
    # Away for the last part of the exam, back after it: the last answer is written offline.
    pen.offline_windows = [(first + 0.7 * (last - first), last + 5.0)]
    pen.firmware.chunk_corrupt_rate = 0.3
    outbox = Outbox(tmp_path / "outbox.db")
    # A long idle time keeps the last offline answer open: nothing may be deleted meanwhile.
    pipeline = Pipeline(
        site_id="s1",
        gateway_id="g1",
        templates=TemplateIndex.from_files([SAMPLE_EXAM]),
        roster=room.roster,
        outbox=outbox,
        recognizer=Recognizer.load(),
        idle_s=600.0,
    )
    hub = SerialHub(room.devices, "classink test", times=TIMES)
    with room:
        run_gateway(
            pipeline,
            hub,
            lambda: pen.done.is_set() and pipeline.stats.strokes == len(pen.strokes),
            timeout=8.0,
        )
        stored = pen.strokes_stored
        assert 0 < stored < len(pen.strokes)
        run_gateway(pipeline, hub, lambda: False, timeout=0.5)
        assert pen.firmware.stored_count == stored  # fetched, but its answers are not durable yet
        pipeline.flush()  # the answers are committed now
        run_gateway(pipeline, hub, lambda: pen.firmware.stored_count == 0, timeout=5.0)
        hub.close()
    assert pen.firmware.stored_count == 0 and len(pen.firmware.deleted) == stored
    events = [json.loads(r.payload) for r in outbox.pending(0, 1000)]
    assert sorted(e["question_id"] for e in events) == sorted(a.question_id for a in room.answers)
    strokes = [s for e in events for s in e["strokes"]]
    assert len(strokes) == len(pen.strokes)
    assert sum(s.get("offline", False) for s in strokes) == stored
    assert pipeline.rejects.counts["link_lost"] >= 1
    if pen.firmware.chunks_corrupted:
        damaged = sum(n for r, n in pipeline.rejects.counts.items() if r.startswith("offline_"))
        assert damaged == pen.firmware.chunks_corrupted
