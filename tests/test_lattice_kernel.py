"""The Cython dot-pattern codec (ext.lattice) against its Python reference and the public vectors.

The conventions are pinned twice: by the 300 public vectors of an independent implementation,
and by a small encoder written here that sums the column rotations by brute force instead of
using the modules' prefix-sum tables.
"""

import json
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classink.shared_data import data_dir, read_jsonl
from ext import lattice, lattice_ref

SEQUENCES = json.loads((data_dir() / "lattice" / "anoto_sequences.json").read_text("utf-8"))
VECTORS = list(read_jsonl("lattice/vectors_public.jsonl"))
MNS = np.array(SEQUENCES["MNS"], dtype=np.uint8)
SECONDARY = [SEQUENCES[name] for name in ("A1", "A2", "A3", "A4")]
LENGTHS = [len(a) for a in SECONDARY]
PERIOD = int(np.prod(LENGTHS))

MODULES = [pytest.param(lattice, id="cython"), pytest.param(lattice_ref, id="ref")]


# --- an independent encoder, straight from the conventions ---------------------------------------

LIMIT = 100_000  # the brute-force rotations below reach this far: every A_i wraps many times


def _brute_rotations(limit: int) -> np.ndarray:
    k = np.arange(limit)
    delta = SEQUENCES["delta_min"] + sum(
        w * np.array(a)[k % len(a)]
        for w, a in zip(SEQUENCES["digit_weights"], SECONDARY, strict=True)
    )
    return np.concatenate([[0], np.cumsum(delta) % 63])


ROTATION = _brute_rotations(LIMIT)


def pattern(height: int, width: int, x0: int, y0: int, u: int, v: int) -> np.ndarray:
    """x_bit = MNS[u + rotation(x) + y], y_bit = MNS[v + rotation(y) + x], all mod 63."""
    x = x0 + np.arange(width)
    y = y0 + np.arange(height)
    x_bits = MNS[(u + ROTATION[x][None, :] + y[:, None]) % 63]
    y_bits = MNS[(v + ROTATION[y][:, None] + x[None, :]) % 63]
    return np.stack([x_bits, y_bits], axis=-1)


# Displacement of a dot as (x_bit, y_bit), and what a quarter turn counter-clockwise makes of it.
NORTH, WEST, EAST, SOUTH = (0, 0), (1, 0), (0, 1), (1, 1)
CCW = {NORTH: WEST, WEST: SOUTH, SOUTH: EAST, EAST: NORTH}


def turn_ccw(window: np.ndarray, quarters: int) -> np.ndarray:
    for _ in range(quarters):
        grid = np.rot90(window, 1, axes=(0, 1))
        window = np.array([[CCW[(int(a), int(b))] for a, b in row] for row in grid], np.uint8)
    return window


def misread(rng: np.random.Generator, window: np.ndarray) -> np.ndarray:
    """The window with one random dot turned into one of the three other displacements."""
    out = window.copy()
    r, c = rng.integers(0, window.shape[0], 2)
    others = [d for d in (NORTH, WEST, EAST, SOUTH) if d != tuple(out[r, c])]
    out[r, c] = others[rng.integers(0, 3)]
    return out


def explanations(window: np.ndarray) -> set[tuple[int, int]]:
    """Every position whose 8x8 pattern (of some section) is the window or one dot from it:
    brute force over all readings, each checked through its nine 6x6 sub-windows."""
    readings = [window]
    for r in range(8):
        for c in range(8):
            for d in (NORTH, WEST, EAST, SOUTH):
                if d != tuple(window[r, c]):
                    changed = window.copy()
                    changed[r, c] = d
                    readings.append(changed)
    found = set()
    for reading in readings:
        subs = np.array([reading[dr : dr + 6, dc : dc + 6] for dr in range(3) for dc in range(3)])
        positions = lattice.decode_positions(subs)
        sections = lattice.decode_sections(subs, positions)
        origins = {tuple(p) for p in positions - [(dc, dr) for dr in range(3) for dc in range(3)]}
        if (sections >= 0).all() and len(origins) == 1 and len({*map(tuple, sections)}) == 1:
            found.add(tuple(int(k) for k in origins.pop()))
    return found


