"""Answer assembly: the strokes one pen writes in one answer box become one answer.

An answer is finalised when its pen moves to another box or page, or after an idle time with no new
ink from its pen: a stroke still being written keeps the box open, so that a slow second stroke (the
other bar of a cross, written while the gateway is busy) is not split off into a revision.
Writing in the box again later re-opens it: the next answer for that box carries every stroke
written there and a higher revision, so a correction replaces the earlier reading.

What each box has had written in it (`BoxMemory`) is kept across restarts by the pipeline (in the
outbox database), so that revisions keep rising: central keeps the highest revision of an answer,
and a correction numbered 1 again after a restart would lose to the reading it corrects.
Earlier strokes are carried into a revision only while the box was last written within
`revisit_s` (default 3 hours, about a school morning): the same worksheet filled in again another
day is a new attempt, numbered on, not a correction of the old ink.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
    written_at: float = 0.0  # wall clock when it was finalised

    @property
    def box(self) -> BoxKey:
        return (self.pen_id, self.address, self.region.question_id)


BoxKey = tuple[str, str, str]  # pen, page address, question


@dataclass
class BoxMemory:
    """The latest answer finalised in one box: its revision, strokes and wall-clock time."""

    revision: int
    strokes: list[Stroke]
    written_at: float


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
    revisit_s: float = 3 * 3600.0
    clock: Callable[[], float] = time.time  # wall clock, for revisit_s across restarts
    _open: dict[str, _Open] = field(default_factory=dict)  # pen -> the box it is writing in
    _boxes: dict[BoxKey, BoxMemory] = field(default_factory=dict)

    def restore(self, box: BoxKey, memory: BoxMemory) -> None:
        """What a previous run finalised in a box (before any stroke of this run is added)."""
        self._boxes[box] = memory

    def forget_strokes(self, before: float) -> None:
        """Drop the strokes of boxes last written before `before` (wall clock); revisions stay."""
        for memory in self._boxes.values():
            if memory.written_at < before:
                memory.strokes = []

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
            memory = self._boxes.get((stroke.pen_id, stroke.address, region.question_id))
            earlier: list[Stroke] = []
            if memory is not None and self.clock() - memory.written_at <= self.revisit_s:
                earlier = list(memory.strokes)
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
        earlier = self._boxes.get(key)
        memory = BoxMemory(earlier.revision + 1 if earlier else 1, list(o.strokes), self.clock())
        self._boxes[key] = memory
        return Answer(
            pen_id,
            o.template,
            o.address,
            o.region,
            memory.revision,
            list(o.strokes),
            o.student_id,
            memory.written_at,
        )
