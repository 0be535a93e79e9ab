"""A whole lesson through one gateway: forty simulated pens, half on the simulated BLE radio and
half on serial ports, all writing at once through the real transports, pipeline and outbox, with
every fault the simulator has — frames dropped and damaged on the link, line noise, links cut
mid-stroke (BLE connections dropped, serial cables pulled and put back), pens out of range whose
strokes are fetched from their memory when they return, damaged offline chunks, camera errors,
hover, and pens whose battery dies in the middle of a stroke.

The simulator keeps its own record of every stroke and of what the link did with every frame;
the outbox must hold exactly the strokes that record says reached the gateway, each once, in
order per pen, dot for dot, and the gateway must report exactly the gaps and damage injected."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import pytest

from firmware_bridge.ble import Backoff, BleHub, link_name
from firmware_bridge.events import EventGap, Rejected
from firmware_bridge.serial import SerialHub
from firmware_bridge.session import SessionTimes
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from gateway.scoring.recognizer import Recognizer
from gateway.strokes import PEN_UNIT_MM
from gateway.templates import TemplateIndex
from hardware_sim.ble_pen import BlePen
from hardware_sim.ble_radio import BumbleRadio
from hardware_sim.classroom import Classroom
from hardware_sim.cli import SAMPLE_EXAM
from hardware_sim.link_faults import LinkFaults
from hardware_sim.pen import SimPen, WrittenStroke

PENS = 40
SCALE = 1.0  # the pens write at their real pace: 120 dots/s each, 4,800 dots/s for the room
TIMES = SessionTimes(retry_s=0.5, silence_s=1.5, lost_s=1.5, stall_s=3.0)
FRAME_FAULTS = 0.01  # of real-time frames lost, and as many damaged
# The wire carries hundredths of a pen unit (a pen clamps .995 and up to .99), and the outbox
# rounds millimetres to hundredths: 0.01 unit + 0.005 mm.
UNIT_TOLERANCE = 0.0125


@dataclass
class Lesson:
    pens: list[SimPen]
    links: dict[str, str]  # pen id -> the gateway's name for its link
    outbox: list[dict]
    rejects: dict[str, Counter[str]]  # per link, every Rejected and EventGap the transports sent
    pipeline: Pipeline
    seconds: float


def make_pens(room: Classroom, tmp_path) -> list[SimPen]:
    pens: list[SimPen] = []
    for i, scripted in enumerate(room.pens):
        first, last = scripted.strokes[0].start_s, scripted.strokes[-1].start_s
        options: dict = {
            "faults": LinkFaults(FRAME_FAULTS, FRAME_FAULTS, seed=i),
            "noise_rate": 0.005,
            "error_dot_rate": 0.01,
            "hover": i % 4 == 0,
            "cut_rate": 0.06 if i % 3 == 0 else 0.0,
        }
        if i % 7 == 1:  # out of range for a stretch of the lesson
            span = last - first
            options["offline_windows"] = [(first + 0.3 * span, first + 0.55 * span)]
            options["chunk_corrupt_rate"] = 0.2
        if i in (5, 26):  # the battery dies halfway through a stroke late in the lesson
            dying = scripted.strokes[int(0.8 * len(scripted.strokes))]
            options["battery_empty_at"] = dying.start_s + len(dying.dt_ms) / 240
        common = (scripted.mac, scripted.strokes, SCALE)
        if i % 2 == 0:
            advertise = ("neo", "new", "name")[i % 3]
            pens.append(BlePen(*common, seed=i, advertise=advertise, **options))
        else:
            pens.append(SimPen(*common, seed=i, link_dir=tmp_path, **options))
    return pens


async def run_lesson(tmp_path, timeout: float = 150.0) -> Lesson:
    started = time.monotonic()
    room = Classroom(SAMPLE_EXAM, pens=PENS, seed=21, time_scale=SCALE)
    room.stop()  # only its scripts are used: the pens below carry the faults
    pens = make_pens(room, tmp_path)
    radio = BumbleRadio()
    await radio.start()
    for pen in pens:
        if isinstance(pen, BlePen):
            await pen.attach(radio)
    links = {p.pen_id: link_name(p.device) if isinstance(p, BlePen) else p.device for p in pens}
    pipeline = Pipeline(
        site_id="s1",
        gateway_id="g1",
        templates=TemplateIndex.from_files([SAMPLE_EXAM]),
        roster=room.roster,
        outbox=Outbox(tmp_path / "outbox.db"),
        recognizer=Recognizer.load(),
        idle_s=1.0,
    )
    rejects: dict[str, Counter[str]] = defaultdict(Counter)

    def deliver(link: str, events: list) -> None:
        for e in events:
            if isinstance(e, Rejected):
                rejects[link][e.reason] += 1
            elif isinstance(e, EventGap):
                rejects[link]["event_gap"] += 1
        pipeline.on_pen_events(link, events)

    ble = BleHub(
        "classink test",
        deliver,
        times=TIMES,
        backoff=Backoff(0.2, 2.0, 1.0),
        scanner_backend=radio.scanner_backend,
        client_backend=radio.client_backend,
    )
    serial = SerialHub(
        [p.device for p in pens if not isinstance(p, BlePen)], "classink test", times=TIMES
    )
    stop = asyncio.Event()
    running = asyncio.create_task(ble.run(stop))
    for pen in pens:
        pen.start()
    deadline = time.monotonic() + timeout
    settled_at = None
    while time.monotonic() < deadline:
        # One thread for the pipeline, as in the daemon: the serial hub is polled between turns
        # of the loop that carries the BLE pens.
        for link, events in serial.poll(0):
            deliver(link.device, events)
        pipeline.tick()
        for link, batch_id in pipeline.take_durable_batches():
            if link.startswith("ble:"):
                ble.batch_durable(link, batch_id)
            else:
                serial.batch_durable(link, batch_id)
        finished = all(p.done.is_set() for p in pens) and all(
            p.firmware.stored_count == 0 for p in pens if p.powered
        )
        if not finished:
            settled_at = None
        elif settled_at is None:
            settled_at = time.monotonic()
        elif time.monotonic() - settled_at > 2.0:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await running
    for link, events in serial.close():
        deliver(link.device, events)
    for pen in pens:
        pen.stop()
        if isinstance(pen, BlePen):
            await pen.detach()
    pipeline.flush()
    outbox = [json.loads(r.payload) for r in pipeline.outbox.pending(0, 100_000)]
    return Lesson(pens, links, outbox, rejects, pipeline, time.monotonic() - started)


@pytest.fixture(scope="module")
def lesson(tmp_path_factory) -> Lesson:
    return asyncio.run(run_lesson(tmp_path_factory.mktemp("lesson")))


# -- what the simulator's record says the gateway must have ---------------------------------------


def first_heard(pen: SimPen) -> set[int]:
    """ids of the frames that were the first the gateway heard on their connection: the event
    counter starts there, so nothing lost just before them can show as a gap."""
    seen: set[int] = set()
    first: set[int] = set()
    for s in pen.frames:
        if s.counted and s.delivered and s.epoch not in seen:
            seen.add(s.epoch)
            first.add(id(s))
    return first


def expected_gaps(pen: SimPen) -> int:
    """One gap per run of lost counted frames between two delivered ones on a connection (the
    first frame heard sets the counter, pen-wire.md §4, so a loss before it cannot show)."""
    gaps, lost_in, heard = 0, None, set()
    for s in pen.frames:
        if not s.counted:
            continue
        if not s.delivered:
            lost_in = s.epoch if s.epoch in heard else None
            continue
        gaps += lost_in == s.epoch
        lost_in = None
        heard.add(s.epoch)
    return gaps


def placeable(stroke: WrittenStroke, first: set[int]) -> bool:
    """Whether the gateway can know the stroke's page: its PaperInfo arrived and opened (or,
    with its PenDown lost, reopened after a reported gap) the stroke."""
    if stroke.offline:
        return True
    assert stroke.paper is not None and stroke.pen_down is not None
    if not stroke.paper.delivered:
        return False
    return bool(stroke.pen_down.delivered) or id(stroke.paper) not in first


def expected_strokes(pen: SimPen) -> list[tuple[str, list[tuple[float, float]]]]:
    first = first_heard(pen)
    out = []
    for s in pen.written:
        dots = s.delivered
        if dots and placeable(s, first):
            out.append((s.page, dots))
    return out


def unplaced_dots(pen: SimPen, lost: bool) -> int:
    """Dots of strokes whose PaperInfo (lost=True) or PenDown (False) never made it."""
    first = first_heard(pen)
    total = 0
    for s in pen.written:
        if s.offline or placeable(s, first):
            continue
        paper_lost = not s.paper.delivered
        if paper_lost == lost:
            total += len(s.delivered)
    return total


def arrived_strokes(lesson: Lesson) -> dict[str, list[tuple[str, list[list[float]]]]]:
    """Per pen, the strokes in the outbox in the order they reached it, each once: an answer's
    later revision repeats its box's earlier strokes, and only its new ones are new."""
    latest: dict[tuple, dict] = {}
    for e in lesson.outbox:
        key = (e["pen_id"], e["page_address"], e["question_id"])
        if key not in latest or e["revision"] > latest[key]["revision"]:
            latest[key] = e
    carried = Counter((e["pen_id"], json.dumps(s)) for e in latest.values() for s in e["strokes"])
    assert max(carried.values()) == 1, "a stroke is in two answers"
    order: dict[str, list] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for e in sorted(lesson.outbox, key=lambda e: e["seq"]):
        for s in e["strokes"]:
            ident = (e["pen_id"], json.dumps(s))
            if ident not in seen:
                seen.add(ident)
                order[e["pen_id"]].append((e["page_address"], s["points"]))
    assert len(seen) == len(carried)
    return order


