"""The Cython packet decoder (ext.packets) against its Python reference and pen-wire.md.

Frames are built by a small encoder written here from the spec, independent of any project
module, so that a misreading shared by decoder and encoder elsewhere cannot hide here.
"""

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ext import packets, packets_ref

MAX_FRAME = 131_080
INT64_MAX = 2**63 - 1
PEN_DOWN, PEN_UP, PAPER_INFO, DOT = 0x69, 0x6A, 0x6B, 0x6C
GARBAGE, TRUNCATED, BAD_ESCAPE, TOO_SHORT, BAD_LENGTH, OVERSIZE, BAD_VALUE = range(-1, -8, -1)

Decoded = tuple[np.ndarray, np.ndarray, bytes, int]
Decode = Callable[[bytes], Decoded]
DECODERS = [pytest.param(packets.decode, id="cython"), pytest.param(packets_ref.decode, id="ref")]


# --- encoder, straight from pen-wire.md §1-§3 -----------------------------------------------------


def escape(body: bytes) -> bytes:
    out = bytearray()
    for byte in body:
        if byte in (0xC0, 0xC1, 0x7D):
            out += bytes((0x7D, byte ^ 0x20))
        else:
            out.append(byte)
    return bytes(out)


def le(value: int, size: int) -> bytes:
    return value.to_bytes(size, "little")


def event_frame(cmd: int, data: bytes) -> bytes:
    return b"\xc0" + escape(bytes([cmd]) + le(len(data), 2) + data) + b"\xc1"


def response_frame(cmd: int, result: int, data: bytes) -> bytes:
    return b"\xc0" + escape(bytes([cmd, result]) + le(len(data), 2) + data) + b"\xc1"


def row(kind: int, result: int = -1, offset: int = -1, length: int = 0, *fields: int) -> list[int]:
    return [kind, result, offset, length, *fields] + [0] * (7 - len(fields))


def dot_run(first: int, count: int) -> list[int]:
    return row(DOT, -1, first, count)


@dataclass(frozen=True)
class Msg:
    wire: bytes
    record: tuple[int, ...]  # kind, result, len, parsed fields; the payload offset is implied
    payload: bytes | None = None  # the data field when it is passed up raw
    dot: tuple | None = None  # a Dot's entry in the dots array (x, y, force, twist, counter, …)


def pen_down(counter: int, time_ms: int, tip: int, colour: int, extra: bytes = b"") -> Msg:
    data = le(counter, 1) + le(time_ms, 8) + le(tip, 1) + le(colour, 4) + extra
    record = (PEN_DOWN, -1, len(data), counter, time_ms, tip, colour)
    return Msg(event_frame(PEN_DOWN, data), record)


def pen_up(counter: int, time_ms: int, counts: tuple[int, ...], extra: bytes = b"") -> Msg:
    data = le(counter, 1) + le(time_ms, 8) + b"".join(le(c, 2) for c in counts) + extra
    return Msg(event_frame(PEN_UP, data), (PEN_UP, -1, len(data), counter, time_ms, *counts))


def paper_info(
    counter: int, section: int, owner: int, note: int, page: int, extra: bytes = b""
) -> Msg:
    data = le(counter, 1) + le(owner, 3) + le(section, 1) + le(note, 4) + le(page, 4) + extra
    record = (PAPER_INFO, -1, len(data), counter, section, owner, note, page)
    return Msg(event_frame(PAPER_INFO, data), record)


def dot(
    counter: int,
    dt: int,
    force: int,
    x: int,
    y: int,
    fx: int,
    fy: int,
    tilt_x: int,
    tilt_y: int,
    twist: int,
    extra: bytes = b"",
) -> Msg:
    data = (
        le(counter, 1)
        + le(dt, 1)
        + le(force, 2)
        + le(x, 2)
        + le(y, 2)
        + bytes((fx, fy, tilt_x, tilt_y))
        + le(twist, 2)
        + extra
    )
    entry = (x + fx / 100, y + fy / 100, force, twist, counter, dt, tilt_x, tilt_y)
    return Msg(event_frame(DOT, data), (DOT,), dot=entry)


