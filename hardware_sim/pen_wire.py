"""The pen's side of pen-wire: building the frames a Neo-compatible pen sends.

Written from protocol_specs/pen-wire.md independently of the gateway's decoder, so that tests which
run one against the other check the specification rather than one implementation against itself.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple

FRAME_START, FRAME_END, ESCAPE = 0xC0, 0xC1, 0x7D

PEN_DOWN, PEN_UP, PAPER_INFO, DOT = 0x69, 0x6A, 0x6B, 0x6C
ERROR_DOT, HOVER, BATTERY, POWER_OFF, OFFLINE_CHUNK = 0x6D, 0x6F, 0x61, 0x62, 0x24
VERSION_REQUEST, VERSION_RESPONSE = 0x01, 0x81
PASSWORD, PASSWORD_CHANGE, STATUS, STATUS_CHANGE = 0x02, 0x03, 0x04, 0x05
USING_NOTES = 0x11
OFFLINE_NOTE_LIST, OFFLINE_PAGE_LIST, OFFLINE_DATA, OFFLINE_CHUNK_ACK = 0x21, 0x22, 0x23, 0xA4
DELETE_NOTES, DELETE_PAGES = 0x25, 0x27
CHUNK_FIRST, CHUNK_MIDDLE, CHUNK_LAST = 0, 1, 2


def escape(body: bytes) -> bytes:
    out = bytearray()
    for b in body:
        if b in (FRAME_START, FRAME_END, ESCAPE):
            out += bytes((ESCAPE, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def frame(body: bytes) -> bytes:
    return bytes((FRAME_START,)) + escape(body) + bytes((FRAME_END,))


def event(cmd: int, data: bytes) -> bytes:
    return frame(struct.pack("<BH", cmd, len(data)) + data)


def response(cmd: int, result: int, data: bytes) -> bytes:
    return frame(struct.pack("<BBH", cmd, result, len(data)) + data)


def pen_down(counter: int, time_ms: int, tip: int = 0, colour: int = 0xFF000000) -> bytes:
    return event(PEN_DOWN, struct.pack("<BQBI", counter & 0xFF, time_ms, tip, colour))


def pen_up(counter: int, time_ms: int, dots: int) -> bytes:
    # The image counters report camera frames; a simulated camera decodes every frame it takes.
    return event(
        PEN_UP, struct.pack("<BQHHHHH", counter & 0xFF, time_ms, dots, dots, dots, dots, dots)
    )


def paper_info(counter: int, section: int, owner: int, note: int, page: int) -> bytes:
    owner_section = (owner & 0xFFFFFF) | (section << 24)
    return event(PAPER_INFO, struct.pack("<BIII", counter & 0xFF, owner_section, note, page))


def dot(
    counter: int, dt_ms: int, force: int, x: float, y: float, tilt: tuple[int, int] = (60, 60)
) -> bytes:
    xi, yi = int(x), int(y)
    fx, fy = min(99, round((x - xi) * 100)), min(99, round((y - yi) * 100))
    return event(
        DOT,
        struct.pack(
            "<BBHHHBBBBH",
            counter & 0xFF,
            min(dt_ms, 255),
            force,
            xi,
            yi,
            fx,
            fy,
            tilt[0],
            tilt[1],
            0,
        ),
    )


def version_response(name: str, firmware: str, mac: bytes, device_type: int = 0x0001) -> bytes:
    def text(s: str, n: int) -> bytes:
        return s.encode("ascii")[:n].ljust(n, b"\0")

    data = (
        text(name, 16)
        + text(firmware, 16)
        + text("2.18", 8)
        + text("classink-sim", 16)
        + struct.pack("<H", device_type)
        + mac
    )
    return response(VERSION_RESPONSE, 0, data)


def hover(counter: int, dt_ms: int, x: float, y: float) -> bytes:
    xi, yi = int(x), int(y)
    fx, fy = min(99, round((x - xi) * 100)), min(99, round((y - yi) * 100))
    return event(HOVER, struct.pack("<BBHHBB", counter & 0xFF, min(dt_ms, 255), xi, yi, fx, fy))


def error_dot(counter: int, dt_ms: int, force: int, error_code: int = 3) -> bytes:
    # brightness, exposure, process time, label count, error code, class type, error count
    return event(
        ERROR_DOT,
        struct.pack(
            "<BBHBBBHBBB", counter & 0xFF, min(dt_ms, 255), force, 90, 12, 4, 20, error_code, 0, 1
        ),
    )


def battery(percent: int) -> bytes:
    return event(BATTERY, bytes((percent,)))


def power_off(reason: int) -> bytes:
    return event(POWER_OFF, bytes((reason,)))


def failed(request_cmd: int, result: int = 1) -> bytes:
    """The pen refuses a request: its response with a non-zero result and no data."""
    return response(request_cmd | 0x80, result, b"")


def password_response(accepted: bool, retries: int, max_retries: int = 10) -> bytes:
    return response(PASSWORD | 0x80, 0, bytes((1 if accepted else 0, retries, max_retries)))


def password_change_response(retries: int, max_retries: int = 10) -> bytes:
    return response(PASSWORD_CHANGE | 0x80, 0, bytes((retries, max_retries)))


@dataclass
class PenSettings:
    """What a status response reports (pen-wire.md §3.5)."""

    clock_ms: int
    battery: int = 90
    locked: bool = False
    retries: int = 0
    max_retries: int = 10
    auto_power_off_min: int = 20
    max_force: int = 1023
    storage_used: int = 3
    cap_power_off: bool = True
    auto_power_on: bool = True
    beep: bool = False
    hover: bool = False
    offline_storage: bool = True
    sensitivity: int = 0


def status_response(s: PenSettings) -> bytes:
    data = struct.pack(
        "<BBBQHHBBBBBBBB",
        s.locked,
        s.max_retries,
        s.retries,
        s.clock_ms,
        s.auto_power_off_min,
        s.max_force,
        s.storage_used,
        s.cap_power_off,
        s.auto_power_on,
        s.beep,
        s.hover,
        s.battery,
        s.offline_storage,
        s.sensitivity,
    )
    # A newer pen's trailing fields: USB mode, down-sampling, Bluetooth name, transmission type.
    return response(
        STATUS | 0x80, 0, data + bytes((0, 1)) + b"classink-sim".ljust(16, b"\0") + b"\0"
    )


def setting_changed(setting: int) -> bytes:
    return response(STATUS_CHANGE | 0x80, 0, bytes((setting,)))


def done(request_cmd: int) -> bytes:
    """A response with no data: using notes, delete notes, delete pages."""
    return response(request_cmd | 0x80, 0, b"")


def note_field(section: int, owner: int, note: int) -> bytes:
    return struct.pack("<I", (owner & 0xFFFFFF) | (section << 24)) + struct.pack("<I", note)


def offline_note_list(notes: list[tuple[int, int, int]]) -> bytes:
    data = struct.pack("<H", len(notes)) + b"".join(note_field(*n) for n in notes)
    return response(OFFLINE_NOTE_LIST | 0x80, 0, data)


def offline_page_list(note: tuple[int, int, int], pages: list[int]) -> bytes:
    data = note_field(*note) + struct.pack(f"<H{len(pages)}I", len(pages), *pages)
    return response(OFFLINE_PAGE_LIST | 0x80, 0, data)


def offline_data_start(strokes: int, size: int, compressed: bool = True) -> bytes:
    return response(OFFLINE_DATA | 0x80, 0, struct.pack("<IIB", strokes, size, compressed))


class OfflineDot(NamedTuple):
    dt_ms: int
    force: int
    x: float
    y: float


@dataclass(frozen=True)
class StoredStroke:
    """A stroke kept in the pen's flash while no gateway listened."""

    page: int
    start_ms: int
    end_ms: int
    dots: tuple[OfflineDot, ...]
    tip: int = 0
    colour: int = 0xFF000000


