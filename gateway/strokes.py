"""Stroke assembly: one pen's Dot events between PenDown and PenUp become a stroke on a page."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_bridge.events import Dot, PaperInfo, PenDown, PenUp

PEN_UNIT_MM = 56 / 600 * 25.4  # pen-wire.md §3.2: positions come in Ncode units of 56/600 inch


@dataclass
class Stroke:
    pen_id: str
    address: str
    t0_ms: int
    points: np.ndarray  # (k, 4): x_mm, y_mm, dt_ms, force
    offline_key: str | None = None  # set for a stroke fetched from the pen's offline memory
    end_ms: int | None = None  # the pen's PenUp time (for a lattice stroke split at a page edge,
    # where the part ends)
    journal_id: int | None = None  # its row in the outbox database's stroke journal, until settled

    @property
    def key(self) -> str:
        """Identifies the stroke whichever way it came: the same as the pen's OfflineStroke.key,
        so a stroke the pen offers again after a lost link is recognised (pen-wire.md §3.7)."""
        if self.offline_key is not None:
            return self.offline_key
        end = self.end_ms if self.end_ms is not None else self.t0_ms + int(self.points[:, 2].sum())
        return f"{self.address}/{self.t0_ms}/{end}/{len(self.points)}"

    @property
    def centroid(self) -> tuple[float, float]:
        c = self.points[:, :2].mean(axis=0)
        return float(c[0]), float(c[1])


@dataclass
class StrokeAssembler:
    """Per-pen state; the protocol core already guarantees PenDown, PaperInfo, Dot…, PenUp order."""

    pen_id: str
    _address: str | None = None
    _t0_ms: int = 0
    _dots: list[float] = field(default_factory=list)  # x_mm, y_mm, dt_ms, force, flat

    def dot(self, event: Dot) -> None:
        # Flat: numpy builds an array from one list of floats far faster than from tuples.
        self._dots += (event.x * PEN_UNIT_MM, event.y * PEN_UNIT_MM, event.dt_ms, event.force)

    def feed(self, event: object) -> Stroke | None:
        if type(event) is Dot:  # the hot path first: thousands a second
            self.dot(event)
        elif isinstance(event, PenDown):
            self._dots, self._t0_ms, self._address = [], event.timestamp_ms, None
        elif isinstance(event, PaperInfo):
            # Only a lattice pen's decoded frames can cross onto another page inside a stroke
            # (the protocol core splits coordinate pens' strokes itself): split here the same way.
            moved = self._address is not None and event.address != self._address
            done = self._close() if self._dots and moved else None
            self._address = event.address
            return done
        elif isinstance(event, PenUp) and self._dots and self._address is not None:
            return self._close(event.timestamp_ms)
        return None

    def _close(self, end_ms: int | None = None) -> Stroke:
        points = np.array(self._dots, dtype=np.float64).reshape(-1, 4)
        stroke = Stroke(self.pen_id, self._address, self._t0_ms, points, end_ms=end_ms)
        self._t0_ms += int(points[:, 2].sum())
        self._dots = []
        return stroke
