"""Typed events the protocol core produces from pen bytes (pen-wire.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


@dataclass(frozen=True, slots=True)
class PenInfo:
    """The pen's answer to the version request; identifies the pen."""

    device_name: str
    firmware_version: str
    protocol_version: str
    sub_name: str
    device_type: int
    mac: bytes

    @property
    def pen_id(self) -> str:
        return ":".join(f"{b:02x}" for b in self.mac)


@dataclass(frozen=True, slots=True)
class PenDown:
    timestamp_ms: int
    tip_type: int
    colour: int
    synthetic: bool = False


@dataclass(frozen=True, slots=True)
class PenUp:
    timestamp_ms: int
    dot_count: int
    synthetic: bool = False  # closed by the gateway because the pen's PenUp never came


@dataclass(frozen=True, slots=True)
class PaperInfo:
    section: int
    owner: int
    note: int
    page: int

    @property
    def address(self) -> str:
        return f"{self.section}.{self.owner}.{self.note}.{self.page}"


class Dot(NamedTuple):
    # A named tuple rather than a frozen dataclass: a classroom makes thousands a second, and a
    # tuple is built several times faster.
    x: float  # pen units (56/600 inch), integer part + fraction/100
    y: float
    force: int
    dt_ms: int
    tilt_x: int
    tilt_y: int
    twist: int


@dataclass(frozen=True, slots=True)
class LatticeFrame:
    """What a lattice-camera pen's camera saw (pen-wire.md §3.3); the gateway decodes it."""

    window: bytes  # 16 bytes: 8×8 dots × (x-bit, y-bit), little-endian bit order
    nib_x: float  # dot pitches from dot (0, 0) along the image's columns
    nib_y: float
    force: int
    dt_ms: int
    tilt_x: int
    tilt_y: int

    def bits(self) -> np.ndarray:
        """The window as a (8, 8, 2) uint8 array of (x-bit, y-bit) per dot."""
        flat = np.unpackbits(np.frombuffer(self.window, dtype=np.uint8), bitorder="little")
        return flat.reshape(8, 8, 2)


@dataclass(frozen=True, slots=True)
class ErrorDot:
    """The camera saw the page but could not decode a position (pen-wire.md §3.4, 0x6D)."""

    dt_ms: int
    force: int
    brightness: int
    exposure: int
    process_ms: int
    label_count: int
    error_code: int
    class_type: int
    error_count: int


@dataclass(frozen=True, slots=True)
class Hover:
    """Where the nib hovers above the page, pen lifted (0x6F); never part of a stroke."""

    x: float
    y: float
    dt_ms: int


@dataclass(frozen=True, slots=True)
class Battery:
    """The pen's low-battery alarm (0x61)."""

    percent: int


@dataclass(frozen=True, slots=True)
class PowerOff:
    """The pen is switching itself off (0x62); `reason` as in pen-wire.md §3.4."""

    reason: int


@dataclass(frozen=True, slots=True)
class PasswordResult:
    """Answer to a password request (0x82)."""

    accepted: bool
    retries: int
    max_retries: int


@dataclass(frozen=True, slots=True)
class PasswordChanged:
    """Answer to a password change (0x83)."""

    retries: int
    max_retries: int


@dataclass(frozen=True, slots=True)
class PenStatus:
    """Answer to a status request (0x84): the pen's settings, clock and battery."""

    locked: bool
    max_retries: int
    retries: int
    pen_time_ms: int
    auto_power_off_min: int
    max_force: int
    storage_used_percent: int
    cap_power_off: bool
    auto_power_on: bool
    beep: bool
    hover: bool
    battery_percent: int
    offline_storage: bool
    sensitivity: int


@dataclass(frozen=True, slots=True)
class SettingChanged:
    """Answer to a status change (0x85): the setting the pen applied."""

    setting: int


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """A response that carries no data: using-note 0x91, note delete 0xA5, page delete 0xA7."""

    request: int


@dataclass(frozen=True, slots=True)
class CommandFailed:
    """A response with a non-zero result: the pen refused request `request`."""

    request: int
    result: int


@dataclass(frozen=True, slots=True, order=True)
class NoteId:
    """A notebook: every page of it shares section, owner and note."""

    section: int
    owner: int
    note: int


@dataclass(frozen=True, slots=True)
class OfflineNoteList:
    """Notes with strokes stored in the pen (0xA1)."""

    notes: tuple[NoteId, ...]


@dataclass(frozen=True, slots=True)
class OfflinePageList:
    """Pages of one note with strokes stored in the pen (0xA2)."""

    note: NoteId
    pages: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class OfflineDataStart:
    """The pen accepted an offline data request (0xA3) and will send this much in chunks."""

    strokes: int
    size: int
    compressed: bool


@dataclass(frozen=True, slots=True)
class OfflineStroke:
    """One stroke the pen stored while no gateway was listening; every dot checksum verified."""

    note: NoteId
    page: int
    start_ms: int
    end_ms: int
    tip_type: int
    colour: int
    dots: tuple[Dot, ...]

    @property
    def address(self) -> str:
        return f"{self.note.section}.{self.note.owner}.{self.note.note}.{self.page}"

    @property
    def key(self) -> str:
        """Identifies the stroke across fetches: a pen re-sends what it was not told to delete."""
        return f"{self.address}/{self.start_ms}/{self.end_ms}/{len(self.dots)}"


@dataclass(frozen=True, slots=True)
class OfflineChunk:
    """One verified offline chunk (0x24); the gateway acknowledges it with 0xA4."""

    packet_id: int
    last: bool
    note: NoteId
    strokes: tuple[OfflineStroke, ...]


@dataclass(frozen=True, slots=True)
class OfflineChunkRejected:
    """A chunk that failed verification; the gateway asks for it again (0xA4, result 1)."""

    packet_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A frame whose command byte pen-wire.md does not define; passed up, never fatal."""

    cmd: int
    data: bytes


@dataclass(frozen=True, slots=True)
class EventGap:
    """Events were lost on the link: the pen's counter skipped."""

    expected: int
    received: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input the core refused, with a pen-wire.md §5 reason code."""

    reason: str
    detail: str
    nbytes: int = 0


Event = (
    PenInfo
    | PenDown
    | PenUp
    | PaperInfo
    | Dot
    | LatticeFrame
    | ErrorDot
    | Hover
    | Battery
    | PowerOff
    | PasswordResult
    | PasswordChanged
    | PenStatus
    | SettingChanged
    | Acknowledged
    | CommandFailed
    | OfflineNoteList
    | OfflinePageList
    | OfflineDataStart
    | OfflineChunk
    | OfflineChunkRejected
    | UnknownCommand
    | EventGap
    | Rejected
)
