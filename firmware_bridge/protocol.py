"""The pen protocol core, sans-I/O in the style of h11: bytes in, typed events out.

No sockets, threads or asyncio here: a transport feeds `receive_data` with whatever it read and
writes whatever the request builders return. Frame scanning runs in the Cython kernel
`ext.packets`, which hands runs of Dots over as one numpy array; this module owns the state that
spans frames: the handshake, the event counter, and the stroke state that guarantees downstream
code only ever sees PenDown, PaperInfo, Dot…, PenUp.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

import numpy as np
from ext.packets import decode

from firmware_bridge.events import (
    Acknowledged,
    Battery,
    CommandFailed,
    Dot,
    ErrorDot,
    Event,
    EventGap,
    Hover,
    LatticeFrame,
    NoteId,
    OfflineChunkRejected,
    OfflineDataStart,
    OfflineNoteList,
    OfflinePageList,
    PaperInfo,
    PasswordChanged,
    PasswordResult,
    PenDown,
    PenInfo,
    PenStatus,
    PenUp,
    PowerOff,
    Rejected,
    SettingChanged,
    UnknownCommand,
)
from firmware_bridge.offline_chunk import ChunkError, packet_id, parse_chunk

PEN_DOWN, PEN_UP, PAPER_INFO, DOT = 0x69, 0x6A, 0x6B, 0x6C
ERROR_DOT, HOVER, LATTICE_FRAME = 0x6D, 0x6F, 0x70
BATTERY, POWER_OFF, OFFLINE_CHUNK = 0x61, 0x62, 0x24
LATTICE_FRAME_SIZE = 26
NIB_MAX = 799
APP_TYPE_CLASSINK = 0x1101
PROTOCOL_VERSION = "2.18"
RESPONSE = 0x80

# Requests (gateway → pen); the pen answers request | RESPONSE (pen-wire.md §3.5, §3.6).
VERSION_REQUEST, VERSION_RESPONSE = 0x01, 0x81
PASSWORD, PASSWORD_CHANGE, STATUS, STATUS_CHANGE = 0x02, 0x03, 0x04, 0x05
USING_NOTES = 0x11
OFFLINE_NOTE_LIST, OFFLINE_PAGE_LIST, OFFLINE_DATA = 0x21, 0x22, 0x23
OFFLINE_CHUNK_ACK = 0xA4  # the one gateway frame with a result byte, as the pen's responses
OFFLINE_DELETE_NOTES, OFFLINE_DELETE_PAGES = 0x25, 0x27

ALL_NOTES = 0xFFFF  # using-note count meaning "stream every note"
ANY_OWNER = b"\xff\xff\xff\xff"  # section/owner wildcard of the offline note list
KEEP_AFTER_TRANSFER = 2  # offline data request: the gateway deletes only once the data is durable
ZLIB = 1

# Status change settings: number -> the struct format of its value (§3.5).
SETTINGS: dict[int, str] = {
    1: "<Q",  # pen clock, ms since the Unix epoch
    2: "<H",  # auto power-off, minutes
    3: "<B",  # power off when capped
    4: "<B",  # power on when writing starts
    5: "<B",  # beep
    6: "<B",  # hover
    7: "<B",  # store strokes offline
    8: "<I",  # LED colour, ARGB
    9: "<B",  # force sensitivity, 0 (most) .. 4
}
SET_CLOCK = 1

REASONS = {
    -1: "garbage",
    -2: "truncated",
    -3: "bad_escape",
    -4: "too_short",
    -5: "bad_length",
    -6: "oversize",
    -7: "bad_value",
}
KNOWN_EVENTS = {PEN_DOWN, PEN_UP, PAPER_INFO}
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


def _text_field(s: str, n: int) -> bytes:
    return s.encode("ascii", "replace")[:n].ljust(n, b"\0")


def _note_field(note: NoteId) -> bytes:
    return _owner_field(note.section, note.owner) + struct.pack("<I", note.note)


def _owner_field(section: int, owner: int) -> bytes:
    return (owner & 0xFFFFFF).to_bytes(3, "little") + bytes((section,))


def version_request(app_version: str, connection_code: str = "") -> bytes:
    data = (
        _text_field(connection_code, 16)
        + struct.pack("<H", APP_TYPE_CLASSINK)
        + _text_field(app_version, 16)
        + _text_field(PROTOCOL_VERSION, 8)
    )
    return request(VERSION_REQUEST, data)


def password_request(password: str) -> bytes:
    return request(PASSWORD, _text_field(password, 16))


def password_change_request(old: str, new: str) -> bytes:
    """Change the pen's password; an empty `new` removes it."""
    return request(
        PASSWORD_CHANGE, bytes((bool(new),)) + _text_field(old, 16) + _text_field(new, 16)
    )


