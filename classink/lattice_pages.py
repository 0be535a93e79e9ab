"""Page addresses on the position-coding dot lattice (protocol_specs/lattice.md).

The codec (`ext.lattice`) knows only sections (u, v) and dot positions (x, y); this module is the
contract that ties those to the pen-wire page address `section.owner.note.page` and to millimetres
on the printed page, both ways.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

PITCH_MM = 0.3
SECTION_DOTS = 236 * 233 * 31 * 241  # the codec's period: dots per section axis
SECTION_MAX = 62  # sections (u, v) run 0..62 on each axis
CELL_DOTS = 1024  # a page's square cell, 307.2 mm: any A4 or Letter page fits
CELLS_PER_AXIS = SECTION_DOTS // CELL_DOTS  # notes and pages per section; the rest is unused

# The pen-wire PaperInfo field widths (pen-wire.md §3.2) bound any page address.
_WIRE_LIMITS = {"section": 2**8, "owner": 2**24, "note": 2**32, "page": 2**32}


@dataclass(frozen=True, order=True)
class PageAddress:
    """A printed page: `section.owner.note.page`, as pens report it in PaperInfo."""

    section: int
    owner: int
    note: int
    page: int

    def __post_init__(self) -> None:
        for name, limit in _WIRE_LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
                raise ValueError(
                    f"page address {name} must be an integer 0..{limit - 1}, not {value!r}"
                )

    def __str__(self) -> str:
        return f"{self.section}.{self.owner}.{self.note}.{self.page}"

    @classmethod
    def parse(cls, text: str) -> PageAddress:
        """`"3.27.1001.1"` -> PageAddress(3, 27, 1001, 1)."""
        parts = text.strip().split(".")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise ValueError(
                f"page address {text!r} is not section.owner.note.page (four integers)"
            )
        return cls(*(int(p) for p in parts))


@dataclass(frozen=True)
class LatticeArea:
    """A rectangle of dots in one section: the pattern printed on one page."""

    u: int
    v: int
    x0: int
    y0: int
    width: int
    height: int

    def contains(self, u: int, v: int, x: int, y: int) -> bool:
        return (
            (u, v) == (self.u, self.v)
            and self.x0 <= x < self.x0 + self.width
            and self.y0 <= y < self.y0 + self.height
        )


def page_origin(address: PageAddress) -> tuple[int, int, int, int]:
    """(u, v, x0, y0): the section and the absolute position of the page's dot (0, 0)."""
    if address.section > SECTION_MAX or address.owner > SECTION_MAX:
        raise ValueError(
            f"page {address} cannot be printed on the lattice: section and owner become the "
            f"lattice section (u, v) and must both be 0..{SECTION_MAX}"
        )
    if address.note >= CELLS_PER_AXIS or address.page >= CELLS_PER_AXIS:
        raise ValueError(
            f"page {address} cannot be printed on the lattice: note and page must be "
            f"0..{CELLS_PER_AXIS - 1}"
        )
    return address.section, address.owner, address.note * CELL_DOTS, address.page * CELL_DOTS


def dots_across(length_mm: float) -> int:
    """How many dots a page edge of this length carries: those whose grid point i·pitch lies
    before the far edge. The small tolerance keeps 210 mm at 700 dots despite 210 / 0.3 being
    700.0000000000001 in floating point."""
    if not length_mm > 0:
        raise ValueError(f"page length must be positive, not {length_mm} mm")
    count = math.ceil(length_mm / PITCH_MM - 1e-6)
    if count > CELL_DOTS:
        raise ValueError(
            f"a page edge of {length_mm} mm is longer than a page cell "
            f"({CELL_DOTS} dots, {CELL_DOTS * PITCH_MM:.1f} mm)"
        )
    return count


def page_area(address: PageAddress, size_mm: tuple[float, float]) -> LatticeArea:
    """The dots printed on a page of this size (width, height in mm) at this address."""
    u, v, x0, y0 = page_origin(address)
    return LatticeArea(u, v, x0, y0, dots_across(size_mm[0]), dots_across(size_mm[1]))


def locate(u: int, v: int, x: int, y: int) -> tuple[PageAddress, float, float]:
    """From a decoded section and position to (page address, x mm, y mm) on that page.

    (x, y) is a dot's absolute position, e.g. the top-left dot of the window the pen read; the
    millimetres are that dot's grid point measured from the page's top-left corner.
    """
    try:
        # operator.index also takes the numpy integers of the codec's arrays, never floats.
        u, v, x, y = (operator.index(n) for n in (u, v, x, y))
    except TypeError as error:
        raise ValueError(f"lattice section and position must be integers: {error}") from error
    if not (0 <= u <= SECTION_MAX and 0 <= v <= SECTION_MAX):
        raise ValueError(
            f"section ({u}, {v}) is not a lattice section: u and v are 0..{SECTION_MAX}"
        )
    if not (0 <= x < SECTION_DOTS and 0 <= y < SECTION_DOTS):
        raise ValueError(
            f"position ({x}, {y}) is outside a section (0..{SECTION_DOTS - 1}); "
            "-1 means the codec could not decode the window"
        )
    note, i = divmod(x, CELL_DOTS)
    page, j = divmod(y, CELL_DOTS)
    if note >= CELLS_PER_AXIS or page >= CELLS_PER_AXIS:
        raise ValueError(
            f"position ({x}, {y}) lies in the strip at the section's edge that holds no page "
            f"(pages end at {CELLS_PER_AXIS * CELL_DOTS} dots)"
        )
    return PageAddress(u, v, note, page), i * PITCH_MM, j * PITCH_MM


def locate_many(
    u: np.ndarray, v: np.ndarray, x: np.ndarray, y: np.ndarray
) -> list[tuple[PageAddress, float, float] | None]:
    """`locate` for many positions at once, with fractional (x, y): each is the page and the
    millimetres of that point, or None where `locate` would refuse its dot. The camera pens'
    frames come a few hundred a poll round; per frame in Python this was most of their cost."""
    u, v = np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dot_x, dot_y = np.floor(x), np.floor(y)
    note, i = np.divmod(dot_x, CELL_DOTS)
    page, j = np.divmod(dot_y, CELL_DOTS)
    valid = (
        (u >= 0) & (u <= SECTION_MAX) & (v >= 0) & (v <= SECTION_MAX)
        & (dot_x >= 0) & (dot_x < SECTION_DOTS) & (dot_y >= 0) & (dot_y < SECTION_DOTS)
        & (note < CELLS_PER_AXIS) & (page < CELLS_PER_AXIS)
    )  # fmt: skip
    x_mm = i * PITCH_MM + (x - dot_x) * PITCH_MM
    y_mm = j * PITCH_MM + (y - dot_y) * PITCH_MM
    addresses: dict[tuple[int, int, int, int], PageAddress] = {}
    out: list[tuple[PageAddress, float, float] | None] = []
    for k, ok in enumerate(valid.tolist()):
        if not ok:
            out.append(None)
            continue
        key = (int(u[k]), int(v[k]), int(note[k]), int(page[k]))
        address = addresses.get(key)
        if address is None:
            address = addresses[key] = PageAddress(*key)
        out.append((address, float(x_mm[k]), float(y_mm[k])))
    return out
