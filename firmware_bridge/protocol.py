"""The pen protocol core, sans-I/O in the style of h11: bytes in, typed events out.

No sockets, threads or asyncio here: a transport feeds `receive_data` with whatever it read and
writes whatever the request builders return. Frame scanning runs in the Cython kernel
`ext.penwire`; this module owns the state that spans frames: the handshake, the event counter,
and the stroke state that guarantees downstream code only ever sees PenDown, PaperInfo, Dot…, PenUp.
"""

from __future__ import annotations

import struct

from ext.penwire import decode

from firmware_bridge.events import (
    Dot,
    Event,
    EventGap,
    LatticeFrame,
    PaperInfo,
    PenDown,
    PenInfo,
    PenUp,
    Rejected,
    Response,
    UnknownCommand,
)

PEN_DOWN, PEN_UP, PAPER_INFO, DOT = 0x69, 0x6A, 0x6B, 0x6C
LATTICE_FRAME = 0x70
LATTICE_FRAME_SIZE = 26
NIB_MAX = 799
VERSION_REQUEST, VERSION_RESPONSE = 0x01, 0x81
APP_TYPE_CLASSINK = 0x1101
PROTOCOL_VERSION = "2.18"

REASONS = {
    -1: "garbage",
    -2: "truncated",
    -3: "bad_escape",
    -4: "too_short",
    -5: "bad_length",
    -6: "oversize",
    -7: "bad_value",
}
KNOWN_EVENTS = {PEN_DOWN, PEN_UP, PAPER_INFO, DOT}
VERSION_RESPONSE_MIN = 64


def _escape(body: bytes) -> bytes:
    out = bytearray((0xC0,))
    for b in body:
        if b in (0xC0, 0xC1, 0x7D):
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    out.append(0xC1)
    return bytes(out)


def request(cmd: int, data: bytes = b"") -> bytes:
    """A framed gateway → pen request."""
    return _escape(struct.pack("<BH", cmd, len(data)) + data)


def version_request(app_version: str, connection_code: str = "") -> bytes:
    def text(s: str, n: int) -> bytes:
        return s.encode("ascii", "replace")[:n].ljust(n, b"\0")

    data = (
        text(connection_code, 16)
        + struct.pack("<H", APP_TYPE_CLASSINK)
        + text(app_version, 16)
        + text(PROTOCOL_VERSION, 8)
    )
    return request(VERSION_REQUEST, data)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