def _windows(
    places: list[tuple[int, int, int, int]], size: int, encode: Callable = lattice.encode
) -> np.ndarray:
    return np.array([encode(size, size, x, y, (u, v)) for x, y, u, v in places], dtype=np.uint8)


# Coordinates anywhere, near the top of the range, and around wrap points of each A_i.
coordinate = st.one_of(
    st.integers(0, PERIOD - 8),
    st.integers(PERIOD - 40, PERIOD - 8),
    st.builds(
        lambda n, q, d: max(q * n + d, 0),
        st.sampled_from(LENGTHS),
        st.integers(1, 1_000_000),
        st.integers(-8, 3),
    ),
)
section = st.integers(0, 62)
place = st.tuples(coordinate, coordinate, section, section)


# --- public vectors -------------------------------------------------------------------------------


def test_independent_encoder_reproduces_public_vectors() -> None:
    for vector in VECTORS:
        bits = pattern(6, 6, vector["x"], vector["y"], vector["u"], vector["v"])
        assert bits.ravel().tolist() == vector["bits6"]
        window8 = pattern(8, 8, vector["x"], vector["y"], vector["u"], vector["v"])
        assert turn_ccw(window8, vector["rot_ccw"]).ravel().tolist() == vector["rot8"]


@pytest.mark.parametrize("module", MODULES)
def test_public_vectors_decode(module: ModuleType) -> None:
    bits = np.array([v["bits6"] for v in VECTORS]).reshape(-1, 6, 6, 2)
    positions = module.decode_positions(bits)
    assert positions.dtype == np.int64
    assert positions.tolist() == [[v["x"], v["y"]] for v in VECTORS]
    assert module.decode_sections(bits, positions).tolist() == [[v["u"], v["v"]] for v in VECTORS]
    bits8 = np.array([v["rot8"] for v in VECTORS]).reshape(-1, 8, 8, 2)
    assert module.decode_rotations(bits8).tolist() == [v["rot_ccw"] for v in VECTORS]


@pytest.mark.parametrize("module", MODULES)
def test_public_vectors_encode(module: ModuleType) -> None:
    for v in VECTORS:
        bits = module.encode(6, 6, v["x"], v["y"], (v["u"], v["v"]))
        assert bits.dtype == np.uint8 and bits.shape == (6, 6, 2)
        assert bits.ravel().tolist() == v["bits6"]


# --- encoder --------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(0, LIMIT - 40),
    st.integers(0, LIMIT - 40),
    section,
    section,
)
def test_encode_matches_independent_encoder(
    height: int, width: int, x0: int, y0: int, u: int, v: int
) -> None:
    assert np.array_equal(
        lattice.encode(height, width, x0, y0, (u, v)), pattern(height, width, x0, y0, u, v)
    )


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10), st.integers(0, 10), coordinate, coordinate, section, section)
def test_encode_kernel_matches_reference(
    height: int, width: int, x0: int, y0: int, u: int, v: int
) -> None:
    x0, y0 = min(x0, PERIOD - width), min(y0, PERIOD - height)
    bits = lattice.encode(height, width, x0, y0, (u, v))
    assert np.array_equal(bits, lattice_ref.encode(height, width, x0, y0, (u, v)))


def test_encode_reaches_the_end_of_the_range() -> None:
    bits = lattice.encode(8, 8, PERIOD - 8, PERIOD - 8, (62, 0))
    assert np.array_equal(bits, lattice_ref.encode(8, 8, PERIOD - 8, PERIOD - 8, (62, 0)))
    corner = bits[2:, 2:][None]
    assert lattice.decode_positions(corner).tolist() == [[PERIOD - 6, PERIOD - 6]]
    assert lattice.decode_sections(corner, [[PERIOD - 6, PERIOD - 6]]).tolist() == [[62, 0]]


# --- decoders on clean windows --------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(place, min_size=1, max_size=12))
def test_round_trip(places: list[tuple[int, int, int, int]]) -> None:
    truth = [[x, y] for x, y, _, _ in places]
    sections = [[u, v] for _, _, u, v in places]
    bits = _windows(places, 6)
    for module in (lattice, lattice_ref):
        positions = module.decode_positions(bits)
        assert positions.tolist() == truth
        assert module.decode_sections(bits, positions).tolist() == sections
    bits8 = _windows(places, 8)
    assert lattice.decode_robust(bits8).tolist() == truth
    assert lattice_ref.decode_robust(bits8).tolist() == truth
    quarters = [(x + y) % 4 for x, y, _, _ in places]
    turned = np.array([turn_ccw(w, k) for w, k in zip(bits8, quarters, strict=True)])
    assert lattice.decode_rotations(turned).tolist() == quarters
    assert lattice_ref.decode_rotations(turned).tolist() == quarters