def other_event(cmd: int, data: bytes) -> Msg:
    return Msg(event_frame(cmd, data), (cmd, -1, len(data)), data)


def response(cmd: int, result: int, data: bytes) -> Msg:
    return Msg(response_frame(cmd, result, data), (cmd, result, len(data)), data)


def expected(msgs: list[Msg]) -> tuple[list[list[int]], list[tuple], bytes]:
    rows, dots, payloads = [], [], bytearray()
    for msg in msgs:
        if msg.dot is not None:
            if rows and rows[-1][0] == DOT:
                rows[-1][3] += 1
            else:
                rows.append(dot_run(len(dots), 1))
            dots.append(msg.dot)
            continue
        kind, result, length, *fields = msg.record
        offset = -1
        if msg.payload is not None:
            offset = len(payloads)
            payloads += msg.payload
        rows.append(row(kind, result, offset, length, *fields))
    return rows, dots, bytes(payloads)


# --- helpers --------------------------------------------------------------------------------------


def decode_both(data: bytes) -> Decoded:
    """Decode with kernel and reference, insist they agree exactly, return the kernel's answer."""
    records, dots, payloads, consumed = packets.decode(data)
    ref_records, ref_dots, ref_payloads, ref_consumed = packets_ref.decode(data)
    assert records.dtype == np.int64
    assert records.shape == ref_records.shape == (len(records), 11)
    assert records.tolist() == ref_records.tolist()
    assert dots.dtype == ref_dots.dtype == packets_ref.DOT_DTYPE
    assert dots.tolist() == ref_dots.tolist()
    assert payloads == ref_payloads
    assert consumed == ref_consumed
    return records, dots, payloads, consumed


def non_garbage(decoded: Decoded) -> list:
    """Records other than garbage, each Dot on its own, with offsets replaced by what they point
    at, so that decodes of the same frames split differently compare equal."""
    records, dots, payloads, _ = decoded
    out: list = []
    for kind, result, offset, length, *fields in records.tolist():
        if kind == GARBAGE:
            continue
        if kind == DOT:
            out += [["dot", d] for d in dots[offset : offset + length].tolist()]
            continue
        data = payloads[offset : offset + length] if offset >= 0 else b""
        out.append([kind, result, data, length, *fields])
    return out


def garbage_bytes(records: np.ndarray) -> int:
    return int(records[records[:, 0] == GARBAGE, 3].sum())


# --- known vectors --------------------------------------------------------------------------------

PEN_DOWN_WIRE = bytes.fromhex(
    "c0 69 0e00"  # PenDown, len 14
    " 07 7b68e5cf8b010000 01 332211ff"  # counter 7, time 1_700_000_000_123, eraser, ARGB ff112233
    " c1"
)
PEN_UP_WIRE = bytes.fromhex(
    "c0 6a 1300"  # PenUp, len 19
    " 09 9871e5cf8b010000"  # counter 9, time 1_700_000_002_456
    " 6400 7800 6e00 6900 6400"  # dots 100, images 120 / 110 / 105 / 100
    " c1"
)
PAPER_INFO_WIRE = bytes.fromhex(
    "c0 6b 0d00"  # PaperInfo, len 13
    " 08 1b0000 03 e9030000 01000000"  # counter 8, owner 27, section 3, note 1001, page 1
    " c1"
)
DOT_WIRE = bytes.fromhex(
    "c0 6c 0e00"  # Dot, len 14
    " 0a 05 0002"  # counter 10, dt 5 ms, force 512
    " 7de0 01"  # x = 0x01c0: low byte 0xc0 escaped
    " 7d5d 7d5d"  # y = 0x7d7d: both bytes escaped
    " 32 63 28 3c"  # fx 50, fy 99, tilt 40, 60
    " 7de1 00"  # twist 0xc1
    " c1"
)


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("wire", "expected_row"),
    [
        (PEN_DOWN_WIRE, row(PEN_DOWN, -1, -1, 14, 7, 1_700_000_000_123, 1, 0xFF112233)),
        (PEN_UP_WIRE, row(PEN_UP, -1, -1, 19, 9, 1_700_000_002_456, 100, 120, 110, 105, 100)),
        (PAPER_INFO_WIRE, row(PAPER_INFO, -1, -1, 13, 8, 3, 27, 1001, 1)),
    ],
    ids=["pen_down", "pen_up", "paper_info"],
)
def test_event_vectors(decode: Decode, wire: bytes, expected_row: list[int]) -> None:
    records, dots, payloads, consumed = decode(wire)
    assert records.tolist() == [expected_row]
    assert len(dots) == 0 and payloads == b""
    assert consumed == len(wire)


