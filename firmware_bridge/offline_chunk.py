"""The body of an offline chunk (pen-wire.md §3.6): zlib, stroke headers, checksummed dots.

Everything a pen stored while no gateway listened comes through here, and a chunk is accepted only
whole: one bad checksum, one byte too many or too few, and the gateway asks for the chunk again
rather than keep part of it.
"""

from __future__ import annotations

import struct
import zlib

from firmware_bridge.events import Dot, NoteId, OfflineChunk, OfflineStroke

CHUNK_HEADER = struct.Struct("<HBHHB3sBIH")  # id, compressed, raw/sent sizes, position, note, n
STROKE_HEADER = struct.Struct("<IQQBIH")  # page, start, end, tip type, colour, dot count
OFFLINE_DOT = struct.Struct("<BHHHBBBBHHB")  # Δt, force, x, y, fx, fy, tilt x/y, twist, -, sum
LAST_CHUNK = 2
MAX_BODY = 0xFFFF  # sizes are u16, which also bounds what zlib may inflate to


class ChunkError(ValueError):
    """Why a chunk was refused; `reason` is a pen-wire.md §5 reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def packet_id(data: bytes) -> int | None:
    """The chunk's id if its header is there at all, so that even a bad chunk can be refused."""
    return struct.unpack_from("<H", data)[0] if len(data) >= 2 else None


def parse_chunk(data: bytes) -> OfflineChunk:
    if len(data) < CHUNK_HEADER.size:
        raise ChunkError("bad_length", f"offline chunk of {len(data)} bytes")
    ident, compressed, raw_size, sent_size, position, owner, section, note, count = (
        CHUNK_HEADER.unpack_from(data)
    )
    body = data[CHUNK_HEADER.size :]
    if len(body) != sent_size:
        raise ChunkError("offline_bad_size", f"chunk {ident}: {len(body)} bytes, said {sent_size}")
    if compressed:
        inflater = zlib.decompressobj()
        try:
            body = inflater.decompress(body, MAX_BODY + 1)
        except zlib.error as exc:
            raise ChunkError("offline_bad_zlib", f"chunk {ident}: {exc}") from exc
        if not inflater.eof:
            raise ChunkError("offline_bad_zlib", f"chunk {ident}: zlib stream incomplete")
    if len(body) != raw_size:
        raise ChunkError("offline_bad_size", f"chunk {ident}: {len(body)} bytes, said {raw_size}")
    note_id = NoteId(section, int.from_bytes(owner, "little"), note)
    strokes = _strokes(ident, note_id, body, count)
    return OfflineChunk(ident, position == LAST_CHUNK, note_id, strokes)


def _strokes(ident: int, note: NoteId, body: bytes, count: int) -> tuple[OfflineStroke, ...]:
    strokes, at = [], 0
    for _ in range(count):
        if at + STROKE_HEADER.size > len(body):
            raise ChunkError("offline_bad_size", f"chunk {ident}: stroke header cut off")
        page, start, end, tip, colour, ndots = STROKE_HEADER.unpack_from(body, at)
        at += STROKE_HEADER.size
        if at + ndots * OFFLINE_DOT.size > len(body):
            raise ChunkError("offline_bad_size", f"chunk {ident}: dots cut off")
        dots = []
        for _ in range(ndots):
            dots.append(_dot(ident, body, at))
            at += OFFLINE_DOT.size
        strokes.append(OfflineStroke(note, page, start, end, tip, colour, tuple(dots)))
    if at != len(body):
        raise ChunkError("offline_bad_size", f"chunk {ident}: {len(body) - at} bytes left over")
    return tuple(strokes)


def _dot(ident: int, body: bytes, at: int) -> Dot:
    dt, force, x, y, fx, fy, tilt_x, tilt_y, twist, _, checksum = OFFLINE_DOT.unpack_from(body, at)
    if sum(body[at : at + OFFLINE_DOT.size - 1]) & 0xFF != checksum:
        raise ChunkError("offline_checksum", f"chunk {ident}: dot checksum mismatch")
    if fx > 99 or fy > 99:
        raise ChunkError("bad_value", f"chunk {ident}: dot fraction ({fx}, {fy}) > 99")
    return Dot(x + fx / 100.0, y + fy / 100.0, force, dt, tilt_x, tilt_y, twist)