def test_random_bits_are_refused_or_right() -> None:
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2, size=(20_000, 6, 6, 2), dtype=np.uint8)
    positions = lattice.decode_positions(bits)
    assert np.array_equal(lattice_ref.decode_positions(bits[:2_000]), positions[:2_000])
    sections = lattice.decode_sections(bits, positions)
    decoded = np.flatnonzero(positions[:, 0] >= 0)
    # Six dots a line carry almost no redundancy, so many random windows are real positions.
    assert len(decoded) > 1_000
    assert ((positions < 0) == (sections < 0)).all()
    for n in decoded:
        (x, y), (u, v) = positions[n], sections[n]
        assert np.array_equal(lattice.encode(6, 6, x, y, (u, v)), bits[n])


def test_sections_refuse_positions_that_do_not_fit() -> None:
    rng = np.random.default_rng(8)
    places = [(int(rng.integers(0, PERIOD - 7)), int(rng.integers(0, PERIOD - 7)), 5, 9)] * 4
    bits = _windows(places, 6)
    x, y = places[0][:2]
    given_positions = [[x, y], [x + 1, y], [x, y + 1], [-1, -1]]
    for module in (lattice, lattice_ref):
        assert module.decode_sections(bits, given_positions).tolist() == [[5, 9]] + [[-1, -1]] * 3
    random_bits = rng.integers(0, 2, size=(3_000, 6, 6, 2), dtype=np.uint8)
    random_positions = rng.integers(-1, PERIOD - 6, size=(3_000, 2))
    assert np.array_equal(
        lattice.decode_sections(random_bits, random_positions),
        lattice_ref.decode_sections(random_bits, random_positions),
    )


# --- one misread dot ------------------------------------------------------------------------------


