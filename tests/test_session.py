"""The gateway's pen session against the simulated pen firmware, in-process: handshake, password,
clock, offline fetch with damaged chunks and lost acks, deletion only when told the strokes are
durable, real-time events held behind the offline strokes, and a pen that falls silent."""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_bridge.events import Dot, NoteId, PenDown, PenInfo, PenUp, Rejected
from firmware_bridge.session import LinkLost, MemoryDrained, OfflineBatch, PenSession, SessionTimes
from hardware_sim import pen_wire as w
from hardware_sim.firmware import PenFirmware

MAC = bytes.fromhex("9c7bef0000aa")
NOTE = (3, 27, 1001)
WALL_MS = 1_700_000_000_000


def stored(page: int, start_ms: int, dots: int = 3) -> w.StoredStroke:
    points = tuple(w.OfflineDot(0 if i == 0 else 8, 400, 10 + i, 20 + i / 4) for i in range(dots))
    return w.StoredStroke(page, start_ms, start_ms + 8 * (dots - 1), points)


@dataclass
class Link:
    """Carries bytes both ways; `drop_to_pen` loses the gateway's next frames, as a radio may."""

    session: PenSession
    pen: PenFirmware
    now: float = 0.0
    events: list = field(default_factory=list)
    drop_to_pen: int = 0
    pen_in_range: bool = True

    def step(self, extra_from_pen: bytes = b"") -> None:
        to_pen = self.session.data_to_send()
        if self.drop_to_pen and to_pen:
            self.drop_to_pen -= 1
            to_pen = b""
        from_pen = extra_from_pen
        if self.pen_in_range:
            from_pen += self.pen.on_data(to_pen, self.now, WALL_MS) + self.pen.tick(self.now)
        if from_pen:
            self.events += self.session.receive_data(from_pen, self.now)
        self.events += self.session.tick(self.now)

    def run(self, seconds: float, dt: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end:
            self.step()
            self.now += dt

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def link(pen: PenFirmware, password: str | None = None) -> Link:
    session = PenSession(
        "classink test",
        lambda _pen: password,
        SessionTimes(0.5, 2.0, 2.0, 2.0),
        clock_ms=lambda: WALL_MS + 5_000,
    )
    session.connect(0.0)
    return Link(session, pen)


def test_handshake_sets_the_clock_and_goes_online():
    pen = PenFirmware(MAC)
    lk = link(pen)
    lk.run(0.5)
    assert lk.of(PenInfo)[0].pen_id == "9c:7b:ef:00:00:aa"
    assert lk.session.online and pen.online
    assert pen.clock_ms(WALL_MS) == WALL_MS + 5_000
    assert lk.of(OfflineBatch) == []


def test_offline_strokes_are_fetched_note_by_note_and_deleted_only_when_durable():
    pen = PenFirmware(MAC)
    for i in range(30):
        pen.store(NOTE, stored(1 + i % 2, WALL_MS + 1000 * i, dots=100))
    pen.store((3, 27, 1002), stored(7, WALL_MS + 50_000))
    lk = link(pen)
    lk.run(2.0)
    batches = lk.of(OfflineBatch)
    assert [(b.note, b.pages, len(b.strokes)) for b in batches] == [
        (NoteId(*NOTE), (1, 2), 30),
        (NoteId(3, 27, 1002), (7,), 1),
    ]
    assert [s.start_ms for s in batches[0].strokes] == [WALL_MS + 1000 * i for i in range(30)]
    assert all(len(s.dots) == 100 for s in batches[0].strokes)
    assert pen.stored_count == 31 and lk.session.online  # nothing deleted yet

    lk.session.batch_durable(batches[1].batch_id)
    lk.run(0.5)
    assert pen.stored_count == 30 and pen.stored[(3, 27, 1002)] == []
    lk.session.batch_durable(batches[0].batch_id)
    lk.session.batch_durable(batches[0].batch_id)  # twice is harmless
    lk.run(0.5)
    assert pen.stored_count == 0 and len(pen.deleted) == 31


def test_damaged_chunks_and_lost_acks_still_give_every_stroke_once():
    pen = PenFirmware(MAC, chunk_corrupt_rate=0.4, seed=3)
    strokes = [stored(1, WALL_MS + 1000 * i, dots=60) for i in range(40)]
    for s in strokes:
        pen.store(NOTE, s)
    lk = link(pen)
    lk.run(0.3)
    lk.drop_to_pen = 2  # two of the gateway's acks never arrive: the pen sends those chunks again
    lk.run(10.0)
    [batch] = lk.of(OfflineBatch)
    assert [s.start_ms for s in batch.strokes] == [s.start_ms for s in strokes]
    assert pen.chunks_corrupted > 0
    damaged = [e for e in lk.of(Rejected) if e.reason.startswith("offline_")]
    assert len(damaged) == pen.chunks_corrupted


def test_real_time_strokes_wait_behind_the_offline_ones():
    pen = PenFirmware(MAC)
    for i in range(10):
        pen.store(NOTE, stored(1, WALL_MS + 1000 * i, dots=100))
    lk = link(pen)
    lk.run(0.12)  # the handshake is done and the fetch is under way
    assert pen.online and not lk.session.online
    live = w.pen_down(0, WALL_MS + 99_000) + w.paper_info(1, 3, 27, 1001, 1)
    live += w.dot(2, 0, 400, 5, 5) + w.pen_up(3, WALL_MS + 99_010, 1)
    lk.step(extra_from_pen=live)
    lk.run(2.0)
    shown = OfflineBatch | MemoryDrained | PenDown | Dot | PenUp
    kinds = [type(e) for e in lk.events if isinstance(e, shown)]
    # The pipeline learns the memory is drained before the first real-time event.
    assert kinds == [OfflineBatch, MemoryDrained, PenDown, Dot, PenUp]


def test_a_locked_pen_needs_its_password_and_is_never_guessed_at():
    lk = link(PenFirmware(MAC, password="4321"), password="4321")
    lk.run(0.5)
    assert lk.session.online

    pen = PenFirmware(MAC, password="4321")
    lk = link(pen, password="0000")
    lk.run(3.0)
    assert not lk.session.online and pen.settings.retries == 1
    assert [e.reason for e in lk.of(Rejected)] == ["password_refused"]

    lk = link(PenFirmware(MAC, password="4321"))
    lk.run(1.0)
    assert [e.reason for e in lk.of(Rejected)] == ["password_required"]


def test_a_silent_pen_is_lost_and_welcomed_back():
    pen = PenFirmware(MAC)
    lk = link(pen)
    lk.run(0.5)
    lk.step(extra_from_pen=w.pen_down(0, WALL_MS) + w.paper_info(1, 3, 27, 1001, 1))
    lk.step(extra_from_pen=w.dot(2, 0, 400, 5, 5))
    lk.pen_in_range = False
    pen.link_lost()
    lk.run(5.0)
    [lost] = lk.of(LinkLost)
    assert lost.silent_s >= 4.0
    cut = lk.of(PenUp)
    assert len(cut) == 1 and cut[0].synthetic  # the stroke cut by the loss is closed, not lost
    pen.store(NOTE, stored(1, WALL_MS + 60_000))  # written while away
    lk.pen_in_range = True
    lk.run(1.5)
    assert len(lk.of(PenInfo)) == 2 and lk.session.online
    assert [len(b.strokes) for b in lk.of(OfflineBatch)] == [1]