def status_request() -> bytes:
    return request(STATUS)


def status_change_request(setting: int, value: int) -> bytes:
    fmt = SETTINGS.get(setting)
    if fmt is None:
        raise ValueError(f"no status change setting {setting}")
    return request(STATUS_CHANGE, bytes((setting,)) + struct.pack(fmt, value))


def set_clock_request(epoch_ms: int) -> bytes:
    """Set the pen's clock, so that offline strokes carry the gateway's time."""
    return status_change_request(SET_CLOCK, epoch_ms)


def using_notes_request(notes: Iterable[NoteId] | None = None) -> bytes:
    """Ask the pen to stream what is written on these notes (None: on every note) in real time."""
    if notes is None:
        return request(USING_NOTES, struct.pack("<H", ALL_NOTES))
    chosen = list(notes)
    return request(
        USING_NOTES, struct.pack("<H", len(chosen)) + b"".join(_note_field(n) for n in chosen)
    )


def offline_note_list_request(section: int | None = None, owner: int | None = None) -> bytes:
    """Which notes hold offline strokes: of one section and owner, or (None) of any."""
    field = ANY_OWNER if section is None or owner is None else _owner_field(section, owner)
    return request(OFFLINE_NOTE_LIST, field)


def offline_page_list_request(note: NoteId) -> bytes:
    return request(OFFLINE_PAGE_LIST, _note_field(note))


def offline_data_request(note: NoteId, pages: Iterable[int] = ()) -> bytes:
    """Fetch a note's offline strokes (of the given pages, or all); the pen keeps them."""
    chosen = list(pages)
    return request(
        OFFLINE_DATA,
        bytes((KEEP_AFTER_TRANSFER, ZLIB))
        + _note_field(note)
        + struct.pack(f"<I{len(chosen)}I", len(chosen), *chosen),
    )


def offline_chunk_ack(packet: int, accepted: bool) -> bytes:
    """Acknowledge a chunk (the pen sends the next) or refuse it (the pen sends it again)."""
    return _escape(struct.pack("<BBHHB", OFFLINE_CHUNK_ACK, 0 if accepted else 1, 3, packet, 1))


def offline_delete_notes_request(section: int, owner: int, notes: Iterable[int]) -> bytes:
    chosen = list(notes)
    return request(
        OFFLINE_DELETE_NOTES,
        _owner_field(section, owner) + struct.pack(f"<B{len(chosen)}I", len(chosen), *chosen),
    )


def offline_delete_pages_request(note: NoteId, pages: Iterable[int]) -> bytes:
    chosen = list(pages)
    return request(
        OFFLINE_DELETE_PAGES,
        _note_field(note) + struct.pack(f"<B{len(chosen)}I", len(chosen), *chosen),
    )


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def _note_at(data: bytes, at: int) -> NoteId:
    owner = int.from_bytes(data[at : at + 3], "little")
    return NoteId(data[at + 3], owner, struct.unpack_from("<I", data, at + 4)[0])


