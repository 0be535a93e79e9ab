"""Plain-Python reference of the position-coding dot pattern (Anoto-style lattice).

`ext/lattice.pyx` must return exactly what this module returns for every input: this is the
readable statement of the scheme, and the baseline the kernel is benchmarked against. The
conventions are stated in ext/lattice_tables.py.

Windows are uint8 arrays (N, rows, columns, 2); the last axis is (x_bit, y_bit) of a dot, whose
displacement is north (0, 0), west (1, 0), east (0, 1) or south (1, 1). Row r, column c of a
window whose top-left dot is at (x, y) is the dot at (x + c, y + r).
"""

from itertools import pairwise

import numpy as np

from ext.lattice_tables import (
    BASES,
    CRT,
    DELTA_MAX,
    DELTA_MIN,
    DIGITS,
    MNS,
    MNS_LEN,
    MNS_POS6,
    MNS_POS8,
    ORDER,
    PERIOD,
    PREFIX,
    ROBUST_SIZE,
    SECONDARY,
    SECONDARY_LEN,
    SECONDARY_ORDER,
    SECONDARY_POS,
    TOTAL,
    WEIGHTS,
    check_area,
    check_positions,
    check_windows,
)

Flip = int  # a dot's index row * ROBUST_SIZE + column within a window, -1 for none


def rotation(k: int) -> int:
    """How far column (row) k's MNS is rotated: sum(delta(j) for j < k) % 63, where
    delta(j) = delta_min + sum_i weight_i * A_i[j % len(A_i)]; in constant time from the
    secondary sequences' prefix sums."""
    total = DELTA_MIN * k
    for i, n in enumerate(SECONDARY_LEN.tolist()):
        whole, part = divmod(k, n)
        total += int(WEIGHTS[i]) * (whole * int(TOTAL[i]) + int(PREFIX[i, part]))
    return total % MNS_LEN


def encode(height: int, width: int, x0: int, y0: int, section: tuple[int, int]) -> np.ndarray:
    """The bits (height, width, 2) of the dots x0 <= x < x0 + width, y0 <= y < y0 + height."""
    height, width, x0, y0, u, v = check_area(height, width, x0, y0, section)
    out = np.empty((height, width, 2), dtype=np.uint8)
    column_start = [(u + rotation(x0 + c) + y0) % MNS_LEN for c in range(width)]
    row_start = [(v + rotation(y0 + r) + x0) % MNS_LEN for r in range(height)]
    for r in range(height):
        for c in range(width):
            out[r, c, 0] = MNS[(column_start[c] + r) % MNS_LEN]
            out[r, c, 1] = MNS[(row_start[r] + c) % MNS_LEN]
    return out


def _pack(line: np.ndarray) -> int:
    return sum(int(b) << j for j, b in enumerate(line))


def _columns(window: np.ndarray) -> list[int]:
    """Packed x-bits of each column, top to bottom."""
    return [_pack(window[:, c, 0]) for c in range(window.shape[1])]


def _rows(window: np.ndarray) -> list[int]:
    """Packed y-bits of each row, left to right."""
    return [_pack(window[r, :, 1]) for r in range(window.shape[0])]


def coordinate(starts: list[int]) -> int:
    """The coordinate of the first of consecutive lines whose MNS positions are `starts`.

    -1 unless every neighbouring difference is in delta_min..delta_max and, for every secondary
    sequence, all the digits read form one window of it at the coordinate the CRT gives, which
    must leave room for all the lines below PERIOD.
    """
    if min(starts) < 0:
        return -1
    diffs = [(b - a) % MNS_LEN for a, b in pairwise(starts)]
    if not all(DELTA_MIN <= d <= DELTA_MAX for d in diffs):
        return -1
    total = 0
    for i, (seq, n, base) in enumerate(
        zip(SECONDARY, SECONDARY_LEN.tolist(), BASES.tolist(), strict=True)
    ):
        digits = [int(DIGITS[d, i]) for d in diffs]
        index = sum(digit * base**j for j, digit in enumerate(digits[:SECONDARY_ORDER]))
        start = int(SECONDARY_POS[i, index])
        if start < 0:
            return -1
        if any(int(seq[(start + j) % n]) != digit for j, digit in enumerate(digits)):
            return -1
        total += start * int(CRT[i])
    x = total % PERIOD
    return x if x + len(starts) <= PERIOD else -1


def decode_positions(bits: object) -> np.ndarray:
    """(x, y) of the top-left dot of each 6x6 window (N, 6, 6, 2); -1, -1 if undecodable."""
    windows = check_windows(bits, ORDER)
    out = np.full((len(windows), 2), -1, dtype=np.int64)
    for n, window in enumerate(windows):
        x = coordinate([int(MNS_POS6[v]) for v in _columns(window)])
        y = coordinate([int(MNS_POS6[v]) for v in _rows(window)])
        if x >= 0 and y >= 0:
            out[n] = x, y
    return out