class PenConnection:
    """State of one pen link. Feed it bytes; it returns events in order."""

    def __init__(self) -> None:
        self._pending = b""
        self._expected_counter: int | None = None
        self._in_stroke = False
        self._page: PaperInfo | None = None
        self._stroke_dots = 0
        self._last_time_ms = 0
        self.pen_info: PenInfo | None = None

    def receive_data(self, data: bytes) -> list[Event]:
        buffer = self._pending + data
        records, payloads, consumed = decode(buffer)
        self._pending = buffer[consumed:]
        events: list[Event] = []
        for row in records.tolist():
            self._handle(row, payloads, events)
        return events

    def close(self) -> list[Event]:
        """The link went away: close an open stroke so no half-stroke waits forever."""
        events: list[Event] = []
        if self._pending:
            events.append(Rejected("truncated", "link closed inside a frame", len(self._pending)))
            self._pending = b""
        if self._in_stroke:
            events += self._cut_stroke()
        self._expected_counter = None
        return events

    # -- records to events ---------------------------------------------------------------------

    def _handle(self, row: list[int], payloads: bytes, events: list[Event]) -> None:
        kind, aux, offset, length = row[0], row[1], row[2], row[3]
        fields = row[4:]
        if kind < 0:
            reason = REASONS.get(kind, "bad_value")
            cmd = f" in command 0x{aux:02x}" if aux >= 0 else ""
            events.append(Rejected(reason, f"{reason}{cmd}", length))
            return
        if kind in KNOWN_EVENTS:
            self._check_counter(fields[0], events)
            if kind == DOT:
                self._on_dot(fields, events)
            elif kind == PEN_DOWN:
                self._on_pen_down(fields, events)
            elif kind == PAPER_INFO:
                self._on_paper_info(fields, events)
            else:
                self._on_pen_up(fields, events)
            return
        data = payloads[offset : offset + length]
        if kind == LATTICE_FRAME:
            self._on_lattice_frame(data, events)
        elif kind == VERSION_RESPONSE:
            self._on_version(aux, data, events)
        elif kind >= 0x80:
            events.append(Response(kind, aux, data))
        else:
            events.append(UnknownCommand(kind, data))
            events.append(
                Rejected("unknown_command", f"unknown event command 0x{kind:02x}", length)
            )

    def _check_counter(self, counter: int, events: list[Event]) -> None:
        if self._expected_counter is not None and counter != self._expected_counter:
            events.append(EventGap(self._expected_counter, counter))
        self._expected_counter = (counter + 1) & 0xFF

    def _on_version(self, result: int, data: bytes, events: list[Event]) -> None:
        if result != 0 or len(data) < VERSION_RESPONSE_MIN:
            events.append(
                Rejected("bad_value", f"version response result={result} with {len(data)} bytes")
            )
            return
        self.pen_info = PenInfo(
            device_name=_text(data[0:16]),
            firmware_version=_text(data[16:32]),
            protocol_version=_text(data[32:40]),
            sub_name=_text(data[40:56]),
            device_type=struct.unpack_from("<H", data, 56)[0],
            mac=bytes(data[58:64]),
        )
        self._expected_counter = None  # the pen restarts its counter after a handshake
        events.append(self.pen_info)

    def _on_pen_down(self, f: list[int], events: list[Event]) -> None:
        if self._in_stroke:
            events.append(Rejected("stroke_cut", "PenDown while a stroke was open"))
            events += self._cut_stroke()
        self._in_stroke, self._page, self._stroke_dots = True, None, 0
        self._last_time_ms = f[1]
        events.append(PenDown(timestamp_ms=f[1], tip_type=f[2], colour=f[3]))

    def _on_paper_info(self, f: list[int], events: list[Event]) -> None:
        page = PaperInfo(section=f[1], owner=f[2], note=f[3], page=f[4])
        if self._in_stroke and self._stroke_dots and page != self._page:
            events.append(Rejected("page_change_in_stroke", f"stroke moved to page {page.address}"))
            events += self._cut_stroke()
            self._in_stroke, self._stroke_dots = True, 0
            events.append(PenDown(self._last_time_ms, 0, 0, synthetic=True))
        self._page = page
        events.append(page)

    def _on_dot(self, f: list[int], events: list[Event]) -> None:
        if not self._in_stroke:
            events.append(Rejected("dot_without_pen_down", "Dot outside PenDown…PenUp"))
            return
        if self._page is None:
            events.append(Rejected("dot_without_page", "Dot before the stroke's PaperInfo"))
            return
        self._stroke_dots += 1
        self._last_time_ms += f[1]
        events.append(
            Dot(
                x=f[3] + f[5] / 100.0,
                y=f[4] + f[6] / 100.0,
                force=f[2],
                dt_ms=f[1],
                tilt_x=f[7],
                tilt_y=f[8],
                twist=f[9],
            )
        )

    def _on_lattice_frame(self, data: bytes, events: list[Event]) -> None:
        # Parsed here rather than in the kernel: camera frames are ~120/s per pen, not a bulk path.
        if len(data) < LATTICE_FRAME_SIZE:
            events.append(Rejected("bad_length", f"LatticeFrame of {len(data)} bytes", len(data)))
            return
        counter, dt, force = struct.unpack_from("<BBH", data)
        nib_x, nib_y, tilt_x, tilt_y = struct.unpack_from("<HHBB", data, 20)
        self._check_counter(counter, events)
        if nib_x > NIB_MAX or nib_y > NIB_MAX:
            events.append(Rejected("bad_value", f"LatticeFrame nib ({nib_x}, {nib_y}) > {NIB_MAX}"))
            return
        if not self._in_stroke:
            events.append(Rejected("dot_without_pen_down", "LatticeFrame outside PenDown…PenUp"))
            return
        self._stroke_dots += 1
        self._last_time_ms += dt
        events.append(
            LatticeFrame(bytes(data[4:20]), nib_x / 100, nib_y / 100, force, dt, tilt_x, tilt_y)
        )

    def _on_pen_up(self, f: list[int], events: list[Event]) -> None:
        if not self._in_stroke:
            events.append(Rejected("pen_up_without_pen_down", "PenUp with no open stroke"))
            return
        self._in_stroke = False
        events.append(PenUp(timestamp_ms=f[1], dot_count=f[2]))

    def _cut_stroke(self) -> list[Event]:
        self._in_stroke = False
        return [PenUp(self._last_time_ms, self._stroke_dots, synthetic=True)]


def decode_stream(data: bytes) -> list[Event]:
    """Events of a complete recorded stream, as if the link closed at its end."""
    conn = PenConnection()
    return conn.receive_data(data) + conn.close()