# -- the checks ----------------------------------------------------------------------------------


def test_every_stroke_arrives_once_in_order_dot_for_dot(lesson):
    arrived = arrived_strokes(lesson)
    for pen in lesson.pens:
        want = expected_strokes(pen)
        got = arrived[pen.pen_id]
        assert [(page, len(d)) for page, d in got] == [(page, len(d)) for page, d in want], (
            pen.pen_id
        )
        for (_, got_points), (_, want_dots) in zip(got, want, strict=True):
            for g, w in ((got_points[0], want_dots[0]), (got_points[-1], want_dots[-1])):
                assert abs(g[0] / PEN_UNIT_MM - w[0]) < UNIT_TOLERANCE, pen.pen_id
                assert abs(g[1] / PEN_UNIT_MM - w[1]) < UNIT_TOLERANCE, pen.pen_id


def test_the_lesson_had_every_fault(lesson):
    pens = lesson.pens
    assert len(pens) == PENS and sum(isinstance(p, BlePen) for p in pens) == PENS // 2
    assert sum(p.links_cut for p in pens if isinstance(p, BlePen)) > 0
    assert sum(p.links_cut for p in pens if not isinstance(p, BlePen)) > 0
    assert sum(p.strokes_stored for p in pens) > 0
    assert sum(p.faults.dropped for p in pens) > 0
    assert sum(sum(p.faults.damaged.values()) for p in pens) > 0
    assert sum(p.firmware.chunks_corrupted for p in pens) > 0
    assert sum(not p.powered for p in pens) == 2
    assert sum(s.cut == "power" for p in pens for s in p.written) == 2
    kinds = Counter(s.kind for p in pens for s in p.frames)
    assert kinds["hover"] and kinds["error"] and kinds["battery"] and kinds["power"] == 2
    # Offline strokes were fetched, made durable and only then deleted from the pens.
    assert all(p.firmware.stored_count == 0 for p in pens if p.powered)
    stored = [s for p in pens for s in p.written if s.offline]
    assert len(stored) == sum(p.strokes_stored for p in pens)
    print(
        f"\nlesson: {len(pens)} pens, {sum(len(p.written) for p in pens)} strokes "
        f"({len(stored)} offline), {len(lesson.outbox)} answer events, "
        f"{sum(p.faults.dropped for p in pens)} frames dropped, "
        f"{sum(sum(p.faults.damaged.values()) for p in pens)} damaged, "
        f"{sum(sum(p.noise_sent.values()) for p in pens)} noise bursts, "
        f"{sum(p.links_cut for p in pens)} links cut, "
        f"{sum(p.firmware.chunks_corrupted for p in pens)} chunks damaged, "
        f"{lesson.seconds:.1f} s"
    )