class _Short(ValueError):
    """A response or event whose data is shorter than its layout."""


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
        records, dots, payloads, consumed = decode(buffer)
        self._pending = buffer[consumed:]
        events: list[Event] = []
        for row in records.tolist():
            if row[0] == DOT:
                self._on_dots(dots[row[2] : row[2] + row[3]], events)
            else:
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
            gap = self._check_counter(fields[0], events)
            if kind == PEN_DOWN:
                self._on_pen_down(fields, events)
            elif kind == PAPER_INFO:
                self._on_paper_info(fields, gap, events)
            else:
                self._on_pen_up(fields, events)
            return
        data = payloads[offset : offset + length]
        if kind >= RESPONSE:
            self._on_response(kind, aux, data, events)
            return
        handler = self._EVENT_HANDLERS.get(kind)
        if handler is None:
            events.append(UnknownCommand(kind, data))
            events.append(
                Rejected("unknown_command", f"unknown event command 0x{kind:02x}", length)
            )
            return
        try:
            handler(self, data, events)
        except _Short:
            events.append(
                Rejected("bad_length", f"event 0x{kind:02x} of {len(data)} bytes", length)
            )

    def _on_response(self, cmd: int, result: int, data: bytes, events: list[Event]) -> None:
        parse = _RESPONSES.get(cmd)
        if parse is None:
            events.append(UnknownCommand(cmd, data))
            events.append(Rejected("unknown_command", f"unknown response 0x{cmd:02x}", len(data)))
            return
        if result != 0:
            # Whatever data a refusal carries, the request did not happen.
            events.append(CommandFailed(cmd & ~RESPONSE, result))
            return
        try:
            event = parse(data)
        except _Short:
            events.append(
                Rejected("bad_length", f"response 0x{cmd:02x} of {len(data)} bytes", len(data))
            )
            return
        if isinstance(event, PenInfo):
            self.pen_info = event
            self._expected_counter = None  # the pen restarts its counter after a handshake
        events.append(event)

    def _on_error_dot(self, data: bytes, events: list[Event]) -> None:
        counter, dt, *fields = _unpack(_ERROR_DOT, data)
        self._check_counter(counter, events)
        if self._in_stroke:
            self._last_time_ms += dt
        events.append(ErrorDot(dt, *fields))

    def _on_hover(self, data: bytes, events: list[Event]) -> None:
        counter, dt, x, y, fx, fy = _unpack(_HOVER, data)
        self._check_counter(counter, events)
        if fx > 99 or fy > 99:
            events.append(Rejected("bad_value", f"Hover fraction ({fx}, {fy}) > 99"))
            return
        events.append(Hover(x + fx / 100.0, y + fy / 100.0, dt))

    def _on_battery(self, data: bytes, events: list[Event]) -> None:
        events.append(Battery(*_unpack(_BYTE, data)))

    def _on_power_off(self, data: bytes, events: list[Event]) -> None:
        (reason,) = _unpack(_BYTE, data)
        if self._in_stroke:
            events.append(Rejected("stroke_cut", "the pen powered off inside a stroke"))
            events += self._cut_stroke()
        events.append(PowerOff(reason))

    def _on_offline_chunk(self, data: bytes, events: list[Event]) -> None:
        try:
            events.append(parse_chunk(data))
        except ChunkError as exc:
            events.append(Rejected(exc.reason, str(exc), len(data)))
            ident = packet_id(data)
            if ident is not None:
                events.append(OfflineChunkRejected(ident, exc.reason))

    def _check_counter(self, counter: int, events: list[Event]) -> bool:
        """Whether events were lost just before this one (reported as an EventGap)."""
        gap = self._expected_counter is not None and counter != self._expected_counter
        if gap:
            events.append(EventGap(self._expected_counter, counter))
        self._expected_counter = (counter + 1) & 0xFF
        return gap

    def _on_pen_down(self, f: list[int], events: list[Event]) -> None:
        if self._in_stroke:
            events.append(Rejected("stroke_cut", "PenDown while a stroke was open"))
            events += self._cut_stroke()
        self._in_stroke, self._page, self._stroke_dots = True, None, 0
        self._last_time_ms = f[1]
        events.append(PenDown(timestamp_ms=f[1], tip_type=f[2], colour=f[3]))

    def _on_paper_info(self, f: list[int], gap: bool, events: list[Event]) -> None:
        page = PaperInfo(section=f[1], owner=f[2], note=f[3], page=f[4])
        if not self._in_stroke and gap:
            # A pen sends PaperInfo right after PenDown: here that PenDown was the event lost.
            events.append(Rejected("pen_down_lost", f"PaperInfo {page.address} with no PenDown"))
            self._in_stroke, self._stroke_dots = True, 0
            events.append(PenDown(self._last_time_ms, 0, 0, synthetic=True))
        elif self._in_stroke and self._stroke_dots and page != self._page:
            events.append(Rejected("page_change_in_stroke", f"stroke moved to page {page.address}"))
            events += self._cut_stroke()
            self._in_stroke, self._stroke_dots = True, 0
            events.append(PenDown(self._last_time_ms, 0, 0, synthetic=True))
        self._page = page
        events.append(page)

    def _on_dots(self, run: np.ndarray, events: list[Event]) -> None:
        """A run of consecutive Dots (the hot path): checked and converted a run at a time."""
        # A read holds a few dots per pen: plain lists beat numpy's per-call cost at that size,
        # and one tolist() of the whole run beats a column view per field. DOT_DTYPE's order:
        # x, y, force, twist, counter, dt_ms, tilt_x, tilt_y.
        rows = run.tolist()
        counters = [r[4] for r in rows]
        # Where the counter skips inside the run, the run is split so each gap sits in place.
        skips = [i for i in range(1, len(counters)) if (counters[i] - counters[i - 1]) & 0xFF != 1]
        start = 0
        for end in [*skips, len(run)]:
            self._check_counter(counters[start], events)
            self._expected_counter = (counters[end - 1] + 1) & 0xFF
            self._place_dots(rows[start:end], events)
            start = end

    def _place_dots(self, run: list[tuple], events: list[Event]) -> None:
        if not self._in_stroke:
            events += [Rejected("dot_without_pen_down", "Dot outside PenDown…PenUp")] * len(run)
            return
        if self._page is None:
            events += [Rejected("dot_without_page", "Dot before the stroke's PaperInfo")] * len(run)
            return
        self._stroke_dots += len(run)
        dots = [
            Dot(x, y, force, dt, tilt_x, tilt_y, twist)
            for x, y, force, twist, _, dt, tilt_x, tilt_y in run
        ]
        self._last_time_ms += sum(d.dt_ms for d in dots)
        events += dots

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
        self._last_time_ms = f[1]  # the pen's clock, for a PenDown that may have to be synthesised
        events.append(PenUp(timestamp_ms=f[1], dot_count=f[2]))

    def _cut_stroke(self) -> list[Event]:
        self._in_stroke = False
        return [PenUp(self._last_time_ms, self._stroke_dots, synthetic=True)]

    _EVENT_HANDLERS: dict[int, Callable[[PenConnection, bytes, list[Event]], None]] = {
        LATTICE_FRAME: _on_lattice_frame,
        ERROR_DOT: _on_error_dot,
        HOVER: _on_hover,
        BATTERY: _on_battery,
        POWER_OFF: _on_power_off,
        OFFLINE_CHUNK: _on_offline_chunk,
    }