def offline_dot(d: OfflineDot, tilt: tuple[int, int] = (60, 60)) -> bytes:
    xi, yi = int(d.x), int(d.y)
    fx, fy = min(99, round((d.x - xi) * 100)), min(99, round((d.y - yi) * 100))
    first = struct.pack(
        "<BHHHBBBBHH", min(d.dt_ms, 255), d.force, xi, yi, fx, fy, tilt[0], tilt[1], 0, 0
    )
    return first + bytes((sum(first) & 0xFF,))


def stroke_body(s: StoredStroke) -> bytes:
    header = struct.pack("<IQQBIH", s.page, s.start_ms, s.end_ms, s.tip, s.colour, len(s.dots))
    return header + b"".join(offline_dot(d) for d in s.dots)


def offline_chunk_data(
    packet_id: int,
    position: int,
    note: tuple[int, int, int],
    strokes: list[StoredStroke],
    compress: bool = True,
) -> bytes:
    """The data field of an OfflineChunk: 18-byte header, then the (zlib) body."""
    raw = b"".join(stroke_body(s) for s in strokes)
    sent = zlib.compress(raw) if compress else raw
    header = struct.pack("<HBHHB", packet_id, compress, len(raw), len(sent), position)
    return header + note_field(*note) + struct.pack("<H", len(strokes)) + sent


def offline_chunk(
    packet_id: int,
    position: int,
    note: tuple[int, int, int],
    strokes: list[StoredStroke],
    compress: bool = True,
) -> bytes:
    return event(OFFLINE_CHUNK, offline_chunk_data(packet_id, position, note, strokes, compress))


class Request(NamedTuple):
    cmd: int
    data: bytes
    result: int = 0  # only the chunk ack (0xA4) carries one


class RequestReader:
    """Collects the gateway's request frames from a byte stream that may split them anywhere."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Request]:
        self._buffer += data
        requests = []
        while True:
            start = self._buffer.find(FRAME_START)
            if start < 0:
                self._buffer.clear()
                return requests
            end = self._buffer.find(FRAME_END, start + 1)
            if end < 0:
                del self._buffer[:start]
                return requests
            body = self._unescape(self._buffer[start + 1 : end])
            del self._buffer[: end + 1]
            if body[:1] == bytes((OFFLINE_CHUNK_ACK,)) and len(body) >= 4:
                _, result, length = struct.unpack_from("<BBH", body)
                requests.append(Request(OFFLINE_CHUNK_ACK, bytes(body[4 : 4 + length]), result))
            elif len(body) >= 3:
                cmd, length = struct.unpack_from("<BH", body)
                requests.append(Request(cmd, bytes(body[3 : 3 + length])))

    @staticmethod
    def _unescape(body: bytes) -> bytes:
        raw = bytearray()
        it = iter(body)
        for b in it:
            raw.append(next(it, 0) ^ 0x20 if b == ESCAPE else b)
        return bytes(raw)


LATTICE_FRAME = 0x70


def lattice_frame(
    counter: int, dt_ms: int, force: int, window_bits, nib_x: float, nib_y: float
) -> bytes:
    """A camera frame (pen-wire §3.3): window_bits (8, 8, 2) as seen, nib in dot pitches."""
    flat = [int(b) for b in window_bits.reshape(-1)]
    packed = sum(bit << i for i, bit in enumerate(flat)).to_bytes(16, "little")
    return event(
        LATTICE_FRAME,
        struct.pack("<BBH", counter & 0xFF, min(dt_ms, 255), force)
        + packed
        + struct.pack("<HHBB", round(nib_x * 100), round(nib_y * 100), 60, 60),
    )
