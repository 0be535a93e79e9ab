"""Writing order for a pen's strokes after a gateway restart.

After a restart, a pen's strokes can reach the pipeline out of the order they were written: the
strokes the last run journaled are replayed at start-up, before the pen reconnects, and the pen's
offline memory may then deliver a stroke written *before* them (one under way as the last run
died, which that run's connection never fetched). Fed as they come, such a stroke in another box
would close the replayed answer early, and the answer's next stroke would become a needless
revision 2.

So a pen's replayed strokes are held, with what its offline memory delivers, until the pen says
its memory is drained (`MemoryDrained`, pen-wire.md §3.7), then handed on sorted by pen time. A pen
that does not come back within `hold_s` has its strokes handed on anyway: they were journaled, and
an answer waiting for a pen that is gone helps nobody.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.strokes import Stroke

HOLD_S = 10.0


@dataclass
class RestartOrder:
    hold_s: float = HOLD_S
    _held: dict[str, list[Stroke]] = field(default_factory=dict)  # pen -> strokes held
    _until: dict[str, float] = field(default_factory=dict)  # pen -> hand on by then

    def hold(self, stroke: Stroke, now: float) -> None:
        self._held.setdefault(stroke.pen_id, []).append(stroke)
        self._until.setdefault(stroke.pen_id, now + self.hold_s)

    def holding(self, pen_id: str) -> bool:
        return pen_id in self._held

    def release(self, pen_id: str) -> list[Stroke]:
        """The pen's held strokes in writing order (stable: equal times keep arrival order)."""
        self._until.pop(pen_id, None)
        return sorted(self._held.pop(pen_id, []), key=lambda s: s.t0_ms)

    def overdue(self, now: float) -> list[str]:
        return [pen for pen, until in self._until.items() if now >= until]

    def pens(self) -> list[str]:
        return list(self._held)