_BYTE = struct.Struct("<B")
_ERROR_DOT = struct.Struct("<BBHBBBHBBB")  # counter, Δt, force, brightness … error count
_HOVER = struct.Struct("<BBHHBB")  # counter, Δt, x, y, fx, fy
_PASSWORD = struct.Struct("<BBB")  # accepted, retries, max retries
_PASSWORD_CHANGED = struct.Struct("<BB")  # retries, max retries
_STATUS = struct.Struct("<BBBQHHBBBBBBBB")
_OFFLINE_START = struct.Struct("<IIB")  # strokes, bytes, compressed


def _unpack(layout: struct.Struct, data: bytes) -> tuple:
    """The fields of a fixed layout; longer data is accepted (§3), shorter is `bad_length`."""
    if len(data) < layout.size:
        raise _Short
    return layout.unpack_from(data)


def _version(data: bytes) -> PenInfo:
    if len(data) < VERSION_RESPONSE_MIN:
        raise _Short
    return PenInfo(
        device_name=_text(data[0:16]),
        firmware_version=_text(data[16:32]),
        protocol_version=_text(data[32:40]),
        sub_name=_text(data[40:56]),
        device_type=struct.unpack_from("<H", data, 56)[0],
        mac=bytes(data[58:64]),
    )


def _password(data: bytes) -> PasswordResult:
    accepted, retries, most = _unpack(_PASSWORD, data)
    return PasswordResult(accepted == 1, retries, most)


