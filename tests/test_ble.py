"""The BLE transport (firmware_bridge/ble.py, through bleak) against simulated pens on a simulated
radio: Bumble's virtual controllers and link, with bleak backend classes built on Bumble. The
transport code is the one that runs on BlueZ; only the radio is simulated."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from firmware_bridge.ble import Backoff, BleHub, BleThread
from firmware_bridge.events import PenUp
from firmware_bridge.session import SessionTimes
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from gateway.scoring.recognizer import Recognizer
from gateway.templates import TemplateIndex
from hardware_sim.ble_pen import BlePen
from hardware_sim.ble_radio import BumbleRadio
from hardware_sim.classroom import Classroom
from hardware_sim.cli import SAMPLE_EXAM

TIMES = SessionTimes(retry_s=0.3, silence_s=1.0, lost_s=1.0, stall_s=2.0)
SCALE = 10.0


async def lesson(tmp_path, pens: list[dict], timeout: float = 40.0):
    """Run BLE pens (BlePen keyword arguments each) through a hub and a pipeline."""
    radio = BumbleRadio()
    await radio.start()
    room = Classroom(SAMPLE_EXAM, pens=len(pens), seed=5, time_scale=SCALE)
    room.stop()  # only its scripts are used: these pens have radios, not pseudo-terminals
    ble_pens = []
    for i, (scripted, options) in enumerate(zip(room.pens, pens, strict=True)):
        pen = BlePen(scripted.mac, scripted.strokes, SCALE, seed=i, **options)
        await pen.attach(radio)
        ble_pens.append(pen)
    pipeline = Pipeline(
        site_id="s1",
        gateway_id="g1",
        templates=TemplateIndex.from_files([SAMPLE_EXAM]),
        roster=room.roster,
        outbox=Outbox(tmp_path / "outbox.db"),
        recognizer=Recognizer.load(),
        idle_s=0.5,
    )
    cut_ups: Counter[str] = Counter()

    def deliver(link: str, events: list) -> None:
        cut_ups[link] += sum(isinstance(e, PenUp) and e.synthetic for e in events)
        pipeline.on_pen_events(link, events)

    hub = BleHub(
        "classink test",
        deliver,
        times=TIMES,
        backoff=Backoff(0.2, 2.0, 2.0),
        scanner_backend=radio.scanner_backend,
        client_backend=radio.client_backend,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(hub.run(stop))
    for pen in ble_pens:
        pen.start()
    deadline = time.monotonic() + timeout
    expected = sum(len(p.strokes) for p in ble_pens)
    while time.monotonic() < deadline:
        pipeline.tick()
        for link, batch_id in pipeline.take_durable_batches():
            hub.batch_durable(link, batch_id)
        written = all(p.done.is_set() for p in ble_pens)
        # Offline memory is deleted only after its batch is durable here: wait for that too.
        emptied = all(p.firmware.stored_count == 0 for p in ble_pens)
        if written and emptied and pipeline.stats.strokes >= expected - sum(cut_ups.values()):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # let the last answers go idle
    pipeline.tick()
    stop.set()
    await running
    for pen in ble_pens:
        pen.stop()
        await pen.detach()
    pipeline.flush()
    events = [json.loads(r.payload) for r in pipeline.outbox.pending(0, 10_000)]
    return room, ble_pens, pipeline, events, cut_ups


def test_pens_advertising_each_way_deliver_every_answer(tmp_path):
    pens = [{"advertise": kind} for kind in ("neo", "new", "name")]
    room, ble_pens, pipeline, events, cut_ups = asyncio.run(lesson(tmp_path, pens))
    assert sum(cut_ups.values()) == 0
    assert pipeline.stats.strokes == sum(len(p.strokes) for p in ble_pens)
    got = Counter((e["pen_id"], e["question_id"]) for e in events)
    assert got == Counter((a.pen_id, a.question_id) for a in room.answers)


def test_a_pen_whose_link_drops_comes_back_and_loses_only_what_was_in_the_air(tmp_path):
    pens = [{"cut_rate": 0.15}, {"advertise": "new", "cut_rate": 0.15}]
    room, ble_pens, pipeline, events, cut_ups = asyncio.run(lesson(tmp_path, pens))
    assert sum(p.links_cut for p in ble_pens) > 0
    assert pipeline.rejects.counts["link_lost"] + sum(cut_ups.values()) > 0
    # Every stroke arrives once: whole, or cut where the link dropped (a synthesised PenUp).
    assert pipeline.stats.strokes == sum(len(p.strokes) for p in ble_pens)
    assert sum(p.strokes_stored for p in ble_pens) > 0  # written while the link was down
    assert all(p.firmware.stored_count == 0 for p in ble_pens)  # fetched, durable, deleted


@pytest.mark.skipif(
    Path("/run/dbus/system_bus_socket").exists(), reason="a system bus is here: BlueZ may answer"
)
def test_without_a_bluetooth_stack_the_gateway_carries_on(caplog):
    ble = BleThread("classink test", lambda _pen: None)
    ble.start()
    assert ble.stop() == []
    assert "BLE unavailable" in caplog.text
