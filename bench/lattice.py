"""Throughput and robustness of the dot-pattern decoder: Cython kernel against its reference.

python -m bench.lattice  prints a few lines and, last, one JSON object with the numbers.
Windows are cut at uniformly random positions of uniformly random sections by a vectorised
encoder written here from the conventions in ext/lattice_tables.py, so that the batch is not
made by the code under test. The robust decoder gets unrotated 8x8 windows in which one random
dot was replaced by one of the three other displacements.
"""

import json
import time
from collections.abc import Callable

import numpy as np

from ext import lattice, lattice_ref
from ext.lattice_tables import (
    DELTA_MIN,
    MNS,
    MNS_LEN,
    PERIOD,
    PREFIX,
    ROBUST_SIZE,
    SECONDARY_LEN,
    TOTAL,
    WEIGHTS,
)

WINDOWS = 1_000_000
REFERENCE_WINDOWS = 20_000
ROBUST_WINDOWS = 200_000
ENCODE_SIDE = 2_000
REPEATS = 3
CHUNK = 100_000


def _rotation(k: np.ndarray) -> np.ndarray:
    total = DELTA_MIN * k
    for i, n in enumerate(SECONDARY_LEN.tolist()):
        total = total + WEIGHTS[i] * ((k // n) * TOTAL[i] + PREFIX[i, k % n])
    return total % MNS_LEN


def random_windows(
    rng: np.random.Generator, count: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """`count` windows (size, size, 2) at random places of random sections, and their (x, y)."""
    bits = np.empty((count, size, size, 2), dtype=np.uint8)
    where = rng.integers(0, PERIOD - size + 1, size=(count, 2))
    sections = rng.integers(0, MNS_LEN, size=(count, 2))
    step = np.arange(size)
    for start in range(0, count, CHUNK):
        part = slice(start, start + CHUNK)
        x, y = where[part, 0:1], where[part, 1:2]
        u, v = sections[part, 0:1], sections[part, 1:2]
        column_start = u + _rotation(x + step) + y  # (n, column)
        row_start = v + _rotation(y + step) + x  # (n, row)
        bits[part, :, :, 0] = MNS[(column_start[:, None, :] + step[None, :, None]) % MNS_LEN]
        bits[part, :, :, 1] = MNS[(row_start[:, :, None] + step[None, None, :]) % MNS_LEN]
    return bits, where


def misread_one_dot(rng: np.random.Generator, bits: np.ndarray) -> np.ndarray:
    """A copy of the windows with one random dot each turned into another displacement."""
    out = bits.copy()
    n, size = len(bits), bits.shape[1]
    rows, columns = rng.integers(0, size, n), rng.integers(0, size, n)
    dots = out[np.arange(n), rows, columns]
    code = (2 * dots[:, 0] + dots[:, 1] + rng.integers(1, 4, n)) % 4
    out[np.arange(n), rows, columns] = np.stack([code // 2, code % 2], axis=1)
    return out


def explanations(window: np.ndarray) -> set[tuple[int, int]]:
    """Every position whose pattern (of some section) is the window or one dot from it.

    Brute force over the window and all its 192 one-dot changes: a reading is the pattern if
    its nine 6x6 sub-windows decode to one section at consistently offset positions.
    """
    size = window.shape[0]
    readings = [window]
    for r in range(size):
        for c in range(size):
            for code in range(4):
                changed = window.copy()
                changed[r, c] = code // 2, code % 2
                if (changed != window).any():
                    readings.append(changed)
    batch = np.array(readings)
    offsets = [(dr, dc) for dr in range(size - 5) for dc in range(size - 5)]
    subs = np.stack([batch[:, dr : dr + 6, dc : dc + 6] for dr, dc in offsets], axis=1)
    subs = subs.reshape(-1, 6, 6, 2)
    positions = lattice.decode_positions(subs)
    sections = lattice.decode_sections(subs, positions).reshape(len(batch), len(offsets), 2)
    origins = positions.reshape(len(batch), len(offsets), 2) - np.array(offsets)[:, ::-1]
    found = set()
    for origin, section in zip(origins, sections, strict=True):
        if (section >= 0).all() and (origin == origin[0]).all() and (section == section[0]).all():
            found.add((int(origin[0, 0]), int(origin[0, 1])))
    return found


def _turn_ccw(windows: np.ndarray) -> np.ndarray:
    """Windows turned a quarter counter-clockwise, each displacement with them: N->W->S->E."""
    grid = np.rot90(windows, 1, axes=(1, 2))
    return np.stack([1 - grid[..., 1], grid[..., 0]], axis=-1).astype(np.uint8)


def _best_seconds(run: Callable[[], object], repeats: int = REPEATS) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    rng = np.random.default_rng(2024)
    bits, where = random_windows(rng, WINDOWS, 6)
    decoded = lattice.decode_positions(bits)
    # Timing a decoder that misreads clean windows, or disagrees with the reference, means nothing.
    assert np.array_equal(decoded, where)
    few = bits[:REFERENCE_WINDOWS]
    assert np.array_equal(lattice_ref.decode_positions(few), decoded[:REFERENCE_WINDOWS])

    kernel_s = _best_seconds(lambda: lattice.decode_positions(bits))
    reference_s = _best_seconds(lambda: lattice_ref.decode_positions(few), repeats=1)
    sections_s = _best_seconds(lambda: lattice.decode_sections(bits, decoded))

    clean, truth = random_windows(rng, ROBUST_WINDOWS, ROBUST_SIZE)
    noisy = misread_one_dot(rng, clean)
    robust_s = _best_seconds(lambda: lattice.decode_robust(noisy))
    got = lattice.decode_robust(noisy)
    correct = (got == truth).all(axis=1)
    refused = (got == -1).all(axis=1)
    wrong = ~correct & ~refused
    # A refusal is forced when two positions' patterns both lie one dot from the window.
    ambiguous = sum(len(explanations(w)) > 1 for w in noisy[refused])
    rotations = rng.integers(0, 4, ROBUST_WINDOWS)
    turned = noisy.copy()
    for k in range(1, 4):
        part = noisy[rotations == k]
        for _ in range(k):
            part = _turn_ccw(part)
        turned[rotations == k] = part
    rotation_rate = float((lattice.decode_rotations(turned) == rotations).mean())

    x0 = PERIOD - ENCODE_SIDE
    encode_s = _best_seconds(lambda: lattice.encode(ENCODE_SIDE, ENCODE_SIDE, x0, x0, (62, 62)))

    result = {
        "bench": "lattice",
        "windows": WINDOWS,
        "windows_per_s": round(WINDOWS / kernel_s),
        "reference_windows_per_s": round(REFERENCE_WINDOWS / reference_s),
        "ratio": round(reference_s / REFERENCE_WINDOWS * WINDOWS / kernel_s, 1),
        "sections_per_s": round(WINDOWS / sections_s),
        "robust_windows": ROBUST_WINDOWS,
        "robust_windows_per_s": round(ROBUST_WINDOWS / robust_s),
        "robust_correct_rate": round(float(correct.mean()), 5),
        "robust_wrong_rate": round(float(wrong.mean()), 5),
        "robust_refused_rate": round(float(refused.mean()), 5),
        "robust_ambiguous_rate": round(ambiguous / ROBUST_WINDOWS, 5),
        "rotation_correct_rate_one_misread": round(rotation_rate, 5),
        "encode_dots_per_s": round(ENCODE_SIDE * ENCODE_SIDE / encode_s),
    }
    print(f"decode_positions: {WINDOWS:,} windows in {kernel_s * 1e3:.1f} ms (one core)")
    print(f"reference: {REFERENCE_WINDOWS:,} windows in {reference_s:.2f} s")
    print(
        f"decode_robust, one misread dot: {correct.sum():,} correct, {refused.sum():,} refused"
        f" ({ambiguous:,} of them two positions one dot away), {wrong.sum():,} wrong"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
