"""Lattice-camera frames → page addresses and millimetres, decoded a batch at a time.

A lattice pen reports what its camera saw (pen-wire.md §3.3). Here the frames of one read are
turned upright, located with the codec kernel (which refuses rather than guesses), assigned to a
page (lattice.md), and rewritten as the PaperInfo and Dot events a coordinate pen would have sent,
so everything downstream handles both kinds of pen the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from classink.lattice_pages import PageAddress, locate_many
from ext import lattice
from ext.lattice_tables import (
    DELTA_MIN,
    MNS_LEN,
    MNS_POS8,
    PREFIX,
    ROBUST_SIZE,
    SECONDARY_LEN,
    TOTAL,
    WEIGHTS,
)
from firmware_bridge.events import Dot, Event, LatticeFrame, PaperInfo, PenDown, Rejected
from gateway.strokes import PEN_UNIT_MM

# Displacement code (x_bit + 2 y_bit: north 0, west 1, east 2, south 3) after a clockwise
# quarter turn: the inverse of what the pen's rotation did (north→west→south→east→north).
CLOCKWISE = np.array([2, 0, 3, 1], dtype=np.uint8)
LINE = 1 << np.arange(ROBUST_SIZE, dtype=np.int64)
OFFSETS = np.arange(ROBUST_SIZE, dtype=np.int64)
# One misread dot spoils one column and one row; five of eight lines agreeing is a clear majority.
SECTION_QUORUM = 5
LAST = ROBUST_SIZE - 1


def unturn(bits: np.ndarray, turns: np.ndarray, nib: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows and nib offsets turned back upright by `turns` clockwise quarter turns each."""
    codes = bits[..., 0] + 2 * bits[..., 1]
    nib = nib.copy()
    for k in (1, 2, 3):
        sel = turns == k
        if not sel.any():
            continue
        c, p = codes[sel], nib[sel]
        for _ in range(k):
            c = CLOCKWISE[np.rot90(c, -1, axes=(1, 2))]
            p = np.column_stack([LAST - p[:, 1], p[:, 0]])
        codes[sel], nib[sel] = c, p
    return np.stack([codes & 1, codes >> 1], axis=-1).astype(np.uint8), nib


def rotation(k: np.ndarray) -> np.ndarray:
    """How far the main sequence is rotated at column (row) k: prefix sums, no loop over k."""
    total = DELTA_MIN * k
    for i, n in enumerate(SECONDARY_LEN.tolist()):
        whole, part = np.divmod(k, n)
        total = total + WEIGHTS[i] * (whole * TOTAL[i] + PREFIX[i][part])
    return total % MNS_LEN


def _vote(starts: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per window, the section part most lines agree on, or -1 without a quorum."""
    parts = (starts - expected) % MNS_LEN
    counts = np.zeros((len(starts), MNS_LEN), dtype=np.int64)
    rows, cols = np.nonzero(starts >= 0)
    np.add.at(counts, (rows, parts[rows, cols]), 1)
    best = counts.argmax(axis=1)
    return np.where(counts.max(axis=1) >= SECTION_QUORUM, best, -1)


def sections(upright: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Section (u, v) of 8×8 windows at known positions, robust to one misread dot."""
    x, y = positions[:, :1], positions[:, 1:]
    columns = MNS_POS8[(upright[..., 0].astype(np.int64) * LINE[None, :, None]).sum(axis=1)]
    rows = MNS_POS8[(upright[..., 1].astype(np.int64) * LINE[None, None, :]).sum(axis=2)]
    u = _vote(columns, rotation(x + OFFSETS) + y)
    v = _vote(rows, rotation(y + OFFSETS) + x)
    bad = (positions[:, 0] < 0) | (u < 0) | (v < 0)
    return np.where(bad[:, None], -1, np.column_stack([u, v]))


def decode(frames: Sequence[LatticeFrame]) -> list[tuple[PageAddress, float, float] | None]:
    """Each frame's page and nib position in millimetres, or None where it cannot be sure."""
    n = len(frames)
    raw = np.frombuffer(b"".join(f.window for f in frames), dtype=np.uint8).reshape(n, 16)
    bits = np.unpackbits(raw, axis=1, bitorder="little").reshape(n, ROBUST_SIZE, ROBUST_SIZE, 2)
    nib = np.array([(f.nib_x, f.nib_y) for f in frames], dtype=np.float64)
    turns = lattice.decode_rotations(bits)
    upright, nib = unturn(bits, turns, nib)
    positions = lattice.decode_robust(upright)
    positions[turns < 0] = -1
    found = sections(upright, positions)
    where = positions + nib
    return locate_many(found[:, 0], found[:, 1], where[:, 0], where[:, 1])


def as_coordinate_events(reads: list[list[Event]]) -> list[list[Event]]:
    """The same reads with every LatticeFrame replaced by PaperInfo (on a new page) and a Dot.

    All reads of a poll round are decoded in one batch: a pen's read holds a few frames, and
    the numpy work per batch costs about as much for three frames as for three hundred."""
    framed = [any(isinstance(e, LatticeFrame) for e in events) for events in reads]
    if not any(framed):
        return reads
    frames = [
        e
        for events, has in zip(reads, framed, strict=True)
        if has
        for e in events
        if isinstance(e, LatticeFrame)
    ]
    decoded = iter(decode(frames))
    return [
        _rewritten(events, decoded) if has else events
        for events, has in zip(reads, framed, strict=True)
    ]


def _rewritten(
    events: list[Event], decoded: Iterator[tuple[PageAddress, float, float] | None]
) -> list[Event]:
    out: list[Event] = []
    page: PageAddress | None = None
    for e in events:
        if not isinstance(e, LatticeFrame):
            if isinstance(e, PenDown):
                page = None  # every stroke states its page, as a coordinate pen's does
            out.append(e)
            continue
        where = next(decoded)
        if where is None:
            out.append(Rejected("lattice_undecodable", "camera frame could not be located"))
            continue
        address, x_mm, y_mm = where
        if address != page:
            out.append(PaperInfo(address.section, address.owner, address.note, address.page))
            page = address
        out.append(
            Dot(x_mm / PEN_UNIT_MM, y_mm / PEN_UNIT_MM, e.force, e.dt_ms, e.tilt_x, e.tilt_y, 0)
        )
    return out