def _noisy_windows(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    places = [
        (
            *(int(k) for k in rng.integers(0, PERIOD - 8, 2)),
            *(int(k) for k in rng.integers(0, 63, 2)),
        )
        for _ in range(count)
    ]
    clean = _windows(places, 8)
    return np.array([misread(rng, w) for w in clean]), np.array([p[:2] for p in places])


def test_robust_never_wrong_and_refuses_only_real_ties() -> None:
    noisy, truth = _noisy_windows(4_000, seed=11)
    got = lattice.decode_robust(noisy)
    assert np.array_equal(lattice_ref.decode_robust(noisy[:500]), got[:500])
    correct = (got == truth).all(axis=1)
    refused = (got == -1).all(axis=1)
    assert (correct | refused).all()
    # One misread dot is ambiguous in about 1.5% of windows: two positions' patterns (of other
    # sections) are then both one dot away, and no decoder can tell which was read.
    assert correct.mean() >= 0.98
    for window in noisy[refused]:
        assert len(explanations(window)) > 1


def test_robust_is_the_unique_explanation() -> None:
    noisy, _ = _noisy_windows(150, seed=12)
    for window, got in zip(noisy, lattice.decode_robust(noisy), strict=True):
        found = explanations(window)
        assert tuple(got) == (found.pop() if len(found) == 1 else (-1, -1))


def test_rotations_read_through_one_misread_dot() -> None:
    noisy, _ = _noisy_windows(600, seed=13)
    quarters = np.arange(len(noisy)) % 4
    turned = np.array([turn_ccw(w, int(k)) for w, k in zip(noisy, quarters, strict=True)])
    assert lattice.decode_rotations(turned).tolist() == quarters.tolist()
    assert lattice_ref.decode_rotations(turned[:200]).tolist() == quarters[:200].tolist()


def test_random_bits8_agree_with_reference() -> None:
    rng = np.random.default_rng(14)
    bits = rng.integers(0, 2, size=(2_000, 8, 8, 2), dtype=np.uint8)
    assert np.array_equal(lattice.decode_robust(bits), lattice_ref.decode_robust(bits))
    assert np.array_equal(lattice.decode_rotations(bits), lattice_ref.decode_rotations(bits))
    assert (lattice.decode_rotations(bits) == -1).all()


# --- inputs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULES)
def test_other_integer_dtypes_and_layouts(module: ModuleType) -> None:
    bits = _windows([(10, 20, 3, 4), (PERIOD - 8, 99, 62, 0)], 8)
    expected = module.decode_robust(bits).tolist()
    assert expected == [[10, 20], [PERIOD - 8, 99]]
    for variant in (bits.astype(bool), bits.astype(np.int64), bits.astype(np.int8)):
        assert module.decode_robust(variant).tolist() == expected
    strided = np.zeros((2, 8, 8, 4), dtype=np.uint8)
    strided[..., ::2] = bits
    assert module.decode_robust(strided[..., ::2]).tolist() == expected
    assert module.decode_positions(bits[:, 1:7, 1:7].tolist()).tolist() == [
        [11, 21],
        [PERIOD - 7, 100],
    ]


@pytest.mark.parametrize("module", MODULES)
def test_empty_batches(module: ModuleType) -> None:
    assert module.decode_positions(np.zeros((0, 6, 6, 2), np.uint8)).shape == (0, 2)
    assert module.decode_sections(
        np.zeros((0, 6, 6, 2), np.uint8), np.zeros((0, 2), int)
    ).shape == (0, 2)
    assert module.decode_rotations(np.zeros((0, 8, 8, 2), np.uint8)).shape == (0,)
    assert module.decode_robust(np.zeros((0, 8, 8, 2), np.uint8)).shape == (0, 2)
    assert module.encode(0, 5, 0, 0, (0, 0)).shape == (0, 5, 2)


GOOD6 = np.zeros((1, 6, 6, 2), dtype=np.uint8)
BAD_BITS = [
    np.zeros((6, 6, 2), np.uint8),  # no batch axis
    np.zeros((1, 6, 6, 3), np.uint8),
    np.zeros((1, 8, 8, 2), np.uint8),
    np.zeros((1, 6, 6, 2), np.float64),
    np.full((1, 6, 6, 2), 2, np.uint8),
    np.full((1, 6, 6, 2), -1, np.int64),
    np.array([["a"] * 2] * 36).reshape(1, 6, 6, 2),
]


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("bits", BAD_BITS)
def test_bad_bits_raise(module: ModuleType, bits: np.ndarray) -> None:
    with pytest.raises(ValueError, match="bits"):
        module.decode_positions(bits)
    with pytest.raises(ValueError, match="bits"):
        module.decode_sections(bits, np.zeros((1, 2), np.int64))


@pytest.mark.parametrize("module", MODULES)
def test_bad_bits8_raise(module: ModuleType) -> None:
    for decode in (module.decode_rotations, module.decode_robust):
        with pytest.raises(ValueError, match="shape"):
            decode(GOOD6)
        with pytest.raises(ValueError, match="0 or 1"):
            decode(np.full((1, 8, 8, 2), 3, np.int32))


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize(
    "positions",
    [
        np.zeros((2, 2), np.int64),
        np.zeros((1, 3), np.int64),
        np.zeros((1, 2), np.float64),
        [[-2, 0]],
        [[0, PERIOD - 5]],
    ],
)
def test_bad_positions_raise(module: ModuleType, positions: object) -> None:
    with pytest.raises(ValueError, match="positions"):
        module.decode_sections(GOOD6, positions)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize(
    "args",
    [
        (-1, 6, 0, 0, (0, 0)),
        (6, -1, 0, 0, (0, 0)),
        (6, 6, -1, 0, (0, 0)),
        (6, 6, 0, -1, (0, 0)),
        (6, 6, PERIOD - 5, 0, (0, 0)),
        (6, 6, 0, PERIOD - 5, (0, 0)),
        (6, 6, 0, 0, (63, 0)),
        (6, 6, 0, 0, (0, -1)),
        (6, 6, 0, 0, (0, 0, 0)),
        (6, 6, 0, 0, 5),
        (6.0, 6, 0, 0, (0, 0)),
        (6, 6, 0, 0, (0.5, 0)),
    ],
)
def test_bad_areas_raise(module: ModuleType, args: tuple) -> None:
    with pytest.raises(ValueError):
        module.encode(*args)
