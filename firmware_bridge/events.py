"""Typed events the protocol core produces from pen bytes (pen-wire.md)."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Dot:
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
class Response:
    """A response the core does not interpret further (request | 0x80)."""

    cmd: int
    result: int
    data: bytes


@dataclass(frozen=True, slots=True)
class UnknownCommand:
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
    | Response
    | UnknownCommand
    | EventGap
    | Rejected
)
