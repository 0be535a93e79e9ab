"""Plain-Python reference of the pen packet decoder (protocol_specs/pen-wire.md §1, §2, §3.2, §5).

`ext/packets.pyx` must return exactly what this module returns for every input: this is the
readable statement of the rules, and the baseline the kernel is benchmarked against.

decode(data) -> (records, dots, payloads, consumed); see `decode` for the layouts.
"""

import re
import struct
from collections.abc import Callable

import numpy as np

MAX_FRAME = 131_080  # 2 * (4 + 65_535) + 2: the longest frame a legal body can escape to
NCOLS = 11

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

# One decoded Dot event (pen-wire.md §3.2); x and y are integer part + fraction / 100.
DOT_DTYPE = np.dtype(
    [
        ("x", "<f8"),
        ("y", "<f8"),
        ("force", "<u2"),
        ("twist", "<u2"),
        ("counter", "u1"),
        ("dt_ms", "u1"),
        ("tilt_x", "u1"),
        ("tilt_y", "u1"),
    ]
)

_TERMINATOR = re.compile(rb"[\xc0\xc1]")
_BAD_ESCAPE = re.compile(rb"\x7d(?![\xe0\xe1\x5d])")
_ESCAPE_PAIR = re.compile(rb"\x7d[\xe0\xe1\x5d]")
_UNESCAPED = {bytes([ESCAPE, b]): bytes([b ^ 0x20]) for b in ESCAPED}

_PEN_DOWN = struct.Struct("<BQBI")  # counter, time, tip type, colour
_PEN_UP = struct.Struct("<BQHHHHH")  # counter, time, dot/total/processed/success/sent counts
_PAPER_INFO = struct.Struct("<B3sBII")  # counter, owner u24, section, note, page
_DOT = struct.Struct("<BBHHHBBBBH")  # counter, dt, force, x, y, fx, fy, tilt x, tilt y, twist

Fields = tuple[int, ...]
DotTuple = tuple[float, float, int, int, int, int, int, int]


def _pen_down(data: bytes) -> Fields | None:
    fields = _PEN_DOWN.unpack_from(data)
    return None if fields[1] > INT64_MAX else fields


def _pen_up(data: bytes) -> Fields | None:
    fields = _PEN_UP.unpack_from(data)
    return None if fields[1] > INT64_MAX else fields


def _paper_info(data: bytes) -> Fields | None:
    counter, owner, section, note, page = _PAPER_INFO.unpack_from(data)
    return counter, section, int.from_bytes(owner, "little"), note, page


# command -> (minimum len, parser returning the record's fields or None for bad_value)
_EVENTS: dict[int, tuple[int, Callable[[bytes], Fields | None]]] = {
    PEN_DOWN: (_PEN_DOWN.size, _pen_down),
    PEN_UP: (_PEN_UP.size, _pen_up),
    PAPER_INFO: (_PAPER_INFO.size, _paper_info),
}


def _dot(data: bytes) -> DotTuple | None:
    counter, dt, force, x, y, fx, fy, tilt_x, tilt_y, twist = _DOT.unpack_from(data)
    if fx > 99 or fy > 99:
        return None
    return (x + fx / 100.0, y + fy / 100.0, force, twist, counter, dt, tilt_x, tilt_y)


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


class _Output:
    def __init__(self) -> None:
        self.rows: list[list[int]] = []
        self.dots: list[DotTuple] = []
        self.payloads = bytearray()

    def add(self, row: list[int]) -> None:
        self.rows.append(row)

    def add_dot(self, dot: DotTuple) -> None:
        """A Dot joins the run in the previous record, or starts a run."""
        if self.rows and self.rows[-1][0] == DOT:
            self.rows[-1][3] += 1
        else:
            self.rows.append(_row(DOT, -1, len(self.dots), 1))
        self.dots.append(dot)


def _closed_frame(raw: bytes, span: int, out: _Output) -> None:
    """Record the frame whose escaped body `raw` lay between 0xC0 and 0xC1."""
    body = _unescape(raw)
    if body is None:
        return out.add(_row(BAD_ESCAPE, _first_byte(raw, 0, len(raw)), -1, span))
    if not body:
        return out.add(_row(TOO_SHORT, -1, -1, span))
    cmd = body[0]
    header = 4 if cmd >= RESPONSE else 3
    if len(body) < header:
        return out.add(_row(TOO_SHORT, cmd, -1, span))
    length = int.from_bytes(body[header - 2 : header], "little")
    data = body[header:]
    if length != len(data):
        return out.add(_row(BAD_LENGTH, cmd, -1, span))
    if cmd == DOT:
        if length < _DOT.size:
            return out.add(_row(BAD_LENGTH, cmd, -1, span))
        dot = _dot(data)
        return out.add(_row(BAD_VALUE, cmd, -1, span)) if dot is None else out.add_dot(dot)
    event = _EVENTS.get(cmd)
    if event is None:
        result = body[1] if cmd >= RESPONSE else -1
        out.add(_row(cmd, result, len(out.payloads), length))
        out.payloads += data
        return None
    min_length, parse = event
    if length < min_length:
        return out.add(_row(BAD_LENGTH, cmd, -1, span))
    fields = parse(data)
    if fields is None:
        return out.add(_row(BAD_VALUE, cmd, -1, span))
    return out.add(_row(cmd, -1, -1, length, fields))


def decode(data: bytes) -> tuple[np.ndarray, np.ndarray, bytes, int]:
    """Decode every complete frame of `data`.

    Returns (records, dots, payloads, consumed).

    records is an int64 (N, 11) array, one row per frame, run of Dots or rejected piece of input,
    in stream order: kind (command byte, or a negative reason code), result (-1 if none), offset
    (-1 if none), len (for rejects: input bytes spanned), then up to seven parsed event fields.
    A row of kind Dot (0x6C) stands for consecutive Dot frames: offset is the index of the first
    in `dots` and len how many. dots is a DOT_DTYPE array of every good Dot. payloads holds the
    data of good frames that are none of PenDown, PenUp, PaperInfo, Dot; their rows' offset
    points into it. A frame still open at the end is not consumed.
    """
    out = _Output()
    pos, n = 0, len(data)
    while pos < n:
        if data[pos] != FRAME_START:
            end = data.find(FRAME_START, pos)
            if end < 0:
                end = n
            out.add(_row(GARBAGE, -1, -1, end - pos))
            pos = end
            continue
        limit = min(n, pos + MAX_FRAME)
        terminator = _TERMINATOR.search(data, pos + 1, limit)
        if terminator is None:
            if limit - pos < MAX_FRAME:
                break  # the frame may still end in the caller's next read
            out.add(_row(OVERSIZE, _first_byte(data, pos + 1, limit), -1, MAX_FRAME))
            pos = limit
            continue
        end = terminator.start()
        if data[end] == FRAME_START:
            out.add(_row(TRUNCATED, _first_byte(data, pos + 1, end), -1, end - pos))
            pos = end
            continue
        _closed_frame(data[pos + 1 : end], end + 1 - pos, out)
        pos = end + 1
    records = np.array(out.rows, dtype=np.int64).reshape(-1, NCOLS)
    dots = np.array(out.dots, dtype=DOT_DTYPE)
    return records, dots, bytes(out.payloads), pos