DOT_ENTRY = (0x01C0 + 0.5, 0x7D7D + 0.99, 512, 0xC1, 10, 5, 40, 60)


@pytest.mark.parametrize("decode", DECODERS)
def test_dot_vector_with_escapes(decode: Decode) -> None:
    records, dots, payloads, consumed = decode(DOT_WIRE)
    assert records.tolist() == [dot_run(0, 1)]
    assert dots.tolist() == [DOT_ENTRY] and payloads == b""
    assert consumed == len(DOT_WIRE)


@pytest.mark.parametrize("decode", DECODERS)
def test_consecutive_dots_form_one_run_until_another_frame(decode: Decode) -> None:
    wire = DOT_WIRE * 3 + PAPER_INFO_WIRE + DOT_WIRE + b"\x00" + DOT_WIRE * 2
    records, dots, _, _ = decode(wire)
    assert records.tolist() == [
        dot_run(0, 3),
        row(PAPER_INFO, -1, -1, 13, 8, 3, 27, 1001, 1),
        dot_run(3, 1),
        row(GARBAGE, -1, -1, 1),
        dot_run(4, 2),
    ]
    assert dots.tolist() == [DOT_ENTRY] * 6


def test_encoder_matches_hand_built_vectors() -> None:
    assert pen_down(7, 1_700_000_000_123, 1, 0xFF112233).wire == PEN_DOWN_WIRE
    assert pen_up(9, 1_700_000_002_456, (100, 120, 110, 105, 100)).wire == PEN_UP_WIRE
    assert paper_info(8, 3, 27, 1001, 1).wire == PAPER_INFO_WIRE
    assert dot(10, 5, 512, 0x01C0, 0x7D7D, 50, 99, 40, 60, 0xC1).wire == DOT_WIRE


@pytest.mark.parametrize("decode", DECODERS)
def test_version_response_passes_data_up(decode: Decode) -> None:
    mac = bytes.fromhex("9c7bd2c07dc1")  # needs three escapes
    data = (
        b"NWP-F130".ljust(16, b"\0")
        + b"1.02".ljust(16, b"\0")
        + b"2.18".ljust(8, b"\0")
        + b"classink".ljust(16, b"\0")
        + le(0x0123, 2)
        + mac
    )
    wire = response_frame(0x81, 0, data)
    assert wire.startswith(bytes.fromhex("c0 81 00 4000")) and b"\x7d\xe0\x7d\x5d\x7d\xe1" in wire
    records, _, payloads, consumed = decode(wire)
    assert records.tolist() == [row(0x81, 0, 0, 64)]
    assert payloads == data and payloads[58:64] == mac
    assert consumed == len(wire)


@pytest.mark.parametrize("decode", DECODERS)
def test_payloads_concatenate_in_stream_order(decode: Decode) -> None:
    escaped_len = bytes([0x7D]) * 0xC1  # len 0x00c1 and every data byte need escaping
    wire = (
        response_frame(0x84, 3, b"\x01\x02")
        + DOT_WIRE
        + event_frame(0x05, escaped_len)
        + event_frame(0x7D, b"")  # an escaped command byte
        + response_frame(0xC0, 0xC1, b"\xc0")
    )
    records, _, payloads, consumed = decode(wire)
    assert records.tolist() == [
        row(0x84, 3, 0, 2),
        dot_run(0, 1),
        row(0x05, -1, 2, 0xC1),
        row(0x7D, -1, 2 + 0xC1, 0),
        row(0xC0, 0xC1, 2 + 0xC1, 1),
    ]
    assert payloads == b"\x01\x02" + escaped_len + b"\xc0"
    assert consumed == len(wire)


