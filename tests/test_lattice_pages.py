"""The page-addressing contract of protocol_specs/lattice.md."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from classink.lattice_pages import (
    CELL_DOTS,
    CELLS_PER_AXIS,
    PITCH_MM,
    SECTION_DOTS,
    PageAddress,
    dots_across,
    locate,
    locate_many,
    page_area,
    page_origin,
)

lattice_addresses = st.builds(
    PageAddress,
    section=st.integers(0, 62),
    owner=st.integers(0, 62),
    note=st.integers(0, CELLS_PER_AXIS - 1),
    page=st.integers(0, CELLS_PER_AXIS - 1),
)
wire_addresses = st.builds(
    PageAddress,
    section=st.integers(0, 255),
    owner=st.integers(0, 2**24 - 1),
    note=st.integers(0, 2**32 - 1),
    page=st.integers(0, 2**32 - 1),
)
in_cell = st.integers(0, CELL_DOTS - 1)


@given(lattice_addresses, in_cell, in_cell)
def test_origin_then_locate_gives_the_page_and_millimetres(
    address: PageAddress, i: int, j: int
) -> None:
    u, v, x0, y0 = page_origin(address)
    assert (u, v) == (address.section, address.owner)
    assert (x0, y0) == (address.note * CELL_DOTS, address.page * CELL_DOTS)
    found, x_mm, y_mm = locate(u, v, x0 + i, y0 + j)
    assert found == address
    assert x_mm == pytest.approx(i * PITCH_MM)
    assert y_mm == pytest.approx(j * PITCH_MM)


@given(lattice_addresses, in_cell, in_cell)
def test_locate_takes_the_codecs_numpy_integers(address: PageAddress, i: int, j: int) -> None:
    u, v, x0, y0 = page_origin(address)
    position = np.array([[x0 + i, y0 + j]], dtype=np.int64)
    section = np.array([[u, v]], dtype=np.int64)
    assert locate(*section[0], *position[0])[0] == address


@given(wire_addresses)
def test_address_text_round_trip(address: PageAddress) -> None:
    assert PageAddress.parse(str(address)) == address


def test_worked_example_of_the_spec() -> None:
    address = PageAddress.parse("3.27.1001.1")
    assert page_origin(address) == (3, 27, 1_025_024, 1024)
    assert locate(3, 27, 1_025_044, 1034) == (address, pytest.approx(6.0), pytest.approx(3.0))
    area = page_area(address, (210, 297))
    assert (area.width, area.height) == (700, 990)
    assert area.contains(3, 27, 1_025_044, 1034)
    assert not area.contains(3, 27, 1_025_024 + 700, 1034)


@pytest.mark.parametrize(
    ("length_mm", "dots"), [(210, 700), (297, 990), (215.9, 720), (279.4, 932), (307.2, 1024)]
)
def test_dots_across_a_page_edge(length_mm: float, dots: int) -> None:
    assert dots_across(length_mm) == dots


@pytest.mark.parametrize("length_mm", [0, -1, 307.5])
def test_page_edges_that_do_not_fit_a_cell(length_mm: float) -> None:
    with pytest.raises(ValueError, match="page"):
        dots_across(length_mm)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        (PageAddress(63, 0, 0, 0), "section and owner"),
        (PageAddress(0, 63, 0, 0), "section and owner"),
        (PageAddress(3, 27, CELLS_PER_AXIS, 0), "note and page"),
        (PageAddress(3, 27, 0, CELLS_PER_AXIS), "note and page"),
    ],
)
def test_addresses_the_lattice_cannot_print(address: PageAddress, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        page_origin(address)


@pytest.mark.parametrize(
    ("u", "v", "x", "y", "message"),
    [
        (63, 0, 0, 0, "not a lattice section"),
        (0, -1, 0, 0, "not a lattice section"),
        (3, 27, -1, -1, "could not decode"),
        (3, 27, SECTION_DOTS, 0, "outside a section"),
        (3, 27, 0, CELLS_PER_AXIS * CELL_DOTS, "holds no page"),
        (3, 27, 1.5, 0, "integers"),
    ],
)
def test_positions_that_are_no_page(u: int, v: int, x: int, y: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        locate(u, v, x, y)


@pytest.mark.parametrize("text", ["3.27.1001", "3.27.1001.1.2", "3.27.x.1", "", "3.-27.1.1"])
def test_unreadable_address_text(text: str) -> None:
    with pytest.raises(ValueError, match="section.owner.note.page"):
        PageAddress.parse(text)


@pytest.mark.parametrize(
    "fields", [(256, 0, 0, 0), (0, 2**24, 0, 0), (0, 0, 2**32, 0), (0, 0, 0, -1), (0, 0, 0, 1.0)]
)
def test_addresses_outside_the_pen_wire_fields(fields: tuple) -> None:
    with pytest.raises(ValueError, match="page address"):
        PageAddress(*fields)


positions = st.one_of(
    st.integers(-2, SECTION_DOTS + 2),
    st.integers(CELLS_PER_AXIS * CELL_DOTS - 2, CELLS_PER_AXIS * CELL_DOTS + 2),
    st.integers(0, 3 * CELL_DOTS),
)


@given(
    st.lists(
        st.tuples(
            st.integers(-1, 63),
            st.integers(-1, 63),
            positions,
            positions,
            st.floats(0, 0.999),
            st.floats(0, 0.999),
        ),
        max_size=20,
    )
)
def test_locating_many_positions_agrees_with_locating_each(rows):
    """The batch form the gateway uses for camera frames gives `locate`'s page, millimetres
    plus the fraction of a dot, and None exactly where `locate` refuses."""
    u, v, x, y, fx, fy = np.array(rows, dtype=np.float64).reshape(-1, 6).T
    got = locate_many(u, v, x + fx, y + fy)
    assert len(got) == len(rows)
    for (cu, cv, cx, cy, cfx, cfy), found in zip(rows, got, strict=True):
        try:
            address, x_mm, y_mm = locate(cu, cv, cx, cy)
        except ValueError:
            assert found is None
            continue
        assert found is not None and found[0] == address
        assert found[1] == pytest.approx(x_mm + cfx * PITCH_MM, abs=1e-6)
        assert found[2] == pytest.approx(y_mm + cfy * PITCH_MM, abs=1e-6)
