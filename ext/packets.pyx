"""Cython kernel of the pen packet decoder (protocol_specs/pen-wire.md §1, §2, §3.2, §5).

One pass unframes, unescapes and decodes; runs of Dot events land in a numpy structured array.
decode(data) returns exactly what ext/packets_ref.py's decode returns for every input; the
reference is where the rules are spelled out, this module only makes them fast.
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memchr, memset

import numpy as np

from ext.packets_ref import DOT_DTYPE

cdef enum:
    MAX_FRAME = 131080
    NCOLS = 11
    # The shortest frame that can yield a Dot: 0xC0, cmd, len u16, 14 data bytes, 0xC1.
    MIN_DOT_FRAME = 19
    # Unescaped body bytes kept for parsing: the largest header + parsed event is 4 + 19.
    HEAD = 32

    FRAME_START = 0xC0
    FRAME_END = 0xC1
    ESCAPE = 0x7D
    RESPONSE = 0x80

    PEN_DOWN = 0x69
    PEN_UP = 0x6A
    PAPER_INFO = 0x6B
    DOT = 0x6C

    GARBAGE = -1
    TRUNCATED = -2
    BAD_ESCAPE = -3
    TOO_SHORT = -4
    BAD_LENGTH = -5
    OVERSIZE = -6
    BAD_VALUE = -7

cdef uint64_t INT64_MAX = 0x7FFFFFFFFFFFFFFF


# Laid out exactly as DOT_DTYPE (checked at import).
cdef packed struct DotRec:
    double x
    double y
    uint16_t force
    uint16_t twist
    uint8_t counter
    uint8_t dt_ms
    uint8_t tilt_x
    uint8_t tilt_y

if DOT_DTYPE.itemsize != sizeof(DotRec) or DOT_DTYPE.fields["tilt_y"][1] != 23:
    raise ImportError("ext.packets: DotRec does not match DOT_DTYPE")


cdef struct Output:
    int64_t *rows
    Py_ssize_t nrows
    Py_ssize_t rows_cap
    DotRec *dots  # sized for the most Dots the input could hold, so it never grows
    Py_ssize_t ndots
    bint open_frame
    unsigned char *payloads
    Py_ssize_t npayloads
    Py_ssize_t payloads_cap
    bint out_of_memory  # for payloads; when rows run out _decode pauses to have them grown


cdef inline uint32_t _u16(const unsigned char *p) noexcept nogil:
    return p[0] | (<uint32_t> p[1] << 8)


cdef inline uint32_t _u24(const unsigned char *p) noexcept nogil:
    return _u16(p) | (<uint32_t> p[2] << 16)


cdef inline uint32_t _u32(const unsigned char *p) noexcept nogil:
    return _u16(p) | (_u16(p + 2) << 16)


cdef inline uint64_t _u64(const unsigned char *p) noexcept nogil:
    return _u32(p) | (<uint64_t> _u32(p + 4) << 32)


cdef inline bint _is_escaped(unsigned char b) noexcept nogil:
    return b == 0xE0 or b == 0xE1 or b == 0x5D


cdef int64_t *_add_row(
    Output *out, int64_t kind, int64_t result, int64_t offset, int64_t length
) noexcept nogil:
    """Append a record with unused fields zeroed; the caller has made sure there is room."""
    cdef int64_t *row = out.rows + out.nrows * NCOLS
    out.nrows += 1
    row[0] = kind
    row[1] = result
    row[2] = offset
    row[3] = length
    memset(row + 4, 0, (NCOLS - 4) * sizeof(int64_t))
    return row


cdef bint _reserve_payload(Output *out, Py_ssize_t extra) noexcept nogil:
    cdef Py_ssize_t cap = out.payloads_cap
    cdef unsigned char *payloads
    if out.npayloads + extra <= cap:
        return True
    cap = max(2 * cap, out.npayloads + extra, 256)
    payloads = <unsigned char *> realloc(out.payloads, cap)
    if payloads == NULL:
        out.out_of_memory = True
        return False
    out.payloads = payloads
    out.payloads_cap = cap
    return True


cdef int64_t _first_byte(
    const unsigned char *data, Py_ssize_t start, Py_ssize_t end
) noexcept nogil:
    """The unescaped command byte of the raw body data[start:end], or -1 if there is none."""
    if start >= end:
        return -1
    if data[start] != ESCAPE:
        return data[start]
    if start + 1 < end and _is_escaped(data[start + 1]):
        return data[start + 1] ^ 0x20
    return -1


cdef Py_ssize_t _scan_body(
    const unsigned char *data,
    Py_ssize_t i,
    Py_ssize_t limit,
    unsigned char *head,
    Py_ssize_t *length,
    bint *bad_escape,
) noexcept nogil:
    """Unescape from data[i] up to the next 0xC0/0xC1 or limit, whichever comes first.

    Keeps the first HEAD unescaped bytes in head, their total count in *length, and returns the
    index where scanning stopped. One pass finds the frame end and unescapes what parsing needs.
    """
    cdef Py_ssize_t k = 0
    cdef unsigned char b
    while i < limit:
        b = data[i]
        if b == FRAME_START or b == FRAME_END:
            break
        i += 1
        if b == ESCAPE:
            if i < limit and _is_escaped(data[i]):
                b = data[i] ^ 0x20
                i += 1
            else:
                # The byte after a bad escape is scanned as ordinary input so that a 0xC0/0xC1
                # there still ends the frame.
                bad_escape[0] = True
                continue
        if k < HEAD:
            head[k] = b
        k += 1
    length[0] = k
    return i


cdef void _copy_payload(
    Output *out,
    const unsigned char *data,
    Py_ssize_t start,
    Py_ssize_t end,
    Py_ssize_t header,
    int64_t cmd,
    int64_t result,
    Py_ssize_t length,
) noexcept nogil:
    """Record a frame passed up raw: unescape its data field (escapes known good) to payloads."""
    cdef Py_ssize_t i = start + 1
    cdef Py_ssize_t k = 0
    cdef Py_ssize_t offset = out.npayloads
    cdef unsigned char *dst
    cdef unsigned char b
    if not _reserve_payload(out, length):
        return
    dst = out.payloads + offset
    while i < end:
        b = data[i]
        i += 1
        if b == ESCAPE:
            b = data[i] ^ 0x20
            i += 1
        if k >= header:
            dst[k - header] = b
        k += 1
    out.npayloads += length
    _add_row(out, cmd, result, offset, length)


cdef void _add_dot(Output *out, const unsigned char *d) noexcept nogil:
    """Append a Dot to the run in the last record, or start a run; d is its data field."""
    cdef DotRec *dot = out.dots + out.ndots
    cdef int64_t *last
    dot.counter = d[0]
    dot.dt_ms = d[1]
    dot.force = _u16(d + 2)
    dot.x = _u16(d + 4) + d[8] / 100.0
    dot.y = _u16(d + 6) + d[9] / 100.0
    dot.tilt_x = d[10]
    dot.tilt_y = d[11]
    dot.twist = _u16(d + 12)
    if out.nrows:
        last = out.rows + (out.nrows - 1) * NCOLS
        if last[0] == DOT:
            last[3] += 1
            out.ndots += 1
            return
    _add_row(out, DOT, -1, out.ndots, 1)
    out.ndots += 1


cdef void _parse_event(
    Output *out, int64_t cmd, const unsigned char *d, Py_ssize_t length, Py_ssize_t span
) noexcept nogil:
    """Record one of the four parsed events from d, the start of its data field.

    d holds at least the first HEAD - 3 bytes of the field, enough for every event's minimum.
    """
    cdef int64_t *row
    cdef Py_ssize_t min_length
    cdef bint bad_value
    if cmd == PEN_DOWN:
        min_length = 14
    elif cmd == PEN_UP:
        min_length = 19
    elif cmd == PAPER_INFO:
        min_length = 13
    else:
        min_length = 14
    if length < min_length:
        _add_row(out, BAD_LENGTH, cmd, -1, span)
        return
    if cmd == PEN_DOWN or cmd == PEN_UP:
        bad_value = _u64(d + 1) > INT64_MAX
    elif cmd == DOT:
        bad_value = d[8] > 99 or d[9] > 99
    else:
        bad_value = False
    if bad_value:
        _add_row(out, BAD_VALUE, cmd, -1, span)
        return
    if cmd == DOT:
        _add_dot(out, d)
        return
    row = _add_row(out, cmd, -1, -1, length)
    row[4] = d[0]
    if cmd == PEN_DOWN:
        row[5] = <int64_t> _u64(d + 1)
        row[6] = d[9]
        row[7] = _u32(d + 10)
    elif cmd == PEN_UP:
        row[5] = <int64_t> _u64(d + 1)
        row[6] = _u16(d + 9)
        row[7] = _u16(d + 11)
        row[8] = _u16(d + 13)
        row[9] = _u16(d + 15)
        row[10] = _u16(d + 17)
    else:
        row[5] = d[4]
        row[6] = _u24(d + 1)
        row[7] = _u32(d + 5)
        row[8] = _u32(d + 9)


cdef void _closed_frame(
    Output *out,
    const unsigned char *data,
    Py_ssize_t start,
    Py_ssize_t end,
    const unsigned char *head,
    Py_ssize_t body_length,
    bint bad_escape,
) noexcept nogil:
    """Record the frame data[start] == 0xC0 ... data[end] == 0xC1."""
    cdef Py_ssize_t span = end + 1 - start
    cdef int64_t cmd
    cdef Py_ssize_t header, length
    if bad_escape:
        _add_row(out, BAD_ESCAPE, _first_byte(data, start + 1, end), -1, span)
        return
    if body_length == 0:
        _add_row(out, TOO_SHORT, -1, -1, span)
        return
    cmd = head[0]
    header = 4 if cmd >= RESPONSE else 3
    if body_length < header:
        _add_row(out, TOO_SHORT, cmd, -1, span)
        return
    length = _u16(head + header - 2)
    if length != body_length - header:
        _add_row(out, BAD_LENGTH, cmd, -1, span)
    elif PEN_DOWN <= cmd <= DOT:
        _parse_event(out, cmd, head + header, length, span)
    else:
        _copy_payload(
            out, data, start, end, header, cmd, head[1] if cmd >= RESPONSE else -1, length
        )


cdef Py_ssize_t _decode(
    const unsigned char *data, Py_ssize_t n, Py_ssize_t pos, Output *out
) noexcept nogil:
    """Decode data[pos:n] into out until done or out of rows; returns the position reached."""
    cdef Py_ssize_t start, end, limit, body_length
    cdef const unsigned char *hit
    cdef unsigned char head[HEAD]
    cdef bint bad_escape
    # Each pass adds at most one row, so checking for room here covers every _add_row below.
    while pos < n and out.nrows < out.rows_cap and not out.out_of_memory:
        if data[pos] != FRAME_START:
            hit = <const unsigned char *> memchr(data + pos, FRAME_START, n - pos)
            end = n if hit == NULL else hit - data
            _add_row(out, GARBAGE, -1, -1, end - pos)
            pos = end
            continue
        start = pos
        limit = min(n, start + MAX_FRAME)
        bad_escape = False
        end = _scan_body(data, start + 1, limit, head, &body_length, &bad_escape)
        if end == limit:
            if limit - start < MAX_FRAME:
                out.open_frame = True  # it may still end in the caller's next read
                break
            _add_row(out, OVERSIZE, _first_byte(data, start + 1, limit), -1, MAX_FRAME)
            pos = limit
        elif data[end] == FRAME_START:
            _add_row(out, TRUNCATED, _first_byte(data, start + 1, end), -1, end - start)
            pos = end
        else:
            _closed_frame(out, data, start, end, head, body_length, bad_escape)
            pos = end + 1
    return pos


cdef int64_t *_rows_of(int64_t[:, ::1] records):
    """Where the buffer of records starts: valid while the array lives and is not resized."""
    return &records[0, 0]


cdef DotRec *_dots_of(unsigned char[::1] raw):
    """Where the buffer of a DOT_DTYPE array (seen as bytes) starts."""
    return <DotRec *> &raw[0]


def decode(const unsigned char[::1] data not None):
    """Decode every complete frame of `data` (any contiguous byte buffer).

    Returns (records, dots, payloads, consumed) exactly as ext.packets_ref.decode does.
    """
    cdef Py_ssize_t n = data.shape[0]
    cdef const unsigned char *ptr = NULL
    cdef Py_ssize_t pos = 0
    cdef Output out
    memset(&out, 0, sizeof(out))
    if n:
        ptr = &data[0]
    # Rows are written straight into the array that is returned: a first guess that fits a
    # stream of dot runs, doubled whenever a pass runs out, trimmed at the end.
    out.rows_cap = n // 64 + 16
    records = np.empty((out.rows_cap, NCOLS), dtype=np.int64)
    dots = np.empty(n // MIN_DOT_FRAME + 1, dtype=DOT_DTYPE)
    out.dots = _dots_of(dots.view(np.uint8))
    try:
        while True:
            out.rows = _rows_of(records)
            with nogil:
                pos = _decode(ptr, n, pos, &out)
            if out.out_of_memory:
                raise MemoryError()
            if pos == n or out.open_frame:
                break
            out.rows_cap *= 2
            records.resize((out.rows_cap, NCOLS), refcheck=False)
        records.resize((out.nrows, NCOLS), refcheck=False)
        dots.resize(out.ndots, refcheck=False)
        payloads = out.payloads[:out.npayloads] if out.npayloads else b""
        return records, dots, payloads, pos
    finally:
        free(out.payloads)