# --- malformed input, §5 --------------------------------------------------------------------------

GOOD = PAPER_INFO_WIRE
GOOD_ROW = row(PAPER_INFO, -1, -1, 13, 8, 3, 27, 1001, 1)
FILL = b"\x01" * MAX_FRAME


def pen_down_data(time_ms: int = 1, extra: bytes = b"") -> bytes:
    return b"\x07" + le(time_ms, 8) + b"\x00" + le(0xFF000000, 4) + extra


def dot_data(fx: int, fy: int) -> bytes:
    return bytes(8) + bytes((fx, fy)) + bytes(4)


MALFORMED = {
    "garbage_before_frame": (b"\x00\xc1\x7d" + GOOD, [row(GARBAGE, -1, -1, 3), GOOD_ROW]),
    "garbage_at_end_is_consumed": (GOOD + b"\xaa\xbb", [GOOD_ROW, row(GARBAGE, -1, -1, 2)]),
    "truncated": (b"\xc0\x6c\x0e\x00\x01" + GOOD, [row(TRUNCATED, DOT, -1, 5), GOOD_ROW]),
    "truncated_lone_start": (b"\xc0" + GOOD, [row(TRUNCATED, -1, -1, 1), GOOD_ROW]),
    "truncated_escaped_command": (
        b"\xc0\x7d\xe0\x00" + GOOD,
        [row(TRUNCATED, 0xC0, -1, 4), GOOD_ROW],
    ),
    "bad_escape": (
        b"\xc0\x69\x0e\x00\x7d\x00" + bytes(12) + b"\xc1" + GOOD,
        [row(BAD_ESCAPE, PEN_DOWN, -1, 19), GOOD_ROW],
    ),
    "bad_escape_before_end": (b"\xc0\x6c\x7d\xc1" + GOOD, [row(BAD_ESCAPE, DOT, -1, 4), GOOD_ROW]),
    "bad_escape_before_start": (
        b"\xc0\x6c\x7d" + GOOD,
        [row(TRUNCATED, DOT, -1, 3), GOOD_ROW],
    ),
    "bad_escape_of_command": (
        b"\xc0\x7d\x41\x00\x00\xc1",
        [row(BAD_ESCAPE, -1, -1, 6)],
    ),
    "empty_body": (b"\xc0\xc1" + GOOD, [row(TOO_SHORT, -1, -1, 2), GOOD_ROW]),
    "short_event": (b"\xc0\x69\x00\xc1", [row(TOO_SHORT, PEN_DOWN, -1, 4)]),
    "response_missing_data": (b"\xc0\x81\x00\x05\x00\xc1", [row(BAD_LENGTH, 0x81, -1, 6)]),
    "short_response_header": (b"\xc0\x81\x00\x00\xc1", [row(TOO_SHORT, 0x81, -1, 5)]),
    "len_too_big": (
        event_frame(0x05, b"abc")[:-2] + b"\xc1",
        [row(BAD_LENGTH, 0x05, -1, 7)],
    ),
    "len_too_small": (b"\xc0\x05\x01\x00ab\xc1", [row(BAD_LENGTH, 0x05, -1, 7)]),
    "event_below_minimum": (
        event_frame(PEN_DOWN, pen_down_data()[:13]),
        [row(BAD_LENGTH, PEN_DOWN, -1, 18)],
    ),
    "longer_event_accepted": (
        event_frame(PEN_DOWN, pen_down_data(extra=b"\xc0\x00")),
        [row(PEN_DOWN, -1, -1, 16, 7, 1, 0, 0xFF000000)],
    ),
    "fx_over_99": (event_frame(DOT, dot_data(100, 0)), [row(BAD_VALUE, DOT, -1, 19)]),
    "fy_over_99": (event_frame(DOT, dot_data(0, 255)), [row(BAD_VALUE, DOT, -1, 19)]),
    "fraction_99_ok": (
        event_frame(DOT, dot_data(99, 99)),
        [dot_run(0, 1)],
    ),
    "pen_down_time_2_63": (
        event_frame(PEN_DOWN, pen_down_data(2**63)),
        [row(BAD_VALUE, PEN_DOWN, -1, 19)],
    ),
    "pen_down_time_max_ok": (
        event_frame(PEN_DOWN, pen_down_data(INT64_MAX)),
        [row(PEN_DOWN, -1, -1, 14, 7, INT64_MAX, 0, 0xFF000000)],
    ),
    "pen_up_time_2_64_minus_1": (
        event_frame(PEN_UP, b"\x01" + le(2**64 - 1, 8) + bytes(10)),
        [row(BAD_VALUE, PEN_UP, -1, 24)],
    ),
    "oversize": (b"\xc0" + FILL[1:] + GOOD, [row(OVERSIZE, 1, -1, MAX_FRAME), GOOD_ROW]),
    "oversize_resumes_after_max_frame": (
        b"\xc0" + FILL + b"\xc1" + GOOD,
        [row(OVERSIZE, 1, -1, MAX_FRAME), row(GARBAGE, -1, -1, 2), GOOD_ROW],
    ),
    "longest_frame_is_not_oversize": (
        b"\xc0" + FILL[2:] + b"\xc1" + GOOD,
        [row(BAD_LENGTH, 1, -1, MAX_FRAME), GOOD_ROW],
    ),
}


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(("wire", "expected_rows"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input(decode: Decode, wire: bytes, expected_rows: list[list[int]]) -> None:
    records, _, payloads, consumed = decode(wire)
    assert records.tolist() == expected_rows
    assert payloads == b""
    assert consumed == len(wire)


PARTIAL = {
    "empty": (b"", 0),
    "open_frame": (GOOD + b"\xc0\x6c\x0e", len(GOOD)),
    "open_frame_ending_in_escape": (GOOD + b"\xc0\x6c\x7d", len(GOOD)),
    "lone_start": (b"\xc0", 0),
    "just_below_max_frame": (b"\xc0" + FILL[2:], 0),
    "max_frame_reached": (b"\xc0" + FILL[1:], MAX_FRAME),
}


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(("wire", "expected_consumed"), PARTIAL.values(), ids=PARTIAL.keys())
def test_open_frame_at_end_is_kept(decode: Decode, wire: bytes, expected_consumed: int) -> None:
    records, _, _, consumed = decode(wire)
    assert consumed == expected_consumed
    assert len(records) == (expected_consumed > 0)


def test_many_tiny_records_agree() -> None:
    # Far more records than the kernel's first guess of one per 64 input bytes.
    records, _, _, consumed = decode_both(
        b"\xc0\xc1" * 5000 + b"\x00\xc0\x69\x00\xc1" * 3000 + b"\xc0"
    )
    assert len(records) == 11_000 and consumed == 25_000


def test_kernel_accepts_any_contiguous_buffer() -> None:
    wire = GOOD + DOT_WIRE
    for buffer in (bytearray(wire), memoryview(wire), np.frombuffer(wire, dtype=np.uint8)):
        assert packets.decode(buffer)[1].tolist() == packets.decode(wire)[1].tolist()


# --- generated streams ----------------------------------------------------------------------------

# Bytes that frame or escape, and command and length bytes of real headers, turn up far more
# often than chance would have them.
structural = st.sampled_from([0xC0, 0xC1, 0x7D, 0xE0, 0xE1, 0x5D, 0x00, 0x69, 0x6C, 0x81, 0x0E])
byte = st.one_of(structural, st.integers(0, 255))


def blob(max_size: int) -> st.SearchStrategy[bytes]:
    return st.lists(byte, max_size=max_size).map(bytes)


def uint(size: int) -> st.SearchStrategy[int]:
    return st.lists(byte, min_size=size, max_size=size).map(
        lambda bs: int.from_bytes(bytes(bs), "little")
    )


def events(
    time_ms: st.SearchStrategy[int], fraction: st.SearchStrategy[int]
) -> st.SearchStrategy[Msg]:
    extra = st.one_of(st.just(b""), blob(4))
    dot_fields = [uint(1), uint(1), uint(2), uint(2), uint(2), fraction, fraction]
    dot_fields += [uint(1), uint(1), uint(2)]
    command = st.integers(0, 0x7F).filter(lambda c: not PEN_DOWN <= c <= DOT)
    return st.one_of(
        st.builds(pen_down, uint(1), time_ms, uint(1), uint(4), extra),
        st.builds(pen_up, uint(1), time_ms, st.tuples(*[uint(2)] * 5), extra),
        st.builds(paper_info, uint(1), uint(1), uint(3), uint(4), uint(4), extra),
        st.builds(dot, *dot_fields, extra),
        st.builds(other_event, command, blob(40)),
        st.builds(response, st.integers(0x80, 0xFF), uint(1), blob(80)),
    )


messages = events(uint(8).filter(lambda t: t <= INT64_MAX), st.integers(0, 99))
streams = st.lists(messages, max_size=25)
# Frames that are well formed but may carry out-of-range values; their Msg.record is not checked.
any_frames = events(uint(8), st.integers(0, 255)).map(lambda msg: msg.wire)


@st.composite
def corrupted(draw: st.DrawFn) -> bytes:
    data = bytearray(b"".join(draw(st.lists(any_frames, min_size=1, max_size=12))))
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, len(data)))
        match draw(st.sampled_from(["flip", "set", "insert", "delete", "cut_end", "cut_start"])):
            case "flip" if where < len(data):
                data[where] ^= draw(st.integers(1, 255))
            case "set" if where < len(data):
                data[where] = draw(structural)
            case "insert":
                data[where:where] = draw(blob(3))
            case "delete":
                del data[where : where + draw(st.integers(1, 3))]
            case "cut_end":
                del data[where:]
            case "cut_start":
                del data[:where]
    return bytes(data)


