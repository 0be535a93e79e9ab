"""The gateway's pipeline: pen events → strokes → answer boxes → recognised, scored answer events.

Everything here runs on one thread, fed by the pen transport; its only output is the outbox.

Strokes fetched from a pen's offline memory (OfflineBatch) take the same path, marked offline. Each
is settled when the answer carrying it is appended to the outbox (in that transaction) or when the
pipeline drops it; a batch whose strokes are all settled is reported by `take_durable_batches`, and
only then may the pen be asked to delete them (pen-wire.md §3.7).

A streamed stroke exists nowhere else once the gateway has read it, so it is journaled in the outbox
database before it is used (gateway/stroke_journal.py) and leaves the journal with its answer; a
restarted gateway replays the journal first. A stroke a pen offers again after a lost link is
matched by its key and used once (protocol_specs/mqtt.md, "Through a killed gateway").
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import orjson
from ext.strokejson import points_json

from firmware_bridge.events import Dot, Event, EventGap, OfflineStroke, PenInfo, Rejected
from firmware_bridge.session import LinkLost, MemoryDrained, OfflineBatch
from gateway import stroke_journal
from gateway.answers import Answer, AnswerAssembler, BoxMemory
from gateway.lattice_frames import as_coordinate_events
from gateway.outbox import AnsweredBox, Outbox, Pending
from gateway.rejects import Rejects
from gateway.restart_order import RestartOrder
from gateway.scoring.marking import read_mark, split_roster
from gateway.scoring.read import read_region
from gateway.scoring.recognizer import Recognizer
from gateway.scoring.score import Score, score
from gateway.stage_trace import StageTrace
from gateway.storage_alarm import StorageAlarm
from gateway.stroke_journal import decode_many, encode_many
from gateway.strokes import PEN_UNIT_MM, Stroke, StrokeAssembler
from gateway.templates import TemplateIndex
from gateway.uplink import topic

log = logging.getLogger(__name__)
FORGET_EVERY_S = 60.0  # how often strokes older than revisit_s are dropped from box memory


@dataclass
class PipelineStats:
    strokes: int = 0
    answers: int = 0
    reviews: int = 0
    storage_errors: int = 0  # journal or outbox writes that failed (a full disk, say)
    replayed: int = 0  # strokes read back from the journal at start-up


@dataclass
class Pipeline:
    site_id: str
    gateway_id: str
    templates: TemplateIndex
    roster: dict[str, str]
    outbox: Outbox
    recognizer: Recognizer
    review_below: float = 0.6
    idle_s: float = 2.5
    revisit_s: float = 3 * 3600.0  # answers.py: how long earlier ink in a box is carried on
    rejects: Rejects = field(default_factory=Rejects)
    stats: PipelineStats = field(default_factory=PipelineStats)
    trace: StageTrace | None = None  # per-answer stage times, for bench.classroom

    def __post_init__(self) -> None:
        self._answers = AnswerAssembler(idle_s=self.idle_s, revisit_s=self.revisit_s)
        self._order = RestartOrder()
        self._forget_at = 0.0
        self._pen_of_link: dict[str, str] = {}
        self._assemblers: dict[str, StrokeAssembler] = {}
        self._topic = topic(self.site_id, self.gateway_id, "answers")
        self._unsettled: dict[tuple[str, str], tuple[str, int]] = {}  # (pen, key) -> batch
        self._batch_left: dict[tuple[str, int], int] = {}  # (link, batch id) -> unsettled
        self._durable: list[tuple[str, int]] = []
        # Pens whose roster entry is "teacher:<id>" mark papers (gateway/scoring/marking.py).
        self._students, self._teachers = split_roster(self.roster)
        # Student ids read from student_id boxes, by (pen, page): used when nothing else says
        # whose answers a pen writes. Kept in the outbox database, written before the answer that
        # read it is stored: whatever a crash interrupts, that ink is still journaled or stored.
        self._written_ids: dict[tuple[str, str], str] = self.outbox.written_ids()
        # Finalised answers (with their wall-clock time) not in the outbox yet: stored at the
        # next tick, or held back while the disk has no room.
        self._unstored: list[tuple[Answer, Callable[[int, str], dict], float]] = []
        self._fresh = False  # answers were finalised since the last store
        self._retry_at = 0.0
        self._storage_alarm = StorageAlarm()
        self._restore_boxes()

    def on_pen_events(self, link: str, events: list[Event], now: float | None = None) -> None:
        self.on_round([(link, events)], now)
        self._store_waiting()

    def on_round(self, reads: list[tuple[str, list[Event]]], now: float | None = None) -> None:
        """One poll round's reads from every pen: the strokes they finish are journaled in one
        transaction, then used. Answers they close are queued; tick() stores them (the daemon
        calls it after every round), so that a round's answers share one transaction too."""
        now = time.monotonic() if now is None else now
        finished: list[Stroke] = []  # journaled together, then fed on
        inked: list[str] = []  # pens whose unfinished stroke got dots in this round
        converted = as_coordinate_events([events for _, events in reads])
        for (link, _), events in zip(reads, converted, strict=True):
            if self._read(link, events, finished, now):
                inked.append(self._pen_of_link[link])
        self._journal_and_feed(finished, now)
        for pen_id in inked:
            self._answers.inked(pen_id, now)

    def _read(self, link: str, events: list[Event], finished: list[Stroke], now: float) -> bool:
        """Strokes the link's events finish go to `finished`; True when the pen is mid-stroke."""
        inked = False
        for event in events:
            if type(event) is Dot:  # the hot path first: thousands a second
                pen_id = self._pen_of_link.get(link)
                if pen_id is not None:
                    self._assemblers[pen_id].dot(event)
                    inked = True
                    continue
            if isinstance(event, PenInfo):
                self._pen_of_link[link] = event.pen_id
                self._assemblers[event.pen_id] = StrokeAssembler(event.pen_id)
                if event.pen_id not in self.roster:
                    log.warning(
                        "pen %s on %s is not on the roster; answers go out unassigned",
                        event.pen_id,
                        link,
                    )
                log.info(
                    "pen %s (%s, firmware %s) on %s",
                    event.pen_id,
                    event.device_name,
                    event.firmware_version,
                    link,
                )
                continue
            if isinstance(event, Rejected):
                self.rejects.record(event.reason, f"{link}: {event.detail}")
                continue
            if isinstance(event, EventGap):
                self.rejects.record(
                    "event_gap", f"{link}: expected event {event.expected}, got {event.received}"
                )
                continue
            if isinstance(event, LinkLost):
                self.rejects.record("link_lost", f"{link}: silent for {event.silent_s:.1f} s")
                continue
            pen_id = self._pen_of_link.get(link)
            if pen_id is None:
                self.rejects.record(
                    "before_handshake",
                    f"{link}: {type(event).__name__} before the pen said who it is",
                )
                continue
            if isinstance(event, OfflineBatch):
                # Strokes streamed before the batch are used before it, as they were written.
                self._journal_and_feed(finished, now)
                finished.clear()
                self._on_offline_batch(link, pen_id, event, now)
                continue
            if isinstance(event, MemoryDrained):
                self._journal_and_feed(finished, now)
                finished.clear()
                self._release(pen_id, now)
                continue
            stroke = self._assemblers[pen_id].feed(event)
            if stroke is not None:
                finished.append(stroke)
        return inked

    def _restore_boxes(self) -> None:
        """What every box had written in it before a restart, so revisions keep rising."""
        self._forget_old_strokes()
        for box in self.outbox.answered_boxes():
            memory = BoxMemory(box.revision, decode_many(box.strokes), box.written_at)
            self._answers.restore((box.pen_id, box.address, box.question_id), memory)

    def _forget_old_strokes(self) -> None:
        before = time.time() - self.revisit_s
        self._answers.forget_strokes(before)
        try:
            self.outbox.forget_box_strokes(before)
        except sqlite3.Error as exc:  # a full disk, say: the next round tries again
            self._storage_failed("old strokes of answered boxes not forgotten", exc)

    def replay_journal(self, now: float | None = None) -> int:
        """At start-up: the strokes a previous run journaled but never settled, held until their
        pen has delivered its offline memory, then used in writing order (restart_order.py)."""
        now = time.monotonic() if now is None else now
        rows = self.outbox.journaled()
        for journal_id, blob in rows:  # held until each pen's memory is drained (restart_order)
            self._order.hold(stroke_journal.decode(journal_id, blob), now)
        self.stats.replayed += len(rows)
        if rows:
            log.info(
                "replayed %d journaled strokes; each pen's are used once its memory is drained",
                len(rows),
            )
        return len(rows)

    def _journal_and_feed(self, strokes: list[Stroke], now: float) -> None:
        if not strokes:
            return
        try:
            ids = self.outbox.journal(
                [(s.pen_id, s.key, stroke_journal.encode(s)) for s in strokes]
            )
        except sqlite3.Error as exc:
            # Still scored and kept in memory; only a crash before the disk has room loses them.
            self._storage_failed(f"{len(strokes)} strokes not journaled", exc)
            ids = [None] * len(strokes)
        for stroke, journal_id in zip(strokes, ids, strict=True):
            stroke.journal_id = journal_id
            self._on_stroke(stroke, now)

    def _storage_failed(self, what: str, exc: sqlite3.Error) -> None:
        self.stats.storage_errors += 1
        if self._storage_alarm.due():
            log.error(
                "GATEWAY STORAGE FAILING (%s): %s; %d failures so far, %d answers waiting in "
                "memory. Free space on the outbox's disk; nothing already stored is lost.",
                exc,
                what,
                self.stats.storage_errors,
                len(self._unstored),
            )

    def take_durable_batches(self) -> list[tuple[str, int]]:
        """(link, batch id) of offline batches now settled in the outbox, each reported once."""
        durable, self._durable = self._durable, []
        return durable

    def reconfigure(self, templates: TemplateIndex, roster: dict[str, str]) -> None:
        """A new configuration synced from central (gateway/sync.py), used from the next stroke."""
        self.templates = templates
        self.roster = roster
        self._students, self._teachers = split_roster(roster)

    def _on_offline_batch(self, link: str, pen_id: str, batch: OfflineBatch, now: float) -> None:
        # A stroke settled before (fetched again because the pen was not told to delete it in
        # time) is not used twice.
        done = self.outbox.settled(pen_id, (s.key for s in batch.strokes))
        fresh = [s for s in batch.strokes if s.key not in done]
        # A pen offers its last streamed strokes again when its link was lost (pen-wire.md §3.7):
        # those already journaled are in open answers, and settle with them.
        journaled = self.outbox.journaled_keys(pen_id, (s.key for s in fresh))
        # Fetched before on a link that dropped before they settled: already in an open answer
        # (or held, gateway/restart_order.py). They settle for this batch now, and are used once.
        in_use = {s.key for s in fresh if (pen_id, s.key) in self._unsettled}
        ident = (link, batch.batch_id)
        self._batch_left[ident] = len(fresh)
        for s in fresh:
            self._unsettled[(pen_id, s.key)] = ident
        if not fresh:
            self._batch_complete(ident)
        log.info(
            "pen %s: %d offline strokes of note %s (%d fetched before)",
            pen_id,
            len(fresh),
            batch.note,
            len(batch.strokes) - len(fresh),
        )
        for s in fresh:
            if s.key in journaled or s.key in in_use:
                continue
            stroke = _offline_stroke(pen_id, s)
            if s.dots:
                self._on_stroke(stroke, now)
            else:
                self._drop([stroke])  # a stroke without a dot has nowhere to go

    def _settled(self, strokes: list[Stroke]) -> None:
        for s in strokes:
            ident = self._unsettled.pop((s.pen_id, s.key), None)
            if ident is not None:
                self._batch_left[ident] -= 1
                if self._batch_left[ident] == 0:
                    self._batch_complete(ident)

    def _batch_complete(self, ident: tuple[str, int]) -> None:
        del self._batch_left[ident]
        self._durable.append(ident)

    def _drop(self, strokes: list[Stroke]) -> None:
        """Dropping is final too: a dropped stroke is settled (and may be deleted from the pen)."""
        journaled = [s.journal_id for s in strokes if s.journal_id is not None]
        try:
            self.outbox.unjournal(journaled, [(s.pen_id, s.key) for s in strokes])
        except sqlite3.Error as exc:
            # Left in the journal, it is dropped again after a restart.
            self._storage_failed(f"{len(strokes)} dropped strokes not settled", exc)
            return
        for s in strokes:
            s.journal_id = None
        self._settled(strokes)

    def tick(self, now: float | None = None) -> None:
        """Finalise answers whose box has been left alone for the idle time, and store those
        finalised since the last tick."""
        now = time.monotonic() if now is None else now
        for pen_id in self._order.overdue(now):
            self._release(pen_id, now)
        for answer in self._answers.due(now):
            self._emit(answer)
        if now >= self._forget_at:
            self._forget_at = now + FORGET_EVERY_S
            self._forget_old_strokes()
        if self._fresh or (self._unstored and now >= self._retry_at):
            if not self._fresh:  # only retries after a storage failure wait their turn
                self._retry_at = now + 1.0
            self._store_waiting()

    def flush(self) -> None:
        for pen_id in self._order.pens():
            self._release(pen_id, time.monotonic())
        for answer in self._answers.flush():
            self._emit(answer)
        self._store_waiting()

    def _release(self, pen_id: str, now: float) -> None:
        for stroke in self._order.release(pen_id):
            self._place(stroke, now)

    def _on_stroke(self, stroke: Stroke, now: float) -> None:
        if self._order.holding(stroke.pen_id):
            self._order.hold(stroke, now)
        else:
            self._place(stroke, now)

    def _place(self, stroke: Stroke, now: float) -> None:
        """The stroke into its answer box (or dropped, with the reason counted)."""
        self.stats.strokes += 1
        found = self.templates.page(stroke.address)
        if found is None:
            self.rejects.record(
                "unknown_page",
                f"pen {stroke.pen_id} wrote on page {stroke.address}, "
                "which no loaded template knows",
            )
            self._drop([stroke])
            return
        template, page = found.template, found.page
        teacher = stroke.pen_id in self._teachers
        xy = stroke.points[:, :2]
        region = page.locate_mark(xy) if teacher else page.locate_ink(xy)
        if region is None:
            self.rejects.record(
                "outside_regions",
                f"pen {stroke.pen_id} wrote outside every answer box on {stroke.address}",
            )
            self._drop([stroke])
            return
        if region.kind == "score" and not teacher:
            self.rejects.record(
                "score_box_by_student",
                f"pen {stroke.pen_id} (not a teacher's) wrote in score box {region.question_id}",
            )
            self._drop([stroke])
            return
        for answer in self._answers.add(stroke, template, region, now, found.student_id):
            self._emit(answer)

    def _emit(self, answer: Answer) -> None:
        strokes = [s.points[:, :2] for s in answer.strokes]
        region = answer.region
        marker_id = self._teachers.get(answer.pen_id)
        try:
            if marker_id is not None:
                mark = read_mark(
                    self.recognizer,
                    answer.template,
                    region,
                    strokes,
                    answer.student_id is not None,
                    self.review_below,
                )
                if mark is None:
                    self.rejects.record(
                        "blank_mark", f"{answer.pen_id} {region.question_id}: a touch, no mark"
                    )
                    self._drop(answer.strokes)
                    return
                kind, question, reading, scored, box = (
                    mark.kind,
                    mark.question,
                    mark.reading,
                    mark.score,
                    mark.box_mm,
                )
                student_id = answer.student_id
            else:
                reading = read_region(self.recognizer, region, strokes)
                scored = score(region, reading, self.review_below)
                kind, question, box = region.kind, region, region.box_mm
                student_id = self._student_of(answer, reading.label, scored)
        except ValueError as exc:
            self.rejects.record("unrecognisable", f"{answer.pen_id} {region.question_id}: {exc}")
            self._drop(answer.strokes)
            return
        self.stats.answers += 1
        self.stats.reviews += scored.status == "review"

        def build(seq: int, event_id: str) -> dict:
            return {
                "schema": "classink.answer.v1",
                "event_id": event_id,
                "site_id": self.site_id,
                "gateway_id": self.gateway_id,
                "seq": seq,
                "created_at": datetime.now(UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "exam_id": answer.template.template_id,
                "page_address": answer.address,
                "pen_id": answer.pen_id,
                "student_id": student_id,
                "question_id": question.question_id,
                "kind": kind,
                "revision": answer.revision,
                "label": reading.label,
                "confidence": round(float(reading.confidence), 4),
                "status": scored.status,
                "correct": scored.correct,
                "points_awarded": scored.points_awarded,
                "points_possible": question.points or 0.0,
                "box_mm": list(box),
                "strokes": [_stroke_json(s) for s in answer.strokes],
                # Optional fields (mqtt.md): present only when they say something.
                **({"marker_id": marker_id} if marker_id is not None else {}),
                **({"review_reason": scored.review_reason} if scored.review_reason else {}),
            }

        self._store(answer, build)

    def _store(self, answer: Answer, build: Callable[[int, str], dict]) -> None:
        self._unstored.append((answer, build, time.time()))
        self._fresh = True

    def _store_waiting(self) -> None:
        """Append answers in the order they were finalised, each with its strokes settled and
        dropped from the journal in the same transaction: all waiting answers in one transaction,
        else (a full disk, say) one by one. One that cannot be stored holds back those after it,
        so that seq keeps each pen's order; tick() tries again."""
        self._fresh = False
        if not self._unstored:
            return
        try:
            self._append(len(self._unstored))
        except sqlite3.Error:
            while self._unstored:
                try:
                    self._append(1)
                except sqlite3.Error as exc:
                    answer = self._unstored[0][0]
                    self._storage_failed(f"answer {answer.pen_id} {answer.region.question_id}", exc)
                    return

    def _append(self, count: int) -> None:
        """The first `count` waiting answers into the outbox, in one transaction."""
        waiting = self._unstored[:count]
        rows = self.outbox.append_many(
            [
                Pending(
                    self._topic,
                    build,
                    [(s.pen_id, s.key) for s in answer.strokes],
                    [s.journal_id for s in answer.strokes if s.journal_id is not None],
                    AnsweredBox(
                        *answer.box, answer.revision, answer.written_at, encode_many(answer.strokes)
                    ),
                )
                for answer, build, _ in waiting
            ]
        )
        del self._unstored[:count]
        committed = time.time()
        for (answer, _, final), row in zip(waiting, rows, strict=True):
            for s in answer.strokes:
                s.journal_id = None
            self._settled(answer.strokes)
            if self.trace is not None:
                self.trace.stored(row.event_id, final, committed)

    def _student_of(self, answer: Answer, label: str, scored: Score) -> str | None:
        """Whose answer: the booklet's student, else the pen's on the roster, else the id this
        pen wrote in a student_id box of this page (remembered once read with confidence)."""
        key = (answer.pen_id, answer.address)
        if answer.region.kind == "student_id" and scored.status == "scored":
            if self._written_ids.get(key) != label:
                try:
                    self.outbox.remember_written_id(*key, label)
                except sqlite3.Error as exc:
                    self._storage_failed(f"student id {label} written with {key[0]}", exc)
            self._written_ids[key] = label
        return answer.student_id or self._students.get(answer.pen_id) or self._written_ids.get(key)


def _stroke_json(s: Stroke) -> dict:
    # Formatted in C and embedded as is: a classroom's strokes are thousands of points a second.
    points = np.ascontiguousarray(s.points, dtype=np.float64)
    out: dict = {"t0_ms": s.t0_ms, "points": orjson.Fragment(points_json(points))}
    if s.offline_key:
        out["offline"] = True
    return out


def _offline_stroke(pen_id: str, s: OfflineStroke) -> Stroke:
    points = np.array(
        [(d.x * PEN_UNIT_MM, d.y * PEN_UNIT_MM, d.dt_ms, d.force) for d in s.dots], dtype=np.float64
    )
    return Stroke(pen_id, s.address, s.start_ms, points.reshape(-1, 4), offline_key=s.key)
