"""The gateway's pipeline: pen events → strokes → answer boxes → recognised, scored answer events.

Everything here runs on one thread, fed by the pen transport; its only output is the outbox.

Strokes fetched from a pen's offline memory (OfflineBatch) take the same path, marked offline. Each
is settled when the answer carrying it is appended to the outbox (in that transaction) or when the
pipeline drops it; a batch whose strokes are all settled is reported by `take_durable_batches`, and
only then may the pen be asked to delete them (pen-wire.md §3.7).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from firmware_bridge.events import Event, EventGap, OfflineStroke, PenInfo, Rejected
from firmware_bridge.session import LinkLost, OfflineBatch
from gateway.answers import Answer, AnswerAssembler
from gateway.lattice_frames import as_coordinate_events
from gateway.outbox import Outbox
from gateway.rejects import Rejects
from gateway.scoring.recognizer import Recognizer
from gateway.scoring.score import score
from gateway.strokes import PEN_UNIT_MM, Stroke, StrokeAssembler
from gateway.templates import TemplateIndex
from gateway.uplink import topic

log = logging.getLogger(__name__)


@dataclass
class PipelineStats:
    strokes: int = 0
    answers: int = 0
    reviews: int = 0


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
    rejects: Rejects = field(default_factory=Rejects)
    stats: PipelineStats = field(default_factory=PipelineStats)

    def __post_init__(self) -> None:
        self._answers = AnswerAssembler(idle_s=self.idle_s)
        self._pen_of_link: dict[str, str] = {}
        self._assemblers: dict[str, StrokeAssembler] = {}
        self._topic = topic(self.site_id, self.gateway_id, "answers")
        self._unsettled: dict[tuple[str, str], tuple[str, int]] = {}  # (pen, key) -> batch
        self._batch_left: dict[tuple[str, int], int] = {}  # (link, batch id) -> unsettled
        self._durable: list[tuple[str, int]] = []

    def on_pen_events(self, link: str, events: list[Event], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for event in as_coordinate_events(events):
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
                self._on_offline_batch(link, pen_id, event, now)
                continue
            stroke = self._assemblers[pen_id].feed(event)
            if stroke is not None:
                self._on_stroke(stroke, now)

    def take_durable_batches(self) -> list[tuple[str, int]]:
        """(link, batch id) of offline batches now settled in the outbox, each reported once."""
        durable, self._durable = self._durable, []
        return durable

    def _on_offline_batch(self, link: str, pen_id: str, batch: OfflineBatch, now: float) -> None:
        # A stroke settled before (fetched again because the pen was not told to delete it in
        # time) is not used twice.
        done = self.outbox.settled(pen_id, (s.key for s in batch.strokes))
        fresh = [s for s in batch.strokes if s.key not in done]
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
            stroke = _offline_stroke(pen_id, s)
            if s.dots:
                self._on_stroke(stroke, now)
            else:
                self._drop([stroke])  # a stroke without a dot has nowhere to go

    def _settled(self, strokes: list[Stroke]) -> None:
        for s in strokes:
            ident = self._unsettled.pop((s.pen_id, s.offline_key), None) if s.offline_key else None
            if ident is not None:
                self._batch_left[ident] -= 1
                if self._batch_left[ident] == 0:
                    self._batch_complete(ident)

    def _batch_complete(self, ident: tuple[str, int]) -> None:
        del self._batch_left[ident]
        self._durable.append(ident)

    def _drop(self, strokes: list[Stroke]) -> None:
        """Dropping is final too: a dropped offline stroke is settled (and may be deleted)."""
        ids = [(s.pen_id, s.offline_key) for s in strokes if s.offline_key]
        if ids:
            self.outbox.settle(ids)
            self._settled(strokes)

    def tick(self, now: float | None = None) -> None:
        """Finalise answers whose box has been left alone for the idle time."""
        now = time.monotonic() if now is None else now
        for answer in self._answers.due(now):
            self._emit(answer)

    def flush(self) -> None:
        for answer in self._answers.flush():
            self._emit(answer)

    def _on_stroke(self, stroke: Stroke, now: float) -> None:
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
        region = page.locate_ink(stroke.points[:, :2])
        if region is None:
            self.rejects.record(
                "outside_regions",
                f"pen {stroke.pen_id} wrote outside every answer box on {stroke.address}",
            )
            self._drop([stroke])
            return
        for answer in self._answers.add(stroke, template, region, now, found.student_id):
            self._emit(answer)

    def _emit(self, answer: Answer) -> None:
        try:
            prediction = self.recognizer.predict(
                answer.region.kind, [s.points[:, :2] for s in answer.strokes]
            )
        except ValueError as exc:
            self.rejects.record(
                "unrecognisable", f"{answer.pen_id} {answer.region.question_id}: {exc}"
            )
            self._drop(answer.strokes)
            return
        scored = score(answer.region, prediction.label, prediction.confidence, self.review_below)
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
                "student_id": answer.student_id or self.roster.get(answer.pen_id),
                "question_id": answer.region.question_id,
                "kind": answer.region.kind,
                "revision": answer.revision,
                "label": prediction.label,
                "confidence": round(float(prediction.confidence), 4),
                "status": scored.status,
                "correct": scored.correct,
                "points_awarded": scored.points_awarded,
                "points_possible": answer.region.points,
                "box_mm": list(answer.region.box_mm),
                "strokes": [_stroke_json(s) for s in answer.strokes],
            }

        settles = [(s.pen_id, s.offline_key) for s in answer.strokes if s.offline_key]
        self.outbox.append(self._topic, build, settles)
        self._settled(answer.strokes)


def _stroke_json(s: Stroke) -> dict:
    out: dict = {
        "t0_ms": s.t0_ms,
        "points": [
            [round(x, 2), round(y, 2), int(dt), int(f)] for x, y, dt, f in s.points.tolist()
        ],
    }
    if s.offline_key:
        out["offline"] = True
    return out


def _offline_stroke(pen_id: str, s: OfflineStroke) -> Stroke:
    points = np.array(
        [(d.x * PEN_UNIT_MM, d.y * PEN_UNIT_MM, d.dt_ms, d.force) for d in s.dots], dtype=np.float64
    )
    return Stroke(pen_id, s.address, s.start_ms, points.reshape(-1, 4), offline_key=s.key)
