"""Lookup tables and input checks shared by ext/lattice_ref.py and the kernel ext/lattice.pyx.

The tables are built once from the shared data set `lattice/anoto_sequences.json` (never copied
into the repository). Conventions, all verified against `lattice/vectors_public.jsonl`:

- A dot at (x, y) in section (u, v) carries two bits (x_bit, y_bit):
      x_bit = MNS[(u + rotation(x) + y) % 63]      read down column x
      y_bit = MNS[(v + rotation(y) + x) % 63]      read along row y
  where rotation(k) = sum of delta(j) for j < k, modulo 63.
- delta(j) = delta_min + sum_i weight_i * A_i[j % len(A_i)], in delta_min..delta_max; the same
  secondary sequences A1, A2, A3, A4 serve both axes.
- So neighbouring columns' MNS positions differ by delta(x) (later column minus earlier, mod 63),
  whose digits delta - delta_min = a1 + 3 a2 + 9 a3 + 18 a4 are read off A_i at x; five
  consecutive digits locate x modulo len(A_i), and the Chinese remainder theorem gives x.

Lines (a column's x-bits top to bottom, a row's y-bits left to right) are packed into integers
with the first dot in bit 0.
"""

import json
import operator
from math import prod

import numpy as np

from classink.shared_data import data_dir

ORDER = 6  # of the MNS: six dots along a line locate it
SECONDARY_ORDER = 5  # of the secondary sequences: five differences locate a coordinate
ROBUST_SIZE = 8  # side of the windows decode_robust and decode_rotations read

_SEQUENCES = json.loads((data_dir() / "lattice" / "anoto_sequences.json").read_text("utf-8"))

MNS = np.array(_SEQUENCES["MNS"], dtype=np.uint8)
MNS_LEN = len(MNS)
SECONDARY = [np.array(_SEQUENCES[name], dtype=np.int64) for name in ("A1", "A2", "A3", "A4")]
SECONDARY_LEN = np.array([len(a) for a in SECONDARY], dtype=np.int64)
WEIGHTS = np.array(_SEQUENCES["digit_weights"], dtype=np.int64)
DELTA_MIN = int(_SEQUENCES["delta_min"])
DELTA_MAX = int(_SEQUENCES["delta_max"])

# Each digit's base is the ratio of neighbouring weights; the last one's follows from the range.
BASES = np.append(WEIGHTS[1:] // WEIGHTS[:-1], (DELTA_MAX - DELTA_MIN) // WEIGHTS[-1] + 1)
# Coordinates repeat after the product of the secondary lengths (pairwise coprime).
PERIOD = prod(len(a) for a in SECONDARY)


def _mns_positions(length: int) -> np.ndarray:
    """Packed `length`-dot line -> the MNS position it starts at, -1 if it is no MNS window."""
    table = np.full(1 << length, -1, dtype=np.int64)
    for p in range(MNS_LEN):
        value = sum(int(MNS[(p + j) % MNS_LEN]) << j for j in range(length))
        if table[value] != -1:
            raise ValueError(f"MNS repeats a {length}-dot window at {p}")
        table[value] = p
    return table


def _secondary_positions() -> np.ndarray:
    """(4, 3**5): a sequence's 5-digit window, digit j times base**j -> its start, or -1."""
    table = np.full((len(SECONDARY), int(BASES.max()) ** SECONDARY_ORDER), -1, dtype=np.int64)
    for i, (seq, base) in enumerate(zip(SECONDARY, BASES, strict=True)):
        if seq.min() < 0 or seq.max() >= base:
            raise ValueError(f"A{i + 1} has digits outside 0..{base - 1}")
        n = len(seq)
        for p in range(n):
            index = sum(int(seq[(p + j) % n]) * int(base) ** j for j in range(SECONDARY_ORDER))
            if table[i, index] != -1:
                raise ValueError(f"A{i + 1} repeats a {SECONDARY_ORDER}-digit window at {p}")
            table[i, index] = p
    return table


def _crt_coefficients() -> np.ndarray:
    """e_i with e_i = 1 mod len(A_i) and 0 mod the others: x = sum(r_i * e_i) mod PERIOD."""
    out = []
    for n in SECONDARY_LEN.tolist():
        rest = PERIOD // n
        out.append(rest * pow(rest, -1, n) % PERIOD)
    return np.array(out, dtype=np.int64)


MNS_POS6 = _mns_positions(ORDER)
MNS_POS8 = _mns_positions(ROBUST_SIZE)
SECONDARY_POS = _secondary_positions()
CRT = _crt_coefficients()
# PREFIX[i, k] = sum of A_i[:k], zero-padded past len(A_i); TOTAL[i] = sum of all of A_i.
PREFIX = np.zeros((len(SECONDARY), int(SECONDARY_LEN.max()) + 1), dtype=np.int64)
for _i, _seq in enumerate(SECONDARY):
    PREFIX[_i, 1 : len(_seq) + 1] = np.cumsum(_seq)
TOTAL = np.array([int(a.sum()) for a in SECONDARY], dtype=np.int64)
# DIGITS[d, i]: digit i of difference d (0..62), or -1 where d is outside delta_min..delta_max.
DIGITS = np.full((MNS_LEN, len(SECONDARY)), -1, dtype=np.int64)
for _d in range(DELTA_MIN, DELTA_MAX + 1):
    DIGITS[_d] = (_d - DELTA_MIN) // WEIGHTS % BASES


# --- input checks, shared so that kernel and reference reject exactly the same inputs -----------


def check_windows(bits: object, size: int) -> np.ndarray:
    """`bits` as a C-contiguous uint8 array (N, size, size, 2) of 0/1, or ValueError."""
    array = np.asarray(bits)
    if array.dtype != np.bool_ and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"bits must be an integer or bool array, not {array.dtype}")
    if array.ndim != 4 or array.shape[1:] != (size, size, 2):
        raise ValueError(f"bits must have shape (N, {size}, {size}, 2), not {array.shape}")
    if array.size and array.dtype != np.bool_ and (array.min() < 0 or array.max() > 1):
        raise ValueError("bits must be 0 or 1")
    return np.ascontiguousarray(array, dtype=np.uint8)


