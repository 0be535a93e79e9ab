"""Throughput of the pen packet decoder: Cython kernel against its plain-Python reference.

python -m bench.decode  prints a few lines and, last, one JSON object with the numbers.

The input is what a gateway reads from a class of pens: each pen's own stream (PenDown, PaperInfo,
~100 Dots, the odd ErrorDot, PenUp; Hover between strokes; a Battery alarm now and then; a little
line noise), with real-looking values so that escapes occur at their natural rate, read pen after
pen in 4 KiB pieces with each pen's unfinished frame carried over to its next read, as the
transports do. Both decoders see exactly the same reads and must agree on every one.
"""

import json
import random
import struct
import time
from collections.abc import Callable

import numpy as np

from ext import packets, packets_ref
from firmware_bridge.protocol import PenConnection

PENS = 8
STROKES_PER_PEN = 200
READ = 4096
REPEATS = 5

Decode = Callable[[bytes], tuple[np.ndarray, np.ndarray, bytes, int]]


def _frame(cmd: int, data: bytes) -> bytes:
    body = bytes([cmd]) + struct.pack("<H", len(data)) + data
    # 0x7D first, so that the escapes added for 0xC0/0xC1 are not escaped again.
    for byte in (b"\x7d", b"\xc0", b"\xc1"):
        body = body.replace(byte, b"\x7d" + bytes([byte[0] ^ 0x20]))
    return b"\xc0" + body + b"\xc1"


def pen_stream(strokes: int, seed: int) -> tuple[bytes, int]:
    """One pen's stream of `strokes` strokes, and the number of Dots in it."""
    rng = random.Random(seed)
    out = bytearray()
    counter = 0
    now_ms = 1_700_000_000_000
    dots = 0

    def emit(cmd: int, data: bytes, counted: bool = True) -> None:
        nonlocal counter
        out.extend(_frame(cmd, (bytes([counter]) if counted else b"") + data))
        counter = (counter + counted) % 256

    for stroke in range(strokes):
        for _ in range(rng.randint(0, 3)):
            emit(0x6F, struct.pack("<BHHBB", 10, rng.randint(0, 88), rng.randint(0, 125), 5, 7))
        if rng.random() < 0.01:
            emit(0x61, bytes([rng.randint(5, 20)]), counted=False)
        if rng.random() < 0.005:
            out.extend(bytes(rng.randrange(0xC0) for _ in range(rng.randint(1, 8))))
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
            if rng.random() < 0.02:
                emit(0x6D, struct.pack("<BHBBBHBBB", dt, 300, 90, 12, 4, 20, 3, 0, 1))
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


def classroom_reads() -> tuple[list[tuple[int, bytes]], int, int]:
    """(pen, bytes) reads in arrival order, the total bytes and the total Dots."""
    streams = [pen_stream(STROKES_PER_PEN, seed) for seed in range(PENS)]
    reads = []
    for start in range(0, max(len(s) for s, _ in streams), READ):
        reads += [(pen, s[start : start + READ]) for pen, (s, _) in enumerate(streams) if s[start:]]
    return reads, sum(len(s) for s, _ in streams), sum(n for _, n in streams)


def decode_reads(decode: Decode, reads: list[tuple[int, bytes]]) -> int:
    """Decode as the transports do; returns the Dots decoded."""
    pending = [b""] * PENS
    dots = 0
    for pen, data in reads:
        buffer = pending[pen] + data
        _, decoded, _, consumed = decode(buffer)
        pending[pen] = buffer[consumed:]
        dots += len(decoded)
    return dots


def protocol_reads(reads: list[tuple[int, bytes]]) -> int:
    """The whole protocol core, kernel to Dot events, for comparison."""
    connections = [PenConnection() for _ in range(PENS)]
    return sum(len(connections[pen].receive_data(data)) for pen, data in reads)


def _best_seconds(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    reads, nbytes, dots = classroom_reads()
    # Timing decoders that disagree, or that drop good Dots, would mean nothing.
    pending = [b""] * PENS
    for pen, data in reads:
        buffer = pending[pen] + data
        kernel, reference = packets.decode(buffer), packets_ref.decode(buffer)
        assert np.array_equal(kernel[0], reference[0]) and kernel[2:] == reference[2:]
        assert kernel[1].tolist() == reference[1].tolist()
        pending[pen] = buffer[kernel[3] :]
    assert decode_reads(packets.decode, reads) == dots

    reference_s = _best_seconds(lambda: decode_reads(packets_ref.decode, reads), 2)
    kernel_s = _best_seconds(lambda: decode_reads(packets.decode, reads), REPEATS)
    protocol_s = _best_seconds(lambda: protocol_reads(reads), 2)

    result = {
        "bench": "decode",
        "pens": PENS,
        "stream_bytes": nbytes,
        "reads": len(reads),
        "dots": dots,
        "dots_per_s": round(dots / kernel_s),
        "reference_dots_per_s": round(dots / reference_s),
        "ratio": round(reference_s / kernel_s, 1),
        "mb_per_s": round(nbytes / 1e6 / kernel_s, 1),
        "protocol_core_dots_per_s": round(dots / protocol_s),
    }
    print(f"{PENS} pens: {nbytes:,} bytes in {len(reads):,} reads of {READ} B, {dots:,} dots")
    print(
        f"best times: kernel {kernel_s * 1e3:.2f} ms, reference {reference_s * 1e3:.0f} ms,"
        f" protocol core (events) {protocol_s * 1e3:.0f} ms"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
