"""Cython kernel of the position-coding dot pattern (Anoto-style lattice).

Every function returns exactly what its namesake in ext/lattice_ref.py returns for every input;
the reference is where the scheme is spelled out (conventions in ext/lattice_tables.py), this
module only makes it fast. Inputs are checked in Python by the same functions the reference
uses; the loops below then run without the GIL on tables copied into C arrays at import.
"""

from libc.stdint cimport int64_t, uint8_t

import numpy as np

from ext import lattice_tables as T

cdef enum:
    MNS_LEN = 63
    NSEQ = 4
    ORDER = 6
    SECONDARY_ORDER = 5
    SIZE = 8
    MAX_SEQ = 256  # room for the longest secondary sequence
    MAX_WINDOWS = 243  # room for 5-digit windows of base-3 sequences
    TURNED_BITS = SIZE * SIZE * 2
    MAX_CANDIDATES = SIZE

cdef uint8_t MNS2[2 * MNS_LEN]  # the MNS twice: MNS2[a + b] for a, b < 63 needs no modulo
cdef int POS6[1 << ORDER]
cdef int POS8[1 << SIZE]
cdef int SEQ[NSEQ][MAX_SEQ]
cdef int64_t SEQ_LEN[NSEQ]
cdef int SECONDARY_POS[NSEQ][MAX_WINDOWS]
cdef int DIGIT[MNS_LEN][NSEQ]
cdef int BASE[NSEQ]
cdef int WEIGHT[NSEQ]
cdef int64_t CRT[NSEQ]
cdef int64_t PREFIX[NSEQ][MAX_SEQ + 1]
cdef int64_t TOTAL[NSEQ]
cdef int TURN_SOURCE[4][TURNED_BITS]
cdef uint8_t TURN_INVERT[4][TURNED_BITS]
cdef int DELTA_MIN = T.DELTA_MIN
cdef int DELTA_MAX = T.DELTA_MAX
cdef int64_t PERIOD = T.PERIOD


def _load_tables() -> None:
    """Copy the shared tables into the C arrays, refusing data that would not fit them."""
    if (
        T.MNS_LEN != MNS_LEN
        or len(T.SECONDARY) != NSEQ
        or T.SECONDARY_LEN.max() > MAX_SEQ
        or T.SECONDARY_POS.shape[1] > MAX_WINDOWS
    ):
        raise ImportError("anoto_sequences.json does not fit the sizes ext.lattice was built for")
    cdef int i, k
    for k in range(2 * MNS_LEN):
        MNS2[k] = T.MNS[k % MNS_LEN]
    for k in range(1 << ORDER):
        POS6[k] = T.MNS_POS6[k]
    for k in range(1 << SIZE):
        POS8[k] = T.MNS_POS8[k]
    for i in range(NSEQ):
        SEQ_LEN[i] = T.SECONDARY_LEN[i]
        BASE[i] = T.BASES[i]
        WEIGHT[i] = T.WEIGHTS[i]
        CRT[i] = T.CRT[i]
        TOTAL[i] = T.TOTAL[i]
        for k in range(SEQ_LEN[i]):
            SEQ[i][k] = T.SECONDARY[i][k]
        for k in range(SEQ_LEN[i] + 1):
            PREFIX[i][k] = T.PREFIX[i, k]
        for k in range(MAX_WINDOWS):
            SECONDARY_POS[i][k] = T.SECONDARY_POS[i, k] if k < T.SECONDARY_POS.shape[1] else -1
        for k in range(MNS_LEN):
            # Out-of-range differences are rejected before digits are looked up.
            DIGIT[k][i] = max(T.DIGITS[k, i], 0)
    for i in range(4):
        for k in range(TURNED_BITS):
            TURN_SOURCE[i][k] = T.TURN_SOURCE[i, k]
            TURN_INVERT[i][k] = T.TURN_INVERT[i, k]


_load_tables()


cdef inline int _delta(int64_t k) noexcept nogil:
    cdef int i
    cdef int d = DELTA_MIN
    for i in range(NSEQ):
        d += WEIGHT[i] * SEQ[i][k % SEQ_LEN[i]]
    return d