@given(streams)
def test_valid_streams_decode_to_generated_values(msgs: list[Msg]) -> None:
    wire = b"".join(m.wire for m in msgs)
    records, dots, payloads, consumed = decode_both(wire)
    rows, expected_dots, expected_payloads = expected(msgs)
    assert records.tolist() == rows
    assert dots.tolist() == expected_dots
    assert payloads == expected_payloads
    assert consumed == len(wire)


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=600), st.lists(structural, max_size=600).map(bytes)))
def test_random_bytes_agree(data: bytes) -> None:
    _, _, _, consumed = decode_both(data)
    assert data[consumed:] == b"" or data[consumed] == 0xC0


@settings(max_examples=300)
@given(corrupted())
def test_corrupted_streams_agree(data: bytes) -> None:
    decode_both(data)


@pytest.mark.parametrize("decode", DECODERS)
@settings(max_examples=60)
@given(msgs=streams, data=st.data())
def test_split_valid_stream_gives_same_frames(
    decode: Decode, msgs: list[Msg], data: st.DataObject
) -> None:
    wire = b"".join(m.wire for m in msgs)
    split = data.draw(st.integers(0, len(wire)))
    first = decode(wire[:split])
    rest = wire[:split][first[3] :] + wire[split:]
    second = decode(rest)
    assert second[3] == len(rest)
    assert non_garbage(first) + non_garbage(second) == non_garbage(decode(wire))
    assert garbage_bytes(first[0]) == garbage_bytes(second[0]) == 0


@pytest.mark.parametrize("decode", DECODERS)
@settings(max_examples=60)
@given(wire=corrupted(), data=st.data())
def test_split_corrupted_stream_gives_same_records(
    decode: Decode, wire: bytes, data: st.DataObject
) -> None:
    # Only a garbage run can come out differently: the split may cut it into two records.
    split = data.draw(st.integers(0, len(wire)))
    whole = decode(wire)
    first = decode(wire[:split])
    rest = wire[:split][first[3] :] + wire[split:]
    second = decode(rest)
    assert non_garbage(first) + non_garbage(second) == non_garbage(whole)
    assert garbage_bytes(first[0]) + garbage_bytes(second[0]) == garbage_bytes(whole[0])
    assert rest[second[3] :] == wire[whole[3] :]


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_coverage_guided_fuzzing_finds_no_disagreement() -> None:
    harness = Path(__file__).parent / "fuzz" / "packets_fuzz.py"
    run = subprocess.run(
        [sys.executable, str(harness), "-runs=40000", "-max_len=2048", "-seed=1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[1],
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done 40000 runs" in run.stderr
