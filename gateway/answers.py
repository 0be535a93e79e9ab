"""Answer assembly: the strokes one pen writes in one answer box become one answer.

An answer is finalised when its pen moves to another box or page, or after an idle time with no new
ink from its pen: a stroke still being written keeps the box open, so that a slow second stroke (the
other bar of a cross, written while the gateway is busy) is not split off into a revision.
Writing in the box again later re-opens it: the next answer for that box carries every stroke
written there and a higher revision, so a correction replaces the earlier reading.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.strokes import Stroke
from gateway.templates import ExamTemplate, Region


@dataclass
class Answer:
    pen_id: str
    template: ExamTemplate
    address: str
    region: Region
    revision: int
    strokes: list[Stroke]
    student_id: str | None  # from a personal booklet; None means: ask the pen roster


@dataclass
class _Open:
    template: ExamTemplate
    address: str
    region: Region
    strokes: list[Stroke]
    last_ink_at: float
    student_id: str | None


@dataclass
class AnswerAssembler:
    idle_s: float = 2.5
    _open: dict[str, _Open] = field(default_factory=dict)  # pen -> the box it is writing in
    _written: dict[tuple[str, str, str], list[Stroke]] = field(default_factory=dict)
    _revision: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def add(
        self,
        stroke: Stroke,
        template: ExamTemplate,
        region: Region,
        now: float,
        student_id: str | None = None,
    ) -> list[Answer]:
        done: list[Answer] = []
        current = self._open.get(stroke.pen_id)
        if current is not None and (
            current.region.question_id != region.question_id or current.address != stroke.address
        ):
            done.append(self._finalise(stroke.pen_id))
            current = None
        if current is None:
            key = (stroke.pen_id, stroke.address, region.question_id)
            earlier = list(self._written.get(key, []))
            current = _Open(template, stroke.address, region, earlier, now, student_id)
            self._open[stroke.pen_id] = current
        current.strokes.append(stroke)
        current.last_ink_at = now
        return done

    def inked(self, pen_id: str, now: float) -> None:
        """The pen sent dots of a stroke not finished yet: its open answer is not idle."""
        current = self._open.get(pen_id)
        if current is not None:
            current.last_ink_at = now

    def due(self, now: float) -> list[Answer]:
        idle = [pen for pen, o in self._open.items() if now - o.last_ink_at >= self.idle_s]
        return [self._finalise(pen) for pen in idle]

    def flush(self) -> list[Answer]:
        return [self._finalise(pen) for pen in list(self._open)]

    @property
    def open_count(self) -> int:
        return len(self._open)

    def _finalise(self, pen_id: str) -> Answer:
        o = self._open.pop(pen_id)
        key = (pen_id, o.address, o.region.question_id)
        self._written[key] = list(o.strokes)
        self._revision[key] = self._revision.get(key, 0) + 1
        return Answer(
            pen_id,
            o.template,
            o.address,
            o.region,
            self._revision[key],
            list(o.strokes),
            o.student_id,
        )