cdef inline int _rotation(int64_t k) noexcept nogil:
    """sum(delta(j) for j < k) % 63 from the prefix sums, in constant time."""
    cdef int i
    cdef int64_t total = DELTA_MIN * k
    for i in range(NSEQ):
        total += WEIGHT[i] * ((k // SEQ_LEN[i]) * TOTAL[i] + PREFIX[i][k % SEQ_LEN[i]])
    return <int> (total % MNS_LEN)


cdef inline int _mod63(int64_t a) noexcept nogil:
    cdef int64_t m = a % MNS_LEN
    return <int> (m + MNS_LEN if m < 0 else m)


cdef int64_t _coordinate(const int *starts, int n) noexcept nogil:
    """ext.lattice_ref.coordinate for n lines with MNS positions starts[0..n-1] (all >= 0)."""
    cdef int d[SIZE - 1]
    cdef int i, k, j, idx, mult, p
    cdef int64_t total = 0, x
    for k in range(n - 1):
        j = starts[k + 1] - starts[k]
        if j < 0:
            j += MNS_LEN
        if j < DELTA_MIN or j > DELTA_MAX:
            return -1
        d[k] = j
    for i in range(NSEQ):
        idx = 0
        mult = 1
        for k in range(SECONDARY_ORDER):
            idx += DIGIT[d[k]][i] * mult
            mult *= BASE[i]
        p = SECONDARY_POS[i][idx]
        if p < 0:
            return -1
        for k in range(SECONDARY_ORDER, n - 1):
            j = p + k
            if j >= SEQ_LEN[i]:
                j -= SEQ_LEN[i]
            if SEQ[i][j] != DIGIT[d[k]][i]:
                return -1
        total += p * CRT[i]
    x = total % PERIOD
    return x if x + n <= PERIOD else -1


cdef inline void _lines(const uint8_t *w, int size, int *columns, int *rows) noexcept nogil:
    """Pack each column's x-bits (top first) and each row's y-bits (left first)."""
    cdef int r, c, row
    for c in range(size):
        columns[c] = 0
    for r in range(size):
        row = 0
        for c in range(size):
            columns[c] |= w[0] << r
            row |= w[1] << c
            w += 2
        rows[r] = row


cdef inline int64_t _coordinate6(const int *lines) noexcept nogil:
    cdef int starts[ORDER]
    cdef int k
    for k in range(ORDER):
        starts[k] = POS6[lines[k]]
        if starts[k] < 0:
            return -1
    return _coordinate(starts, ORDER)


cdef void _decode_many(const uint8_t *w, Py_ssize_t n, int64_t *out) noexcept nogil:
    cdef int columns[ORDER]
    cdef int rows[ORDER]
    cdef int64_t x, y
    cdef Py_ssize_t i
    for i in range(n):
        _lines(w + i * (ORDER * ORDER * 2), ORDER, columns, rows)
        x = _coordinate6(columns)
        if x < 0:
            continue
        y = _coordinate6(rows)
        if y < 0:
            continue
        out[2 * i] = x
        out[2 * i + 1] = y


cdef int _section_part(const int *lines, int64_t first, int64_t other) noexcept nogil:
    """ext.lattice_ref._section_part: the u (or v) placing the lines, -1 if none does."""
    cdef int k, expected
    cdef int start = POS6[lines[0]]
    if start < 0:
        return -1
    expected = start
    for k in range(1, ORDER):
        expected += _delta(first + k - 1)
        if expected >= MNS_LEN:
            expected -= MNS_LEN
        if POS6[lines[k]] != expected:
            return -1
    return _mod63(start - other % MNS_LEN - _rotation(first))


cdef void _sections_many(
    const uint8_t *w, const int64_t *where, Py_ssize_t n, int64_t *out
) noexcept nogil:
    cdef int columns[ORDER]
    cdef int rows[ORDER]
    cdef int u, v
    cdef int64_t x, y
    cdef Py_ssize_t i
    for i in range(n):
        x = where[2 * i]
        y = where[2 * i + 1]
        if x < 0 or y < 0:
            continue
        _lines(w + i * (ORDER * ORDER * 2), ORDER, columns, rows)
        u = _section_part(columns, x, y)
        if u < 0:
            continue
        v = _section_part(rows, y, x)
        if v < 0:
            continue
        out[2 * i] = u
        out[2 * i + 1] = v


cdef int _axis_candidates(
    const int *lines, bint along_rows, int *flips, int64_t *coords
) noexcept nogil:
    """ext.lattice_ref._axis_candidates: fills flips/coords, returns how many."""
    cdef int starts[SIZE]
    cdef int k, j, fixed
    cdef int bad = -1
    cdef int count = 0
    cdef int64_t coord
    for k in range(SIZE):
        starts[k] = POS8[lines[k]]
        if starts[k] < 0:
            if bad >= 0:
                return 0
            bad = k
    if bad < 0:
        coord = _coordinate(starts, SIZE)
        if coord < 0:
            return 0
        flips[0] = -1
        coords[0] = coord
        return 1
    for j in range(SIZE):
        fixed = POS8[lines[bad] ^ (1 << j)]
        if fixed < 0:
            continue
        starts[bad] = fixed
        coord = _coordinate(starts, SIZE)
        if coord >= 0:
            flips[count] = bad * SIZE + j if along_rows else j * SIZE + bad
            coords[count] = coord
            count += 1
    return count


cdef int _explain(const int *columns, const int *rows, int64_t *x, int64_t *y) noexcept nogil:
    """ext.lattice_ref._explanations: how many positions (0, 1, or 2 for several) lie within
    one dot of the window whose lines these are; *x, *y is the first found."""
    cdef int x_flips[MAX_CANDIDATES]
    cdef int y_flips[MAX_CANDIDATES]
    cdef int64_t xs[MAX_CANDIDATES]
    cdef int64_t ys[MAX_CANDIDATES]
    cdef int nx, ny, a, b
    cdef int found = 0
    nx = _axis_candidates(columns, False, x_flips, xs)
    if nx == 0:
        return 0
    ny = _axis_candidates(rows, True, y_flips, ys)
    for a in range(nx):
        for b in range(ny):
            if x_flips[a] >= 0 and y_flips[b] >= 0 and x_flips[a] != y_flips[b]:
                continue
            if found == 0:
                found = 1
                x[0] = xs[a]
                y[0] = ys[b]
            elif xs[a] != x[0] or ys[b] != y[0]:
                return 2
    return found


cdef void _robust_many(const uint8_t *w, Py_ssize_t n, int64_t *out) noexcept nogil:
    cdef int columns[SIZE]
    cdef int rows[SIZE]
    cdef int64_t x, y
    cdef Py_ssize_t i
    for i in range(n):
        _lines(w + i * (SIZE * SIZE * 2), SIZE, columns, rows)
        if _explain(columns, rows, &x, &y) == 1:
            out[2 * i] = x
            out[2 * i + 1] = y


cdef int64_t _orientation(const uint8_t *w) noexcept nogil:
    """ext.lattice_ref.decode_rotations for one window."""
    cdef int columns[SIZE]
    cdef int rows[SIZE]
    cdef int k, j, bit
    cdef int64_t x, y
    cdef int64_t found = -1
    for k in range(4):
        for j in range(SIZE):
            columns[j] = 0
            rows[j] = 0
        # Bit j of the turned window is dot (j // 16, j // 2 % 8), x-bit if j is even.
        for j in range(TURNED_BITS):
            bit = w[TURN_SOURCE[k][j]] ^ TURN_INVERT[k][j]
            if j & 1:
                rows[j // (2 * SIZE)] |= bit << (j // 2 % SIZE)
            else:
                columns[j // 2 % SIZE] |= bit << (j // (2 * SIZE))
        if _explain(columns, rows, &x, &y) > 0:
            if found >= 0:
                return -1
            found = k
    return found


cdef void _line_starts(
    int64_t first, Py_ssize_t count, int offset, int *starts, int *mods
) noexcept nogil:
    """starts[k] = (offset + rotation(first + k)) % 63 and mods[k] = (first + k) % 63, walking
    the secondary sequences along so that only the first rotation needs prefix sums."""
    cdef int64_t residue[NSEQ]
    cdef int i, d
    cdef int s = (offset + _rotation(first)) % MNS_LEN
    cdef int m = first % MNS_LEN
    cdef Py_ssize_t k
    for i in range(NSEQ):
        residue[i] = first % SEQ_LEN[i]
    for k in range(count):
        starts[k] = s
        mods[k] = m
        d = DELTA_MIN
        for i in range(NSEQ):
            d += WEIGHT[i] * SEQ[i][residue[i]]
            residue[i] += 1
            if residue[i] == SEQ_LEN[i]:
                residue[i] = 0
        s += d
        if s >= MNS_LEN:
            s -= MNS_LEN
        m += 1
        if m == MNS_LEN:
            m = 0


def encode(height, width, x0, y0, section):
    """The bits (height, width, 2) uint8 of the dots x0 <= x < x0 + width, y0 <= y < y0 + height
    of section (u, v); time proportional to the area, whatever x0 and y0."""
    height, width, x0, y0, u, v = T.check_area(height, width, x0, y0, section)
    out = np.empty((height, width, 2), dtype=np.uint8)
    column_start = np.empty(width, dtype=np.intc)
    column_mod = np.empty(width, dtype=np.intc)
    row_start = np.empty(height, dtype=np.intc)
    row_mod = np.empty(height, dtype=np.intc)
    cdef uint8_t[:, :, ::1] o = out
    cdef int[::1] cs = column_start, cm = column_mod, rs = row_start, rm = row_mod
    cdef Py_ssize_t h = height, wd = width, r, c
    cdef int64_t first_x = x0, first_y = y0
    cdef int column_offset = u, row_offset = v
    if h == 0 or wd == 0:
        return out
    with nogil:
        _line_starts(first_x, wd, column_offset, &cs[0], &cm[0])
        _line_starts(first_y, h, row_offset, &rs[0], &rm[0])
        # x_bit = MNS[(u + rotation(x) + y) % 63], y_bit = MNS[(v + rotation(y) + x) % 63].
        for r in range(h):
            for c in range(wd):
                o[r, c, 0] = MNS2[cs[c] + rm[r]]
                o[r, c, 1] = MNS2[rs[r] + cm[c]]
    return out


def decode_positions(bits):
    """(x, y) int64 (N, 2) of the top-left dot of each 6x6 window (N, 6, 6, 2); -1, -1 where a
    window is not the pattern of any position."""
    cdef const uint8_t[:, :, :, ::1] windows = T.check_windows(bits, ORDER)
    cdef Py_ssize_t n = windows.shape[0]
    out = np.full((n, 2), -1, dtype=np.int64)
    cdef int64_t[:, ::1] o = out
    if n:
        with nogil:
            _decode_many(&windows[0, 0, 0, 0], n, &o[0, 0])
    return out


def decode_sections(bits, positions):
    """Section (u, v) int64 (N, 2) of each 6x6 window at its (x, y); -1, -1 where positions are
    -1 or the window is not the pattern of any section there."""
    cdef const uint8_t[:, :, :, ::1] windows = T.check_windows(bits, ORDER)
    cdef Py_ssize_t n = windows.shape[0]
    cdef const int64_t[:, ::1] where = T.check_positions(positions, n)
    out = np.full((n, 2), -1, dtype=np.int64)
    cdef int64_t[:, ::1] o = out
    if n:
        with nogil:
            _sections_many(&windows[0, 0, 0, 0], &where[0, 0], n, &o[0, 0])
    return out


def decode_rotations(bits8):
    """Quarter turns counter-clockwise (0..3) int64 (N,) each 8x8 window (N, 8, 8, 2) is
    rotated by; -1 if no orientation, or more than one, reads as the pattern."""
    cdef const uint8_t[:, :, :, ::1] windows = T.check_windows(bits8, SIZE)
    cdef Py_ssize_t n = windows.shape[0], i
    out = np.full(n, -1, dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        for i in range(n):
            o[i] = _orientation(&windows[i, 0, 0, 0])
    return out


def decode_robust(bits8):
    """(x, y) int64 (N, 2) of the top-left dot of each unrotated 8x8 window, read through one
    misread dot; -1, -1 unless exactly one position explains the window."""
    cdef const uint8_t[:, :, :, ::1] windows = T.check_windows(bits8, SIZE)
    cdef Py_ssize_t n = windows.shape[0]
    out = np.full((n, 2), -1, dtype=np.int64)
    cdef int64_t[:, ::1] o = out
    if n:
        with nogil:
            _robust_many(&windows[0, 0, 0, 0], n, &o[0, 0])
    return out
