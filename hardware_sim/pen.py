"""A simulated pen behind a pseudo-terminal, as close to the wire as a pen on a USB dongle.

The gateway opens the pty's device path with pyserial exactly as it would open /dev/ttyACM0. The
pen stays silent until the gateway's version request (as Neo pens do), answers it, and then writes
the student's answers in real time: PenDown, PaperInfo, Dots at ~120 per second, PenUp.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
import time
import tty
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from classink.lattice_pages import PageAddress
from hardware_sim import pen_wire
from hardware_sim.firmware import PenFirmware
from hardware_sim.handwriting import Sample

PEN_UNIT_MM = 56 / 600 * 25.4  # one Ncode pen unit (pen-wire.md §3.2)
DOT_RATE_HZ = 120.0
UNTIMED_SPEED_MM_S = 40.0  # typical children's writing speed, for sources without timestamps
STROKE_GAP_S = 0.2


@dataclass
class ScriptedStroke:
    """One stroke ready to send: pen-unit positions and per-dot Δt in ms."""

    page: PageAddress
    start_s: float
    xy_units: np.ndarray  # (k, 2)
    dt_ms: np.ndarray  # (k,)
    force: np.ndarray  # (k,)


def place_in_box(
    sample: Sample, box_mm: tuple[float, float, float, float], rng: random.Random
) -> list[np.ndarray]:
    """Scale and move a sample's strokes into an answer box, keeping its aspect ratio."""
    x, y, w, h = box_mm
    points = np.concatenate([s[:, :2] for s in sample.strokes])
    lo, hi = points.min(axis=0), points.max(axis=0)
    size = np.maximum(hi - lo, 1e-9)
    fill = rng.uniform(0.55, 0.75)  # children rarely fill the whole box
    scale = min(w * fill / size[0], h * fill / size[1])
    used = size * scale
    ox = x + rng.uniform(0.1, 0.9) * (w - used[0])
    oy = y + rng.uniform(0.1, 0.9) * (h - used[1])
    placed = []
    for s in sample.strokes:
        p = s.copy()
        p[:, 0] = ox + (s[:, 0] - lo[0]) * scale
        p[:, 1] = oy + (s[:, 1] - lo[1]) * scale
        placed.append(p)
    return placed


def resample_in_time(stroke_mm: np.ndarray, timed: bool) -> tuple[np.ndarray, float]:
    """Positions at DOT_RATE_HZ along the stroke, and the stroke's duration in seconds."""
    xy = stroke_mm[:, :2]
    if timed:
        t = (stroke_mm[:, 2] - stroke_mm[0, 2]) / 1000.0
        t = np.maximum.accumulate(t)
    else:
        seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        t = np.concatenate([[0.0], np.cumsum(seg)]) / UNTIMED_SPEED_MM_S
    duration = float(t[-1])
    if duration <= 0 or len(xy) == 1:
        return xy[:1].copy(), 0.0
    times = np.arange(0.0, duration + 1e-9, 1.0 / DOT_RATE_HZ)
    # Timestamps may repeat in the logs; np.interp needs them strictly increasing.
    keep = np.concatenate([[True], np.diff(t) > 0])
    out = np.column_stack(
        [np.interp(times, t[keep], xy[keep, 0]), np.interp(times, t[keep], xy[keep, 1])]
    )
    return out, duration


def script_answer(
    sample: Sample,
    box_mm: tuple[float, float, float, float],
    page: PageAddress,
    start_s: float,
    rng: random.Random,
) -> tuple[list[ScriptedStroke], float]:
    """The strokes for one answer starting at start_s; returns them and the time writing ends."""
    strokes = []
    placed = place_in_box(sample, box_mm, rng)
    now = start_s
    for i, s in enumerate(placed):
        if i:
            if sample.has_time:
                gap = (sample.strokes[i][0, 2] - sample.strokes[i - 1][-1, 2]) / 1000.0
                now += float(np.clip(gap, 0.05, 1.5))
            else:
                now += STROKE_GAP_S
        xy, duration = resample_in_time(s, sample.has_time)
        dt = np.full(len(xy), round(1000 / DOT_RATE_HZ), dtype=np.int64)
        dt[0] = 0
        force = np.clip(rng.gauss(450, 60) + 80 * np.sin(np.linspace(0, np.pi, len(xy))), 50, 1023)
        strokes.append(ScriptedStroke(page, now, xy / PEN_UNIT_MM, dt, force.astype(np.int64)))
        now += duration
    return strokes, now


