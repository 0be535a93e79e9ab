"""The stroke journal: every finished stroke on disk before the pipeline does anything with it.

An answer stays open in memory until its student moves on or the idle time passes (answers.py), so
without the journal a gateway killed mid-answer would lose the strokes written so far. Each stroke
is written, with the others finished in the same read from its pen, to the outbox database (WAL,
synchronous=FULL) in one transaction; its row is deleted in the transaction that appends the
answer carrying it to the outbox, or when the pipeline drops it. On start-up the pipeline replays
what is left, in order, so the open answers are rebuilt as they were.
"""

from __future__ import annotations

import struct

import numpy as np
import orjson

from gateway.strokes import Stroke

_HEADER = struct.Struct("<I")  # length of the JSON head; the points follow as float64 (k, 4)


def encode(stroke: Stroke) -> bytes:
    head = orjson.dumps(
        {
            "pen_id": stroke.pen_id,
            "address": stroke.address,
            "t0_ms": stroke.t0_ms,
            "end_ms": stroke.end_ms,
            "offline_key": stroke.offline_key,
        }
    )
    points = np.ascontiguousarray(stroke.points, dtype="<f8")
    return _HEADER.pack(len(head)) + head + points.tobytes()


def decode(journal_id: int, blob: bytes) -> Stroke:
    (size,) = _HEADER.unpack_from(blob)
    head = orjson.loads(blob[_HEADER.size : _HEADER.size + size])
    points = np.frombuffer(blob, dtype="<f8", offset=_HEADER.size + size).reshape(-1, 4).copy()
    return Stroke(
        head["pen_id"],
        head["address"],
        head["t0_ms"],
        points,
        offline_key=head["offline_key"],
        end_ms=head["end_ms"],
        journal_id=journal_id,
    )


_LENGTH = struct.Struct("<I")


def encode_many(strokes: list[Stroke]) -> bytes:
    """Several strokes in one blob (a box's answer, kept in the outbox database)."""
    return b"".join(_LENGTH.pack(len(blob)) + blob for blob in map(encode, strokes))


def decode_many(blob: bytes) -> list[Stroke]:
    strokes, at = [], 0
    while at < len(blob):
        (size,) = _LENGTH.unpack_from(blob, at)
        at += _LENGTH.size
        stroke = decode(0, blob[at : at + size])
        stroke.journal_id = None  # settled long ago: in no journal
        strokes.append(stroke)
        at += size
    return strokes
