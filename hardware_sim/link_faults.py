"""What a bad link does to a pen's real-time frames, and the pen's own record of it.

Every real-time frame a simulated pen sends is one BLE notification (or one burst on a serial
line), so a fault hits whole frames: the frame is lost (a dropped notification, a serial
overrun) or it arrives damaged in one of the ways pen-wire.md §5 says the gateway must notice.
Each fault is isolated — the frame after a faulty one always arrives intact — so that one fault is
one counter gap and a stroke never loses its PenUp and the next PenDown together (the wire has no
way to tell those two strokes apart). The pen keeps a `Sent` per frame, so a test can say exactly
what the gateway should have received.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from hardware_sim import pen_wire

# How a damaged frame shows at the gateway: the §5 reason code each kind of damage must produce.
DAMAGE = {
    "bytes_lost": "bad_length",  # two bytes of the body lost; the frame's length field disagrees
    "end_lost": "truncated",  # its 0xC1 lost: the next frame's 0xC0 cuts it off
    "bad_escape": "bad_escape",  # a byte turned into an escape no sender writes
}


@dataclass
class Sent:
    """One real-time frame as the pen sent it. `delivered` is None until the link has decided
    (a BLE pen's frames wait for the radio); `epoch` counts the pen's handshakes, since the event
    counter starts again at each one."""

    kind: str
    epoch: int
    counted: bool = True  # carries the event counter (Battery and PowerOff do not)
    delivered: bool | None = None


@dataclass
class LinkFaults:
    drop_rate: float = 0.0  # share of real-time frames lost whole
    damage_rate: float = 0.0  # share of real-time frames damaged (DAMAGE)
    seed: int = 0
    dropped: int = 0
    # Frames damaged, by the reason the gateway must give; whether each reached the gateway is the
    # pen's record (SimPen.damage_sent), since a link cut can lose it.
    damaged: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._last_faulty = False

    @property
    def resting(self) -> bool:
        """The last frame was faulty, so the next one will arrive intact."""
        return self._last_faulty

    def apply(self, frame: bytes) -> tuple[bytes | None, str | None]:
        """The bytes that reach the link for this frame (None: nothing does), and for a damaged
        frame the reason code the gateway must give it."""
        if self._last_faulty:
            self._last_faulty = False
            return frame, None
        roll = self._rng.random()
        if roll < self.drop_rate:
            self.dropped += 1
            self._last_faulty = True
            return None, None
        if roll < self.drop_rate + self.damage_rate:
            kind = self._rng.choice(sorted(DAMAGE))
            self.damaged[DAMAGE[kind]] += 1
            self._last_faulty = True
            return _damage(frame, kind), DAMAGE[kind]
        return frame, None


def _damage(frame: bytes, kind: str) -> bytes:
    if kind == "end_lost":
        return frame[:-1]
    body = _unescape(frame[1:-1])
    if kind == "bytes_lost":
        return pen_wire.frame(body[:-2])
    # 0x7D 0x11 is no escape of the three bytes that need one.
    return bytes((pen_wire.FRAME_START,)) + pen_wire.escape(body[:3]) + b"\x7d\x11" + frame[-1:]


def _unescape(raw: bytes) -> bytes:
    out = bytearray()
    it = iter(raw)
    for b in it:
        out.append(next(it) ^ 0x20 if b == pen_wire.ESCAPE else b)
    return bytes(out)