def _password_changed(data: bytes) -> PasswordChanged:
    return PasswordChanged(*_unpack(_PASSWORD_CHANGED, data))


def _status(data: bytes) -> PenStatus:
    f = _unpack(_STATUS, data)
    return PenStatus(
        locked=f[0] == 1,
        max_retries=f[1],
        retries=f[2],
        pen_time_ms=f[3],
        auto_power_off_min=f[4],
        max_force=f[5],
        storage_used_percent=f[6],
        cap_power_off=f[7] == 1,
        auto_power_on=f[8] == 1,
        beep=f[9] == 1,
        hover=f[10] == 1,
        battery_percent=f[11],
        offline_storage=f[12] == 1,
        sensitivity=f[13],
    )


def _setting_changed(data: bytes) -> SettingChanged:
    return SettingChanged(*_unpack(_BYTE, data))


def _note_list(data: bytes) -> OfflineNoteList:
    (count,) = _unpack(struct.Struct("<H"), data)
    if len(data) < 2 + 8 * count:
        raise _Short
    return OfflineNoteList(tuple(_note_at(data, 2 + 8 * i) for i in range(count)))


def _page_list(data: bytes) -> OfflinePageList:
    if len(data) < 10:
        raise _Short
    (count,) = struct.unpack_from("<H", data, 8)
    if len(data) < 10 + 4 * count:
        raise _Short
    return OfflinePageList(_note_at(data, 0), struct.unpack_from(f"<{count}I", data, 10))


def _offline_start(data: bytes) -> OfflineDataStart:
    strokes, size, compressed = _unpack(_OFFLINE_START, data)
    return OfflineDataStart(strokes, size, compressed == ZLIB)


def _acknowledged(request: int) -> Callable[[bytes], Acknowledged]:
    return lambda _data: Acknowledged(request)


_RESPONSES: dict[int, Callable[[bytes], Event]] = {
    VERSION_RESPONSE: _version,
    PASSWORD | RESPONSE: _password,
    PASSWORD_CHANGE | RESPONSE: _password_changed,
    STATUS | RESPONSE: _status,
    STATUS_CHANGE | RESPONSE: _setting_changed,
    USING_NOTES | RESPONSE: _acknowledged(USING_NOTES),
    OFFLINE_NOTE_LIST | RESPONSE: _note_list,
    OFFLINE_PAGE_LIST | RESPONSE: _page_list,
    OFFLINE_DATA | RESPONSE: _offline_start,
    OFFLINE_DELETE_NOTES | RESPONSE: _acknowledged(OFFLINE_DELETE_NOTES),
    OFFLINE_DELETE_PAGES | RESPONSE: _acknowledged(OFFLINE_DELETE_PAGES),
}


def decode_stream(data: bytes) -> list[Event]:
    """Events of a complete recorded stream, as if the link closed at its end."""
    conn = PenConnection()
    return conn.receive_data(data) + conn.close()
