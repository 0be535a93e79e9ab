"""Throughput of the pen frame decoder: Cython kernel against its plain-Python reference.

python -m bench.penwire  prints a few lines and, last, one JSON object with the numbers.
The stream is what a classroom pen sends while writing: per stroke a PenDown, a PaperInfo,
~100 Dots and a PenUp (pen-wire.md §3.2), with real-looking values so that escapes occur at
their natural rate.
"""

import json
import random
import struct
import time
from collections.abc import Callable

import numpy as np

from ext import penwire, penwire_ref

STROKES = 1500
REPEATS = 3
CHUNK = 65_536  # the largest read a gateway hands the decoder


def _frame(cmd: int, data: bytes) -> bytes:
    body = bytes([cmd]) + struct.pack("<H", len(data)) + data
    # 0x7D first, so that the escapes added for 0xC0/0xC1 are not escaped again.
    for byte in (b"\x7d", b"\xc0", b"\xc1"):
        body = body.replace(byte, b"\x7d" + bytes([byte[0] ^ 0x20]))
    return b"\xc0" + body + b"\xc1"


def generate_stream(strokes: int, seed: int = 1) -> tuple[bytes, int]:
    """A stream of `strokes` strokes and the number of dots in it."""
    rng = random.Random(seed)
    out = bytearray()
    counter = 0
    now_ms = 1_700_000_000_000
    dots = 0

    def emit(cmd: int, data: bytes) -> None:
        nonlocal counter
        out.extend(_frame(cmd, bytes([counter]) + data))
        counter = (counter + 1) % 256

    for stroke in range(strokes):
        now_ms += rng.randint(200, 2000)
        emit(0x69, struct.pack("<QBI", now_ms, 0, 0xFF000000))
        emit(0x6B, struct.pack("<I", 27)[:3] + struct.pack("<BII", 3, 1001, stroke // 40 + 1))
        # A4 is about 88 x 125 pen units; strokes are short wiggles somewhere on it.
        x, y = rng.uniform(5, 80), rng.uniform(5, 115)
        n = rng.randint(90, 110)
        for _ in range(n):
            x = min(max(x + rng.uniform(-0.4, 0.4), 0.0), 88.0)
            y = min(max(y + rng.uniform(-0.4, 0.4), 0.0), 125.0)
            dt = rng.randint(6, 10)
            now_ms += dt
            fx, fy = int(x * 100) % 100, int(y * 100) % 100
            tilt_x, tilt_y, twist = rng.randint(40, 80), rng.randint(40, 80), rng.randint(0, 359)
            force = rng.randint(150, 900)
            emit(
                0x6C,
                struct.pack("<BHHHBBBBH", dt, force, int(x), int(y), fx, fy, tilt_x, tilt_y, twist),
            )
        dots += n
        emit(0x6A, struct.pack("<QHHHHH", now_ms, n, n + 8, n + 4, n + 2, n))
    return bytes(out), dots


def _decode_in_chunks(data: bytes) -> int:
    """Feed `data` as a gateway would, carrying an open frame over to the next read."""
    leftover = b""
    frames = 0
    for start in range(0, len(data), CHUNK):
        buffer = leftover + data[start : start + CHUNK]
        records, _, consumed = penwire.decode(buffer)
        leftover = buffer[consumed:]
        frames += len(records)
    return frames


def _best_seconds(run: Callable[[], object], repeats: int = REPEATS) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    data, dots = generate_stream(STROKES)
    records, payloads, consumed = penwire.decode(data)
    ref_records, ref_payloads, ref_consumed = penwire_ref.decode(data)
    # Timing a decoder that disagrees with the reference, or rejects good frames, means nothing.
    assert np.array_equal(records, ref_records) and payloads == ref_payloads
    assert consumed == ref_consumed == len(data) and (records[:, 0] >= 0).all()
    assert _decode_in_chunks(data) == len(records)

    python_s = _best_seconds(lambda: penwire_ref.decode(data))
    cython_s = _best_seconds(lambda: penwire.decode(data), repeats=5 * REPEATS)
    chunked_s = _best_seconds(lambda: _decode_in_chunks(data), repeats=5 * REPEATS)

    mb = len(data) / 1e6
    result = {
        "bench": "penwire",
        "stream_bytes": len(data),
        "frames": len(records),
        "dots": dots,
        "python_mb_s": round(mb / python_s, 2),
        "cython_mb_s": round(mb / cython_s, 1),
        "cython_64k_chunks_mb_s": round(mb / chunked_s, 1),
        "speedup": round(python_s / cython_s, 1),
        "dots_per_s": round(dots / cython_s),
    }
    print(f"stream: {len(data):,} bytes, {len(records):,} frames, {dots:,} dots")
    print(
        f"best times: python {python_s * 1e3:.1f} ms, cython {cython_s * 1e3:.2f} ms,"
        f" cython in {CHUNK // 1024} KiB reads {chunked_s * 1e3:.2f} ms"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
