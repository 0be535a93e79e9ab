"""The gateway's pipeline: pen events → strokes → answer boxes → recognised, scored answer events.

Everything here runs on one thread, fed by the pen transport; its only output is the outbox.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from firmware_bridge.events import Event, EventGap, PenInfo, Rejected
from gateway.answers import Answer, AnswerAssembler
from gateway.outbox import Outbox
from gateway.rejects import Rejects
from gateway.scoring.recognizer import Recognizer
from gateway.scoring.score import score
from gateway.strokes import Stroke, StrokeAssembler
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

    def on_pen_events(self, link: str, events: list[Event], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for event in events:
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
            pen_id = self._pen_of_link.get(link)
            if pen_id is None:
                self.rejects.record(
                    "before_handshake",
                    f"{link}: {type(event).__name__} before the pen said who it is",
                )
                continue
            stroke = self._assemblers[pen_id].feed(event)
            if stroke is not None:
                self._on_stroke(stroke, now)

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
            return
        template, page = found
        region = page.locate(*stroke.centroid)
        if region is None:
            self.rejects.record(
                "outside_regions",
                f"pen {stroke.pen_id} wrote outside every answer box on {stroke.address}",
            )
            return
        for answer in self._answers.add(stroke, template, region, now):
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
                "student_id": self.roster.get(answer.pen_id),
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
                "strokes": [
                    {
                        "t0_ms": s.t0_ms,
                        "points": [
                            [round(x, 2), round(y, 2), int(dt), int(f)]
                            for x, y, dt, f in s.points.tolist()
                        ],
                    }
                    for s in answer.strokes
                ],
            }

        self.outbox.append(self._topic, build)
