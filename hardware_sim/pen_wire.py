"""The pen's side of pen-wire: building the frames a Neo-compatible pen sends.

Written from protocol_specs/pen-wire.md independently of the gateway's decoder, so that tests which
run one against the other check the specification rather than one implementation against itself.
"""

from __future__ import annotations

import struct

FRAME_START, FRAME_END, ESCAPE = 0xC0, 0xC1, 0x7D

PEN_DOWN, PEN_UP, PAPER_INFO, DOT = 0x69, 0x6A, 0x6B, 0x6C
VERSION_REQUEST, VERSION_RESPONSE = 0x01, 0x81


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


class RequestReader:
    """Collects the gateway's request frames from a byte stream that may split them anywhere."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
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
            if len(body) >= 3:
                cmd, length = struct.unpack_from("<BH", body)
                requests.append((cmd, bytes(body[3 : 3 + length])))

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