def check_positions(positions: object, count: int) -> np.ndarray:
    """`positions` as C-contiguous int64 (count, 2): each row -1s or a decodable 6x6 origin."""
    array = np.asarray(positions)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"positions must be an integer array, not {array.dtype}")
    if array.shape != (count, 2):
        raise ValueError(f"positions must have shape ({count}, 2), not {array.shape}")
    array = np.ascontiguousarray(array, dtype=np.int64)
    ok = ((array >= 0) & (array <= PERIOD - ORDER)) | (array == -1)
    if not ok.all():
        raise ValueError(f"positions must be -1 or in 0..{PERIOD - ORDER}")
    return array


def check_area(
    height: int, width: int, x0: int, y0: int, section: tuple[int, int]
) -> tuple[int, int, int, int, int, int]:
    """The integers of an encode request, or ValueError if the area or section is out of range."""
    try:
        height, width, x0, y0 = (operator.index(v) for v in (height, width, x0, y0))
        u, v = (operator.index(s) for s in section)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"height, width, x0, y0 and section (u, v) must be integers: {error}"
        ) from error
    if height < 0 or width < 0:
        raise ValueError(f"height and width must be >= 0, not {height}, {width}")
    for name, start, extent in (("x", x0, width), ("y", y0, height)):
        if start < 0 or start + extent > PERIOD:
            raise ValueError(f"{name} range {start}..{start + extent} is outside 0..{PERIOD}")
    if not (0 <= u < MNS_LEN and 0 <= v < MNS_LEN):
        raise ValueError(f"section (u, v) must be in 0..{MNS_LEN - 1}, not ({u}, {v})")
    return height, width, x0, y0, u, v


def _turn_maps() -> tuple[np.ndarray, np.ndarray]:
    """Where each bit of an 8x8 window turned clockwise k times (k = 0..3) comes from.

    turned[k].flat[j] == window.flat[SOURCE[k, j]] ^ INVERT[k, j]: the grid turns clockwise and
    each displacement with it, (x_bit, y_bit) -> (y_bit, 1 - x_bit).
    """
    source = np.arange(ROBUST_SIZE * ROBUST_SIZE * 2).reshape(ROBUST_SIZE, ROBUST_SIZE, 2)
    invert = np.zeros_like(source)
    sources, inverts = [], []
    for _ in range(4):
        sources.append(source.ravel())
        inverts.append(invert.ravel())
        source, invert = (np.rot90(a, -1, axes=(0, 1)) for a in (source, invert))
        source = np.stack([source[..., 1], source[..., 0]], axis=-1)
        invert = np.stack([invert[..., 1], 1 - invert[..., 0]], axis=-1)
    return np.array(sources, dtype=np.int64), np.array(inverts, dtype=np.int64)


TURN_SOURCE, TURN_INVERT = _turn_maps()
