"""The simulated pen's firmware: its answers to the gateway, and the strokes it keeps offline.

Transport-agnostic: the pen on a pseudo-terminal and the pen behind a simulated BLE radio both
feed it the gateway's bytes and send what it returns. Written from protocol_specs/pen-wire.md
§3.5-§3.7 with the pen-side encoder of hardware_sim/pen_wire.py, independently of the gateway.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

from hardware_sim import pen_wire as w

CHUNK_RAW_BYTES = 4000  # a small chunk travels in a few BLE notifications
ACK_TIMEOUT_S = 1.0
MAX_SENDS = 8  # of one chunk, before the pen gives the transfer up

NoteKey = tuple[int, int, int]  # section, owner, note


@dataclass
class _Transfer:
    note: NoteKey
    chunks: list[list[w.StoredStroke]]
    sent: set[int] = field(default_factory=set)  # ids of the strokes being transferred
    next_id: int = 0
    sent_at: float = 0.0
    sends: int = 0


@dataclass
class PenFirmware:
    mac: bytes
    password: str | None = None
    chunk_corrupt_rate: float = 0.0  # share of offline chunks damaged on the way out
    seed: int = 0
    ack_timeout_s: float = ACK_TIMEOUT_S

    def __post_init__(self) -> None:
        self.settings = w.PenSettings(clock_ms=0, locked=self.password is not None)
        self.clock_offset_ms = 0
        self.handshaken = False
        self.handshakes = 0  # the event counter starts again at each
        self.authenticated = self.password is None
        self.online = False  # streaming in real time: a using-notes request since the handshake
        self.counter = 0
        self.stored: dict[NoteKey, list[w.StoredStroke]] = {}
        self.deleted: list[w.StoredStroke] = []
        self.chunks_corrupted = 0
        self._transfer: _Transfer | None = None
        self._last_transferred: dict[NoteKey, set[int]] = {}
        self._reader = w.RequestReader()
        self._rng = random.Random(self.seed)

    def next_counter(self) -> int:
        c = self.counter
        self.counter = (self.counter + 1) & 0xFF
        return c

    def clock_ms(self, wall_ms: int) -> int:
        return wall_ms + self.clock_offset_ms

    def link_lost(self) -> None:
        """Out of range, or the radio link dropped: the pen stops streaming until re-introduced."""
        self.handshaken = self.online = False
        self.authenticated = self.password is None
        self._transfer = None
        self._reader = w.RequestReader()

    def store(self, note: NoteKey, stroke: w.StoredStroke) -> None:
        self.stored.setdefault(note, []).append(stroke)

    @property
    def stored_count(self) -> int:
        return sum(len(s) for s in self.stored.values())

    # -- requests -------------------------------------------------------------------------------

    def on_data(self, data: bytes, now: float, wall_ms: int) -> bytes:
        out = bytearray()
        for req in self._reader.feed(data):
            out += self._on_request(req, now, wall_ms)
        return bytes(out)

    def tick(self, now: float) -> bytes:
        """A chunk nobody acknowledged in time is sent again (its frame may have been damaged)."""
        t = self._transfer
        if t is None or now - t.sent_at < self.ack_timeout_s:
            return b""
        return self._send_chunk(now)

    def _on_request(self, req: w.Request, now: float, wall_ms: int) -> bytes:
        if req.cmd == w.VERSION_REQUEST:
            self.handshaken, self.online, self.counter = True, False, 0
            self.handshakes += 1
            return w.version_response("classink-sim", "1.0.0", self.mac)
        if not self.handshaken:
            return b""
        if req.cmd == w.STATUS:
            self.settings.clock_ms = self.clock_ms(wall_ms)
            return w.status_response(self.settings)
        if req.cmd == w.PASSWORD:
            return self._password(req.data)
        if not self.authenticated:
            return w.failed(req.cmd)
        match req.cmd:
            case w.STATUS_CHANGE:
                return self._status_change(req.data, wall_ms)
            case w.USING_NOTES:
                self.online = True
                return w.done(w.USING_NOTES)
            case w.OFFLINE_NOTE_LIST:
                return w.offline_note_list(sorted(n for n, s in self.stored.items() if s))
            case w.OFFLINE_PAGE_LIST:
                note = _note(req.data)
                pages = sorted({s.page for s in self.stored.get(note, [])})
                return w.offline_page_list(note, pages)
            case w.OFFLINE_DATA:
                return self._start_transfer(req.data, now)
            case w.OFFLINE_CHUNK_ACK:
                return self._on_ack(req, now)
            case w.DELETE_PAGES:
                return self._delete_pages(req.data)
            case w.DELETE_NOTES:
                return self._delete_notes(req.data)
        return b""

    def _password(self, data: bytes) -> bytes:
        given = data.split(b"\0", 1)[0].decode("ascii", "replace")
        if given == self.password:
            self.authenticated = True
            return w.password_response(True, self.settings.retries)
        self.settings.retries += 1
        return w.password_response(False, self.settings.retries)

    def _status_change(self, data: bytes, wall_ms: int) -> bytes:
        if len(data) < 2:
            return w.failed(w.STATUS_CHANGE)
        setting = data[0]
        if setting == 1 and len(data) >= 9:
            self.clock_offset_ms = struct.unpack_from("<Q", data, 1)[0] - wall_ms
        elif setting == 6:
            self.settings.hover = bool(data[1])
        return w.setting_changed(setting)

    # -- offline transfer -----------------------------------------------------------------------

    def _start_transfer(self, data: bytes, now: float) -> bytes:
        if len(data) < 14:
            return w.failed(w.OFFLINE_DATA)
        note = _note(data[2:10])
        (count,) = struct.unpack_from("<I", data, 10)
        pages = set(struct.unpack_from(f"<{count}I", data, 14)) if count else None
        strokes = [s for s in self.stored.get(note, []) if pages is None or s.page in pages]
        chunks: list[list[w.StoredStroke]] = []
        size = CHUNK_RAW_BYTES
        for s in strokes:
            stroke_size = len(w.stroke_body(s))
            if size + stroke_size > CHUNK_RAW_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(s)
            size += stroke_size
        self._transfer = _Transfer(note, chunks, {id(s) for s in strokes})
        self._last_transferred[note] = self._transfer.sent
        total = sum(len(w.stroke_body(s)) for s in strokes)
        start = w.offline_data_start(len(strokes), total)
        if not chunks:
            self._transfer = None
            return start
        return start + self._send_chunk(now)

    def _send_chunk(self, now: float) -> bytes:
        t = self._transfer
        assert t is not None
        t.sends += 1
        if t.sends > MAX_SENDS:
            self._transfer = None
            return b""
        t.sent_at = now
        i = t.next_id
        position = w.CHUNK_LAST if i == len(t.chunks) - 1 else w.CHUNK_FIRST if i == 0 else 1
        data = w.offline_chunk_data(i, position, t.note, t.chunks[i])
        if self.chunk_corrupt_rate and self._rng.random() < self.chunk_corrupt_rate:
            self.chunks_corrupted += 1
            data = _damaged(data, self._rng)
        return w.event(w.OFFLINE_CHUNK, data)

    def _on_ack(self, req: w.Request, now: float) -> bytes:
        t = self._transfer
        if t is None or len(req.data) < 2:
            return b""
        (packet,) = struct.unpack_from("<H", req.data)
        if packet != t.next_id:
            return b""
        if req.result != 0:
            return self._send_chunk(now)
        t.next_id, t.sends = t.next_id + 1, 0
        if t.next_id == len(t.chunks):
            self._transfer = None
            return b""
        return self._send_chunk(now)

    def _delete_pages(self, data: bytes) -> bytes:
        if len(data) < 9:
            return w.failed(w.DELETE_PAGES)
        note, count = _note(data), data[8]
        pages = set(struct.unpack_from(f"<{count}I", data, 9))
        # Only what the last transfer of the note sent: a stroke stored since stays (§3.7).
        self._forget(note, lambda s: s.page in pages)
        return w.done(w.DELETE_PAGES)

    def _delete_notes(self, data: bytes) -> bytes:
        if len(data) < 5:
            return w.failed(w.DELETE_NOTES)
        section_owner, count = data[:4], data[4]
        for n in struct.unpack_from(f"<{count}I", data, 5):
            self._forget(_note(section_owner + struct.pack("<I", n)), lambda s: True)
        return w.done(w.DELETE_NOTES)

    def _forget(self, note: NoteKey, chosen) -> None:
        transferred = self._last_transferred.get(note, set())
        keep = []
        for s in self.stored.get(note, []):
            if id(s) in transferred and chosen(s):
                self.deleted.append(s)
            else:
                keep.append(s)
        self.stored[note] = keep


def _note(field: bytes) -> NoteKey:
    owner_section, note = struct.unpack_from("<II", field)
    return owner_section >> 24, owner_section & 0xFFFFFF, note


def _damaged(data: bytes, rng: random.Random) -> bytes:
    """The chunk with one byte of its zlib body changed. The 18-byte header has no check of its
    own (a damaged packet id would pass for another chunk), so the simulation spares it; zlib's
    Adler-32 and the dot checksums catch any change to the body."""
    body = bytearray(data)
    at = rng.randrange(18, len(body))
    body[at] ^= rng.randrange(1, 256)
    return bytes(body)
