"""A simulated pen behind a pseudo-terminal, as close to the wire as a pen on a USB dongle.

The gateway opens the pty's device path with pyserial exactly as it would open /dev/ttyACM0. The
pen stays silent until the gateway's version request (as Neo pens do), answers it, and then writes
the student's answers in real time: PenDown, PaperInfo, Dots at ~120 per second, PenUp.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import select
import struct
import termios
import threading
import time
import tty
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from classink.lattice_pages import PageAddress
from hardware_sim import pen_wire
from hardware_sim.firmware import PenFirmware
from hardware_sim.handwriting import Sample
from hardware_sim.link_faults import LinkFaults, Sent

PEN_UNIT_MM = 56 / 600 * 25.4  # one Ncode pen unit (pen-wire.md §3.2)
DOT_RATE_HZ = 120.0
UNTIMED_SPEED_MM_S = 40.0  # typical children's writing speed, for sources without timestamps
STROKE_GAP_S = 0.2
HOVERS = 3  # hover events before each PenDown, when hover is on
BATTERY_ALARMS = (15, 10, 5)  # percent left at which the pen sends Battery
BATTERY_S_PER_PERCENT = 0.4  # script seconds of writing per percent, near the end
POWER_OFF_BATTERY = 1  # PowerOff reason: battery empty (pen-wire.md §3.4)
# Link supervision (pen-wire.md §3.7): what the pen sends and nobody reads for this long means no
# gateway listens; and a streamed stroke is kept this long after the gateway read it, in case the
# gateway died before its journal had it.
SUPERVISION_S = 5.0
KEEP_S = 10.0
LDISC_FULL = 4000  # bytes: a tty's line discipline holds 4 KiB; beyond it the count says nothing


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
class WrittenStroke:
    """The simulator's own record of one stroke: every dot the pen decoded, and for a stroke sent
    in real time what the link did with each of its frames (None for a stroke stored offline)."""

    page: str
    offline: bool
    dots: list[tuple[float, float]] = field(default_factory=list)  # pen units
    sent: list[Sent] = field(default_factory=list)  # per dot, when sent in real time
    pen_down: Sent | None = None
    paper: Sent | None = None
    cut: str = ""  # why the stroke ended early: "link" or "power"
    up_wall: float | None = None  # time.time() when its PenUp went out (streamed strokes)
    down_wall: float | None = None  # time.time() when its PenDown went out (streamed strokes)

    @property
    def delivered(self) -> list[tuple[float, float]]:
        """The dots that reached the gateway (all of them for an offline stroke)."""
        if self.offline:
            return list(self.dots)
        return [d for d, s in zip(self.dots, self.sent, strict=True) if s.delivered]


@dataclass
class _Kept:
    """A streamed stroke the pen still holds, to offer again if the gateway turns out dead."""

    note: tuple[int, int, int]
    stored: pen_wire.StoredStroke
    up_at: float  # monotonic time its PenUp went out


@dataclass
class SimPen:
    """One pen on its own pseudo-terminal."""

    supervises_link = True  # a pty pen watches whether the gateway reads; a BLE radio knows

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
    faults: LinkFaults = field(default_factory=LinkFaults)  # on the pen's real-time frames
    cut_rate: float = 0.0  # share of strokes in the middle of which the link drops
    unplugged_s: float = 1.0  # how long a serial pen's cable stays out after a cut
    link_dir: Path | None = None  # a serial pen's stable device name lives here (it can replug)
    error_dot_rate: float = 0.0  # share of camera frames the pen cannot decode (ErrorDot)
    hover: bool = False  # hover events switched on: a few between strokes
    battery_empty_at: float | None = None  # script seconds: the pen dies, mid-stroke if writing

    def __post_init__(self) -> None:
        self._open_link()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.done = threading.Event()
        self.connected = threading.Event()
        # Noise bursts and damaged frames, with the reason code the gateway must give each.
        self._faults_sent: list[tuple[str, Sent]] = []
        self.strokes_stored = 0  # written out of range or before streaming was asked for
        self.links_cut = 0
        self.written: list[WrittenStroke] = []
        self.frames: list[Sent] = []  # every real-time frame, in the order sent
        self.powered = True
        self.firmware = PenFirmware(self.mac, self.password, self.chunk_corrupt_rate, self.seed)
        self.firmware.settings.hover = self.hover
        self._rng = random.Random(self.seed)
        self._t0 = 0.0
        self._away_until: float | None = None  # script time the pen comes back into range
        self._alarms = list(BATTERY_ALARMS)
        self._kept: list[_Kept] = []
        self._link_gen = 0  # goes up whenever the pen finds its gateway gone
        self._written_total = 0
        self._backlog = 0
        self._read_at = 0.0  # when the pen last saw the gateway read
        self._check_at = 0.0
        self.strokes_reoffered = 0  # streamed, then offered again after the gateway went away
        self.gateway_losses = 0

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
        self._replug_at: float | None = None
        if self.link_dir is None:
            self.device = os.ttyname(self._slave)
            return
        # A cable pulled out and put back comes back under the same name, as /dev/ttyACM0 does.
        self.device = str(self.link_dir / f"pen-{self.mac.hex()}")
        fresh = f"{self.device}.new"
        os.symlink(os.ttyname(self._slave), fresh)
        os.replace(fresh, self.device)

    def _close_link(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read(self, timeout: float) -> bytes | None:
        """What the gateway sent within `timeout` (b"" if nothing), or None if the link failed."""
        if self._replug_at is not None:
            time.sleep(timeout)
            if time.monotonic() >= self._replug_at:
                self._open_link()
            return b""
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self._master, 4096)
        except OSError:
            return None

    def _cut_link(self) -> None:
        """The cable is pulled: the gateway's port fails and must be opened again."""
        assert self.link_dir is not None, "a serial pen replugs under a name in link_dir"
        # What the gateway has not read yet would be lost with the pty and the record could not
        # tell; a USB pen's last bytes are on the wire before the pull anyway.
        deadline = time.monotonic() + 1.0
        while _unread(self._slave) and time.monotonic() < deadline:
            time.sleep(0.002)
        self._close_link()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.device)
        self._replug_at = time.monotonic() + self.unplugged_s / self.time_scale
        self.firmware.link_lost()

    def _left_range(self) -> None:
        """Out of range: a serial dongle's port stays open, the pen just falls silent."""

    def _came_back(self) -> None:
        """Back in range: the pen waits for the gateway's handshake, as after any connection."""

    def _powered_off(self) -> None:
        """The battery is empty: a serial pen falls silent (its dongle's port stays open)."""

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
            if not self.powered:
                break
        self.done.set()
        while not self._stop.is_set():
            self._serve_requests(timeout=0.2)

    def _serve_requests(self, timeout: float) -> None:
        data = self._read(timeout)
        if data is None or not self.powered:
            return
        self._come_back_if_due()
        if self._away_until is not None:
            return  # out of range: the gateway's requests never reach the pen
        now = time.monotonic()
        if data:
            was_streaming, handshakes = self.firmware.online, self.firmware.handshakes
            reply = self.firmware.on_data(data, now, int(time.time() * 1000))
            if was_streaming and self.firmware.handshakes > handshakes:
                # A gateway that says hello again mid-stream has started over (it died and came
                # back before the pen noticed): what it may not have kept is offered again.
                self._gateway_gone(lose_link=False)
            self._read_at = now
            self._write(reply)
        self._supervise(now)
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
        if self._script_s() >= self._away_until:
            self._away_until = None
            self._came_back()

    def _supervise(self, now: float) -> None:
        """Notice a gateway that no longer reads the link, as a radio's supervision timeout does."""
        if not self.supervises_link or self._replug_at is not None or now < self._check_at:
            return
        self._check_at = now + 0.05
        backlog = _unread(self._slave)
        written, self._written_total = self._written_total, 0
        read = self._backlog + written - backlog > 0 and backlog < LDISC_FULL
        self._backlog = backlog
        if read or backlog == 0:
            # The silence clock runs only while bytes wait: an idle pen suspects nobody.
            self._read_at = now
            if read:
                self._kept = [k for k in self._kept if now - k.up_at < KEEP_S]
            return
        if self.firmware.online and now - self._read_at >= SUPERVISION_S:
            self._gateway_gone(lose_link=True)

    def _gateway_gone(self, lose_link: bool) -> None:
        self.gateway_losses += 1
        self._link_gen += 1
        if lose_link:
            self.firmware.link_lost()
        for kept in self._kept:
            self.firmware.store(kept.note, kept.stored)
        self.strokes_reoffered += len(self._kept)
        self._kept = []

    def _script_s(self) -> float:
        return (time.monotonic() - self._t0) * self.time_scale

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
        stored offline is older than every stroke streamed. A link lost inside the stroke loses
        the rest of it; an empty battery ends it (and the pen) where it is."""
        time_ms = self.firmware.clock_ms(wall_ms)
        n = len(stroke.xy_units)
        fails = {i for i in range(n) if self._rng.random() < self.error_dot_rate}
        cut_at = n // 2 if self.cut_rate and self._rng.random() < self.cut_rate else -1
        live = streaming = self._live()  # live: sent in real time; streaming: still going out
        generation = self._link_gen
        record = WrittenStroke(str(stroke.page), offline=not live)
        self.written.append(record)
        if live:
            self._begin(stroke, time_ms, record)
        start = time.monotonic()
        for i in range(n):
            if live and self._link_gen != generation and self.camera is None:
                # The gateway went away mid-stroke, and what it had of the stroke with it: the
                # pen treats the stroke as one written offline, sent whole from its PenDown if a
                # gateway starts streaming before the stroke ends, stored at its end otherwise.
                generation, live, streaming = self._link_gen, False, False
                record.offline, record.sent = True, []
                record.dots = [_units(stroke, j) for j in range(i) if j not in fails]
            if not live and self._live():
                live = streaming = True
                record.offline, record.dots = False, []
                self._begin(stroke, time_ms, record)
                for j in range(i):
                    self._sample(stroke, j, j in fails, record)
            if self.battery_empty_at is not None and self._script_s() >= self.battery_empty_at:
                self._power_off(record)
                return
            if i == cut_at and streaming:
                self.links_cut += 1
                self._cut_link()
            if streaming and (not self.firmware.online or self._link_gen != generation):
                streaming, record.cut = False, "link"  # after a reconnection it would be orphaned
            if streaming:
                self._sample(stroke, i, i in fails, record)
            elif not live and i not in fails:
                record.dots.append(_units(stroke, i))
            self._sleep_until(start + (i + 1) / DOT_RATE_HZ / self.time_scale)
        if live and self._link_gen != generation and self.camera is None:
            # The gateway went away during the last dot: as above. Sent on as streamed, the
            # stroke would be kept only after the kept strokes went into memory, and reach a
            # gateway a connection late, after strokes written later (pen-wire.md §3.8).
            live = streaming = False
            record.offline, record.sent = True, []
            record.dots = [_units(stroke, j) for j in range(n) if j not in fails]
        if not live and self._live():
            # A gateway started streaming during the last dot, perhaps listed the pen's offline
            # notes already: the stroke goes out whole now rather than into memory unasked for.
            live = streaming = True
            record.offline, record.dots = False, []
            self._begin(stroke, time_ms, record)
            for j in range(n):
                self._sample(stroke, j, j in fails, record)
        end_ms = time_ms + int(stroke.dt_ms.sum())
        p = stroke.page
        stored = _stored(stroke, time_ms, end_ms, fails)
        note = (p.section, p.owner, p.note)
        if live:
            if streaming:
                self._event(pen_wire.pen_up(self._next(), end_ms, len(record.dots)), "up")
                record.up_wall = time.time()
                if self.supervises_link and self.camera is None:
                    self._kept.append(_Kept(note, stored, time.monotonic()))
            return
        self.strokes_stored += 1
        self.firmware.store(note, stored)

    def _begin(self, stroke: ScriptedStroke, time_ms: int, record: WrittenStroke) -> None:
        p = stroke.page
        self._alarm_if_low()
        if self.hover and self.camera is None:
            x, y = stroke.xy_units[0]
            for k in range(HOVERS):  # the nib coming down onto the page
                self._event(pen_wire.hover(self._next(), 8, x + 3 - k, y - 2 + k), "hover")
        record.pen_down = self._event(pen_wire.pen_down(self._next(), time_ms), "down")
        record.down_wall = time.time()
        if self.camera is None:  # a lattice-camera pen sends no PaperInfo: the page is in the dots
            frame = pen_wire.paper_info(self._next(), p.section, p.owner, p.note, p.page)
            record.paper = self._event(frame, "paper")

    def _sample(self, stroke: ScriptedStroke, i: int, fails: bool, record: WrittenStroke) -> None:
        dt, force = int(stroke.dt_ms[i]), int(stroke.force[i])
        if fails:
            self._event(pen_wire.error_dot(self._next(), dt, force), "error")
            return
        record.dots.append(_units(stroke, i))
        if self.camera is not None:
            xy_mm = stroke.xy_units[i] * PEN_UNIT_MM
            frame = self.camera.frame(self._next(), dt, force, stroke.page, xy_mm)
        else:
            x, y = stroke.xy_units[i]
            frame = pen_wire.dot(self._next(), dt, force, x, y)
        record.sent.append(self._event(frame, "dot"))

    def _alarm_if_low(self) -> None:
        if self.battery_empty_at is None:
            return
        left_s = self.battery_empty_at - self._script_s()
        while self._alarms and left_s <= self._alarms[0] * BATTERY_S_PER_PERCENT:
            self._event(pen_wire.battery(self._alarms.pop(0)), "battery", counted=False)

    def _power_off(self, record: WrittenStroke) -> None:
        """Mid-stroke: PowerOff and no PenUp (the gateway closes the stroke). An offline stroke
        never reaches the pen's memory: a pen commits a stroke to flash at its PenUp."""
        if record.offline:
            self.written.remove(record)
        else:
            record.cut = "power"
            self._event(pen_wire.power_off(POWER_OFF_BATTERY), "power", counted=False)
        self.powered = False
        self.firmware.link_lost()
        self._powered_off()

    def _event(self, frame: bytes, kind: str, counted: bool = True) -> Sent:
        sent = Sent(kind, self.firmware.handshakes, counted)
        self.frames.append(sent)
        # Noise never follows a damaged frame: stray bytes would join its unfinished tail.
        if self.noise_rate and not self.faults.resting and self._rng.random() < self.noise_rate:
            reason, noise = self._noise()
            self._write_fault(noise, reason, "noise")
        out, damage = self.faults.apply(frame)
        if out is None or damage is not None:
            sent.delivered = False  # lost, or damaged so that the gateway must drop it
            if out is not None and damage is not None:
                self._write_fault(out, damage, "damage")
        else:
            self._write(out, sent)
        return sent

    def _write_fault(self, data: bytes, reason: str, kind: str) -> None:
        arrived = Sent(kind, self.firmware.handshakes, counted=False)
        self._faults_sent.append((reason, arrived))
        self._write(data, arrived)

    def _faults_arrived(self, kind: str) -> Counter[str]:
        # Only what reached the link counts: a BLE notification queued as the link is cut is lost.
        return Counter(reason for reason, s in self._faults_sent if s.kind == kind and s.delivered)

    @property
    def noise_sent(self) -> Counter[str]:
        """Noise bursts that reached the gateway, by the reason code it must give them."""
        return self._faults_arrived("noise")

    @property
    def damage_sent(self) -> Counter[str]:
        """Damaged frames that reached the gateway, by the reason code it must give them."""
        return self._faults_arrived("damage")

    def _noise(self) -> tuple[str, bytes]:
        """Line noise or a damaged frame; never a byte that could merge with the next good frame.
        Returned with the reason code the gateway must give it."""
        kind = self._rng.randrange(3)
        if kind == 0:  # stray bytes between frames
            return "garbage", bytes(
                self._rng.choice([b for b in range(256) if b != pen_wire.FRAME_START])
                for _ in range(5)
            )
        if kind == 1:  # a frame whose length field lies
            return "bad_length", bytes((0xC0, pen_wire.DOT, 0x20, 0x00, 1, 2, 3, 0xC1))
        return "bad_escape", bytes((0xC0, pen_wire.DOT, 0x7D, 0x11, 0xC1))  # an illegal escape

    def _write(self, data: bytes, sent: Sent | None = None) -> bool:
        """Write to the link; `sent` (and the result) say whether the bytes got onto it."""
        view = memoryview(data)
        ok = self._replug_at is None
        while ok and view and not self._stop.is_set():
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            except OSError:
                ok = False
                break
            view = view[n:]
            self._written_total += n
        if sent is not None:
            sent.delivered = ok
        return ok


def _units(stroke: ScriptedStroke, i: int) -> tuple[float, float]:
    x, y = stroke.xy_units[i]
    return float(x), float(y)


def _unread(fd: int) -> int:
    """Bytes waiting in a tty's input queue."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def _stored(
    stroke: ScriptedStroke, start_ms: int, end_ms: int, fails: set[int]
) -> pen_wire.StoredStroke:
    """The stroke as the pen keeps it: positions only, so a frame the camera could not decode
    leaves no dot and its Δt goes to the next one."""
    dots, carried = [], 0
    for i, ((x, y), dt, f) in enumerate(
        zip(stroke.xy_units, stroke.dt_ms, stroke.force, strict=True)
    ):
        if i in fails:
            carried += int(dt)
            continue
        dots.append(pen_wire.OfflineDot(int(dt) + carried, int(f), float(x), float(y)))
        carried = 0
    return pen_wire.StoredStroke(stroke.page.page, start_ms, end_ms, tuple(dots))