class Camera(Protocol):
    """What a lattice-camera pen sees under its nib, as a LatticeFrame."""

    def frame(self, counter: int, dt_ms: int, force: int, page: PageAddress, xy_mm) -> bytes: ...


@dataclass
class SimPen:
    """One pen on its own pseudo-terminal."""

    mac: bytes
    strokes: list[ScriptedStroke] = field(default_factory=list)
    time_scale: float = 1.0  # >1 writes faster than real time (tests); wire timing is unchanged
    noise_rate: float = 0.0  # share of events preceded by line noise or a corrupt frame
    seed: int = 0
    camera: Camera | None = None  # set for a lattice-camera pen (pen-wire.md §3.3)
    password: str | None = None
    # (start, end) in script seconds: out of the gateway's range, the pen stores what is written.
    # Leaving range takes effect at the next PenDown, so a window never cuts a stroke.
    offline_windows: list[tuple[float, float]] = field(default_factory=list)
    chunk_corrupt_rate: float = 0.0  # share of offline chunks damaged on the way out

    def __post_init__(self) -> None:
        self._open_link()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.done = threading.Event()
        self.connected = threading.Event()
        self.noise_frames_sent = 0
        self.strokes_stored = 0  # written out of range or before streaming was asked for
        self.firmware = PenFirmware(self.mac, self.password, self.chunk_corrupt_rate, self.seed)
        self._rng = random.Random(self.seed)
        self._t0 = 0.0
        self._away_until: float | None = None  # script time the pen comes back into range

    @property
    def pen_id(self) -> str:
        return ":".join(f"{b:02x}" for b in self.mac)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"pen-{self.pen_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_link()

    # -- the link: a pseudo-terminal here; hardware_sim/ble_pen.py puts a radio in its place ------

    def _open_link(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # bytes must pass untouched: no echo, no CR/LF translation
        self.device = os.ttyname(self._slave)

    def _close_link(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read(self, timeout: float) -> bytes | None:
        """What the gateway sent within `timeout` (b"" if nothing), or None if the link failed."""
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self._master, 4096)
        except OSError:
            return None

    def _left_range(self) -> None:
        """Out of range: a serial dongle's port stays open, the pen just falls silent."""

    def _came_back(self) -> None:
        """Back in range: the pen waits for the gateway's handshake, as after any connection."""

    # -- the pen's life -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set() and not self.connected.is_set():
            self._serve_requests(timeout=0.2)
        if self._stop.is_set():
            return
        t0 = self._t0 = time.monotonic()
        wall0_ms = int(time.time() * 1000)
        for stroke in self.strokes:
            if not self._sleep_until(t0 + stroke.start_s / self.time_scale):
                return
            self._leave_range_if_due(stroke.start_s)
            self._send_stroke(stroke, wall0_ms + int(stroke.start_s * 1000))
        self.done.set()
        while not self._stop.is_set():
            self._serve_requests(timeout=0.2)

    def _serve_requests(self, timeout: float) -> None:
        data = self._read(timeout)
        if data is None:
            return
        self._come_back_if_due()
        if self._away_until is not None:
            return  # out of range: the gateway's requests never reach the pen
        now = time.monotonic()
        if data:
            self._write(self.firmware.on_data(data, now, int(time.time() * 1000)))
        self._write(self.firmware.tick(now))
        if self.firmware.handshaken:
            self.connected.set()

    def _leave_range_if_due(self, script_s: float) -> None:
        for start, end in self.offline_windows:
            if start <= script_s < end and self._away_until is None:
                assert self.camera is None, "a lattice-camera pen cannot decode strokes to store"
                self._away_until = end
                self.firmware.link_lost()
                self._left_range()

    def _come_back_if_due(self) -> None:
        if self._away_until is None or not self._t0:
            return
        if (time.monotonic() - self._t0) * self.time_scale >= self._away_until:
            self._away_until = None
            self._came_back()

    def _sleep_until(self, deadline: float) -> bool:
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            self._serve_requests(timeout=min(remaining, 0.2))
        return False

    def _next(self) -> int:
        return self.firmware.next_counter()

    def _live(self) -> bool:
        return self._away_until is None and self.firmware.online

    def _send_stroke(self, stroke: ScriptedStroke, wall_ms: int) -> None:
        """Stream the stroke, or store it when no gateway asked for streaming. A stroke under way
        when streaming starts is sent from its PenDown (pen-wire.md §3.5), so that every stroke
        stored offline is older than every stroke streamed."""
        time_ms = self.firmware.clock_ms(wall_ms)
        live = self._live()
        if live:
            self._begin(stroke, time_ms)
        start = time.monotonic()
        for i in range(len(stroke.xy_units)):
            if not live and self._live():
                live = True
                self._begin(stroke, time_ms)
                for j in range(i):
                    self._event(self._sample(stroke, j))
            if live:
                self._event(self._sample(stroke, i))
            self._sleep_until(start + (i + 1) / DOT_RATE_HZ / self.time_scale)
        end_ms = time_ms + int(stroke.dt_ms.sum())
        if live:
            self._event(pen_wire.pen_up(self._next(), end_ms, len(stroke.xy_units)))
            return
        self.strokes_stored += 1
        p = stroke.page
        self.firmware.store((p.section, p.owner, p.note), _stored(stroke, time_ms, end_ms))

    def _begin(self, stroke: ScriptedStroke, time_ms: int) -> None:
        p = stroke.page
        self._event(pen_wire.pen_down(self._next(), time_ms))
        if self.camera is None:  # a lattice-camera pen sends no PaperInfo: the page is in the dots
            self._event(pen_wire.paper_info(self._next(), p.section, p.owner, p.note, p.page))

    def _sample(self, stroke: ScriptedStroke, i: int) -> bytes:
        dt, force = int(stroke.dt_ms[i]), int(stroke.force[i])
        if self.camera is not None:
            xy_mm = stroke.xy_units[i] * PEN_UNIT_MM
            return self.camera.frame(self._next(), dt, force, stroke.page, xy_mm)
        x, y = stroke.xy_units[i]
        return pen_wire.dot(self._next(), dt, force, x, y)

    def _event(self, frame: bytes) -> None:
        if self.noise_rate and self._rng.random() < self.noise_rate:
            self._write(self._noise())
            self.noise_frames_sent += 1
        self._write(frame)

    def _noise(self) -> bytes:
        """Line noise or a damaged frame; never a byte that could merge with the next good frame."""
        kind = self._rng.randrange(3)
        if kind == 0:  # stray bytes between frames
            return bytes(
                self._rng.choice([b for b in range(256) if b != pen_wire.FRAME_START])
                for _ in range(5)
            )
        if kind == 1:  # a frame whose length field lies
            return bytes((0xC0, pen_wire.DOT, 0x20, 0x00, 1, 2, 3, 0xC1))
        return bytes((0xC0, pen_wire.DOT, 0x7D, 0x11, 0xC1))  # an illegal escape

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._stop.is_set():
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            except OSError:
                return
            view = view[n:]


def _stored(stroke: ScriptedStroke, start_ms: int, end_ms: int) -> pen_wire.StoredStroke:
    dots = tuple(
        pen_wire.OfflineDot(int(dt), int(f), float(x), float(y))
        for (x, y), dt, f in zip(stroke.xy_units, stroke.dt_ms, stroke.force, strict=True)
    )
    return pen_wire.StoredStroke(stroke.page.page, start_ms, end_ms, dots)