def test_the_gaps_and_damage_injected_are_reported_exactly(lesson):
    for pen in lesson.pens:
        got = lesson.rejects[lesson.links[pen.pen_id]]
        faults, noise = pen.damage_sent, pen.noise_sent
        want = {
            "event_gap": expected_gaps(pen),
            "garbage": noise["garbage"],
            "bad_length": noise["bad_length"] + faults["bad_length"],
            "bad_escape": noise["bad_escape"] + faults["bad_escape"],
            "truncated": faults["truncated"],
            "dot_without_page": unplaced_dots(pen, lost=True),
            "dot_without_pen_down": unplaced_dots(pen, lost=False),
            "offline_bad_zlib": pen.firmware.chunks_corrupted,
        }
        have = {reason: got[reason] for reason in want}
        # A damaged chunk fails its zlib check or, rarely, inflates and fails a dot checksum.
        have["offline_bad_zlib"] += got["offline_checksum"] + got["offline_bad_size"]
        assert have == want, pen.pen_id
    assert not {"unknown_page", "outside_regions", "unrecognisable"} & set(
        lesson.pipeline.rejects.counts
    )


def test_nothing_is_invented(lesson):
    written = Counter()
    for pen in lesson.pens:
        for s in pen.written:
            written[pen.pen_id] += len(s.delivered)
    arrived = Counter()
    for pen_id, strokes in arrived_strokes(lesson).items():
        arrived[pen_id] += sum(len(points) for _, points in strokes)
    assert all(arrived[p] <= written[p] for p in arrived)
    assert set(arrived) <= set(written)