def _section_part(starts: list[int], first: int, other: int) -> int:
    """The u (or v) that puts lines first, first + 1, ... at MNS positions `starts`, else -1.

    `other` is the coordinate along the lines: line k's dot at `other` has MNS position
    (u + rotation(first + k) + other) % 63.
    """
    if min(starts) < 0:
        return -1
    found = {(s - other - rotation(first + k)) % MNS_LEN for k, s in enumerate(starts)}
    return found.pop() if len(found) == 1 else -1


def decode_sections(bits: object, positions: object) -> np.ndarray:
    """Section (u, v) of each 6x6 window at its (x, y); -1, -1 where positions are -1 or the
    window is not the pattern of any section there."""
    windows = check_windows(bits, ORDER)
    where = check_positions(positions, len(windows))
    out = np.full((len(windows), 2), -1, dtype=np.int64)
    for n, window in enumerate(windows):
        x, y = (int(k) for k in where[n])
        if x < 0 or y < 0:
            continue
        u = _section_part([int(MNS_POS6[v]) for v in _columns(window)], x, y)
        v = _section_part([int(MNS_POS6[v]) for v in _rows(window)], y, x)
        if u >= 0 and v >= 0:
            out[n] = u, v
    return out


def turn_clockwise(window: np.ndarray) -> np.ndarray:
    """The window turned a quarter clockwise: the grid, and each dot's displacement with it
    (north -> east -> south -> west), i.e. (x_bit, y_bit) -> (y_bit, 1 - x_bit)."""
    grid = np.rot90(window, -1, axes=(0, 1))
    return np.stack([grid[..., 1], 1 - grid[..., 0]], axis=-1)


def _axis_candidates(lines: list[int], along_rows: bool) -> list[tuple[Flip, int]]:
    """Every (flipped dot, coordinate) that reading at most one bit of `lines` wrongly explains.

    Distinct 8-bit MNS windows differ in at least two bits, so one wrong bit always leaves its
    line outside the MNS: a clean set of lines can only be read as is, and a set with one bad
    line only by flipping one of that line's bits.
    """
    starts = [int(MNS_POS8[v]) for v in lines]
    bad = [k for k, s in enumerate(starts) if s < 0]
    if not bad:
        coord = coordinate(starts)
        return [(-1, coord)] if coord >= 0 else []
    if len(bad) > 1:
        return []
    line = bad[0]
    out = []
    for j in range(ROBUST_SIZE):
        fixed = int(MNS_POS8[lines[line] ^ (1 << j)])
        if fixed < 0:
            continue
        coord = coordinate(starts[:line] + [fixed] + starts[line + 1 :])
        if coord >= 0:
            row, column = (line, j) if along_rows else (j, line)
            out.append((row * ROBUST_SIZE + column, coord))
    return out


def _explanations(window: np.ndarray) -> set[tuple[int, int]]:
    """Every position whose pattern (of some section) is `window` or one dot from it.

    x comes from the columns' x-bits and y from the rows' y-bits; a misread dot may have flipped
    either or both, but if both, then at the same dot.
    """
    xs = _axis_candidates(_columns(window), along_rows=False)
    ys = _axis_candidates(_rows(window), along_rows=True)
    return {(x, y) for fx, x in xs for fy, y in ys if fx < 0 or fy < 0 or fx == fy}


def decode_robust(bits8: object) -> np.ndarray:
    """(x, y) of the top-left dot of each unrotated 8x8 window, tolerating one misread dot.

    A position is reported only if it is the one position within one dot of the window; when
    two are (about 1.5% of windows with a misread dot), no decoder can tell which was printed.
    """
    windows = check_windows(bits8, ROBUST_SIZE)
    out = np.full((len(windows), 2), -1, dtype=np.int64)
    for n, window in enumerate(windows):
        found = _explanations(window)
        if len(found) == 1:
            out[n] = found.pop()
    return out


def decode_rotations(bits8: object) -> np.ndarray:
    """Quarter turns counter-clockwise (0..3) each 8x8 window is rotated by, -1 if unknown.

    Turned back clockwise that many times the window must be within one dot of the pattern at
    some position. A quarter turn makes the reversed complement of each column into a row, and
    no 8 bits of the MNS reversed and complemented are again 8 bits of it, so at most the true
    orientation qualifies.
    """
    windows = check_windows(bits8, ROBUST_SIZE)
    out = np.full(len(windows), -1, dtype=np.int64)
    for n, window in enumerate(windows):
        candidates = []
        turned = window
        for k in range(4):
            if _explanations(turned):
                candidates.append(k)
            turned = turn_clockwise(turned)
        if len(candidates) == 1:
            out[n] = candidates[0]
    return out
