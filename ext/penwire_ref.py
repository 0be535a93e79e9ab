"""Plain-Python reference of the pen frame decoder (protocol_specs/pen-wire.md §1, §2, §3.2, §5).

`ext/penwire.pyx` must return exactly what this module returns for every input: this is the
readable statement of the rules, and the baseline the kernel is benchmarked against.

decode(data) -> (records, payloads, consumed); see `decode` for the record layout.
"""

import re
import struct
from collections.abc import Callable

import numpy as np

MAX_FRAME = 131_080  # 2 * (4 + 65_535) + 2: the longest frame a legal body can escape to
NCOLS = 14

FRAME_START = 0xC0
ESCAPE = 0x7D
ESCAPED = frozenset({0xE0, 0xE1, 0x5D})  # the only bytes allowed after ESCAPE
RESPONSE = 0x80  # commands from here on carry a result byte before len

PEN_DOWN = 0x69
PEN_UP = 0x6A
PAPER_INFO = 0x6B
DOT = 0x6C

# Reason codes, stored negated in the kind column so they never collide with a command byte.
GARBAGE = -1
TRUNCATED = -2
BAD_ESCAPE = -3
TOO_SHORT = -4
BAD_LENGTH = -5
OVERSIZE = -6
BAD_VALUE = -7

INT64_MAX = 2**63 - 1

_TERMINATOR = re.compile(rb"[\xc0\xc1]")
_BAD_ESCAPE = re.compile(rb"\x7d(?![\xe0\xe1\x5d])")
_ESCAPE_PAIR = re.compile(rb"\x7d[\xe0\xe1\x5d]")
_UNESCAPED = {bytes([ESCAPE, b]): bytes([b ^ 0x20]) for b in ESCAPED}

_PEN_DOWN = struct.Struct("<BQBI")  # counter, time, tip type, colour
_PEN_UP = struct.Struct("<BQHHHHH")  # counter, time, dot/total/processed/success/sent counts
_PAPER_INFO = struct.Struct("<B3sBII")  # counter, owner u24, section, note, page
_DOT = struct.Struct("<BBHHHBBBBH")  # counter, dt, force, x, y, fx, fy, tilt x, tilt y, twist

Fields = tuple[int, ...]


def _pen_down(data: bytes) -> Fields | None:
    fields = _PEN_DOWN.unpack_from(data)
    return None if fields[1] > INT64_MAX else fields


def _pen_up(data: bytes) -> Fields | None:
    fields = _PEN_UP.unpack_from(data)
    return None if fields[1] > INT64_MAX else fields


def _paper_info(data: bytes) -> Fields | None:
    counter, owner, section, note, page = _PAPER_INFO.unpack_from(data)
    return counter, section, int.from_bytes(owner, "little"), note, page


def _dot(data: bytes) -> Fields | None:
    fields = _DOT.unpack_from(data)
    fx, fy = fields[5], fields[6]
    return None if fx > 99 or fy > 99 else fields


# command -> (minimum len, parser returning the record's fields or None for bad_value)
_EVENTS: dict[int, tuple[int, Callable[[bytes], Fields | None]]] = {
    PEN_DOWN: (_PEN_DOWN.size, _pen_down),
    PEN_UP: (_PEN_UP.size, _pen_up),
    PAPER_INFO: (_PAPER_INFO.size, _paper_info),
    DOT: (_DOT.size, _dot),
}


def _row(kind: int, result: int, offset: int, length: int, fields: Fields = ()) -> list[int]:
    return [kind, result, offset, length, *fields] + [0] * (NCOLS - 4 - len(fields))


def _first_byte(data: bytes, start: int, end: int) -> int:
    """The unescaped command byte of the raw body data[start:end], or -1 if there is none."""
    if start >= end:
        return -1
    if data[start] != ESCAPE:
        return data[start]
    if start + 1 < end and data[start + 1] in ESCAPED:
        return data[start + 1] ^ 0x20
    return -1


def _unescape(raw: bytes) -> bytes | None:
    if _BAD_ESCAPE.search(raw):
        return None
    return _ESCAPE_PAIR.sub(lambda pair: _UNESCAPED[pair[0]], raw)


def _closed_frame(raw: bytes, span: int, payloads: bytearray) -> list[int]:
    """The record of a frame whose escaped body `raw` lay between 0xC0 and 0xC1."""
    body = _unescape(raw)
    if body is None:
        return _row(BAD_ESCAPE, _first_byte(raw, 0, len(raw)), -1, span)
    if not body:
        return _row(TOO_SHORT, -1, -1, span)
    cmd = body[0]
    header = 4 if cmd >= RESPONSE else 3
    if len(body) < header:
        return _row(TOO_SHORT, cmd, -1, span)
    length = int.from_bytes(body[header - 2 : header], "little")
    data = body[header:]
    if length != len(data):
        return _row(BAD_LENGTH, cmd, -1, span)
    event = _EVENTS.get(cmd)
    if event is None:
        result = body[1] if cmd >= RESPONSE else -1
        offset = len(payloads)
        payloads += data
        return _row(cmd, result, offset, length)
    min_length, parse = event
    if length < min_length:
        return _row(BAD_LENGTH, cmd, -1, span)
    fields = parse(data)
    if fields is None:
        return _row(BAD_VALUE, cmd, -1, span)
    return _row(cmd, -1, -1, length, fields)


def decode(data: bytes) -> tuple[np.ndarray, bytes, int]:
    """Decode every complete frame of `data`.

    Returns (records, payloads, consumed). records is an int64 (N, 14) array, one row per frame or
    rejected piece of input in stream order: kind (command byte, or a negative reason code),
    result (-1 if none), payload offset (-1 if none), len (for rejects: input bytes spanned),
    then up to ten parsed event fields. payloads holds the data of good frames that are not one
    of the four parsed events. A frame still open at the end is not consumed.
    """
    rows: list[list[int]] = []
    payloads = bytearray()
    pos, n = 0, len(data)
    while pos < n:
        if data[pos] != FRAME_START:
            end = data.find(FRAME_START, pos)
            if end < 0:
                end = n
            rows.append(_row(GARBAGE, -1, -1, end - pos))
            pos = end
            continue
        limit = min(n, pos + MAX_FRAME)
        terminator = _TERMINATOR.search(data, pos + 1, limit)
        if terminator is None:
            if limit - pos < MAX_FRAME:
                break  # the frame may still end in the caller's next read
            rows.append(_row(OVERSIZE, _first_byte(data, pos + 1, limit), -1, MAX_FRAME))
            pos = limit
            continue
        end = terminator.start()
        if data[end] == FRAME_START:
            rows.append(_row(TRUNCATED, _first_byte(data, pos + 1, end), -1, end - pos))
            pos = end
            continue
        rows.append(_closed_frame(data[pos + 1 : end], end + 1 - pos, payloads))
        pos = end + 1
    records = np.array(rows, dtype=np.int64).reshape(-1, NCOLS)
    return records, bytes(payloads), pos
