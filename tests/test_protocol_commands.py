"""The NeoSmartpen 2.x host commands, pen status and events, and offline chunks (pen-wire.md §3.4-
§3.6): the gateway's request builders are read back by the simulator's request reader, and what the
simulator's independent encoder sends is decoded by the protocol core."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import protocol as p
from firmware_bridge.events import (
    Acknowledged,
    Battery,
    CommandFailed,
    Dot,
    ErrorDot,
    EventGap,
    Hover,
    NoteId,
    OfflineChunk,
    OfflineChunkRejected,
    OfflineDataStart,
    OfflineNoteList,
    OfflinePageList,
    PasswordChanged,
    PasswordResult,
    PenStatus,
    PenUp,
    PowerOff,
    Rejected,
    SettingChanged,
    UnknownCommand,
)
from firmware_bridge.protocol import decode_stream
from hardware_sim import pen_wire as w

NOTE = NoteId(3, 27, 1001)
NOTE_WIRE = (3, 27, 1001)


def read_request(frame: bytes) -> w.Request:
    [req] = w.RequestReader().feed(frame)
    return req


def reasons(events) -> list[str]:
    return [e.reason for e in events if isinstance(e, Rejected)]


# --- requests, as the pen reads them ----------------------------------------------------------


def test_password_requests():
    assert read_request(p.password_request("1234")) == (0x02, b"1234" + bytes(12), 0)
    req = read_request(p.password_change_request("1234", "98765"))
    assert req.cmd == 0x03 and req.data == b"\x01" + b"1234".ljust(16, b"\0") + b"98765".ljust(
        16, b"\0"
    )
    assert read_request(p.password_change_request("1234", "")).data[0] == 0


def test_status_and_clock_requests():
    assert read_request(p.status_request()) == (0x04, b"", 0)
    clock = 1_700_000_000_123
    assert read_request(p.set_clock_request(clock)) == (0x05, b"\x01" + struct.pack("<Q", clock), 0)
    assert read_request(p.status_change_request(2, 30)).data == b"\x02\x1e\x00"
    assert read_request(p.status_change_request(8, 0xFF00C07D)).data == b"\x08\x7d\xc0\x00\xff"
    with pytest.raises(ValueError):
        p.status_change_request(42, 1)


def test_using_notes_request():
    assert read_request(p.using_notes_request()) == (0x11, b"\xff\xff", 0)
    req = read_request(p.using_notes_request([NOTE, NoteId(3, 27, 1002)]))
    assert req.data == b"\x02\x00" + w.note_field(3, 27, 1001) + w.note_field(3, 27, 1002)


def test_offline_requests():
    assert read_request(p.offline_note_list_request()) == (0x21, b"\xff" * 4, 0)
    assert read_request(p.offline_note_list_request(3, 27)).data == w.note_field(3, 27, 0)[:4]
    assert read_request(p.offline_page_list_request(NOTE)) == (0x22, w.note_field(*NOTE_WIRE), 0)
    req = read_request(p.offline_data_request(NOTE, [1, 2]))
    assert req.cmd == 0x23
    assert req.data == b"\x02\x01" + w.note_field(*NOTE_WIRE) + struct.pack("<III", 2, 1, 2)
    assert read_request(p.offline_data_request(NOTE)).data[10:] == bytes(4)
    assert read_request(p.offline_delete_notes_request(3, 27, [1001])) == (
        0x25,
        w.note_field(*NOTE_WIRE)[:4] + b"\x01" + struct.pack("<I", 1001),
        0,
    )
    assert read_request(p.offline_delete_pages_request(NOTE, [1, 0xC0])) == (
        0x27,
        w.note_field(*NOTE_WIRE) + b"\x02" + struct.pack("<II", 1, 0xC0),
        0,
    )


def test_chunk_ack_carries_a_result_byte():
    assert read_request(p.offline_chunk_ack(0x01C0, True)) == (0xA4, b"\xc0\x01\x01", 0)
    assert read_request(p.offline_chunk_ack(7, False)) == (0xA4, b"\x07\x00\x01", 1)


# --- responses -------------------------------------------------------------------------------


def test_status_response_with_newer_trailing_fields():
    settings_ = w.PenSettings(clock_ms=1_700_000_000_000, battery=42, hover=True, locked=True)
    [status] = decode_stream(w.status_response(settings_))
    assert status == PenStatus(
        locked=True,
        max_retries=10,
        retries=0,
        pen_time_ms=1_700_000_000_000,
        auto_power_off_min=20,
        max_force=1023,
        storage_used_percent=3,
        cap_power_off=True,
        auto_power_on=True,
        beep=False,
        hover=True,
        battery_percent=42,
        offline_storage=True,
        sensitivity=0,
    )


@pytest.mark.parametrize(
    ("wire", "event"),
    [
        (w.password_response(True, 0), PasswordResult(True, 0, 10)),
        (w.password_response(False, 3), PasswordResult(False, 3, 10)),
        (w.password_change_response(0), PasswordChanged(0, 10)),
        (w.setting_changed(1), SettingChanged(1)),
        (w.done(0x11), Acknowledged(0x11)),
        (w.done(0x25), Acknowledged(0x25)),
        (w.done(0x27), Acknowledged(0x27)),
        (w.failed(0x05, 2), CommandFailed(0x05, 2)),
        (w.failed(0x01), CommandFailed(0x01, 1)),
        (w.offline_data_start(12, 3400), OfflineDataStart(12, 3400, True)),
        (
            w.offline_note_list([NOTE_WIRE, (0xC0, 0x7D7DC1, 7)]),
            OfflineNoteList((NOTE, NoteId(0xC0, 0x7D7DC1, 7))),
        ),
        (w.offline_page_list(NOTE_WIRE, [1, 2, 9]), OfflinePageList(NOTE, (1, 2, 9))),
        (w.offline_page_list(NOTE_WIRE, []), OfflinePageList(NOTE, ())),
        (w.battery(12), Battery(12)),
        (w.power_off(3), PowerOff(3)),
    ],
)
def test_responses_and_events_decode_to_typed_events(wire, event):
    assert decode_stream(wire) == [event]


@pytest.mark.parametrize(
    "wire",
    [
        w.response(0x82, 0, b"\x01\x00"),
        w.response(0x84, 0, bytes(22)),
        w.response(0x85, 0, b""),
        w.response(0xA1, 0, b"\x02\x00" + bytes(8)),  # says 2 notes, holds 1
        w.response(0xA2, 0, bytes(8) + b"\x01\x00"),
        w.response(0xA3, 0, bytes(8)),
        w.response(0x81, 0, bytes(63)),
        w.event(0x61, b""),
        w.event(0x6D, bytes(11)),
        w.event(0x6F, bytes(7)),
    ],
)
def test_short_responses_and_events_are_bad_length(wire):
    events = decode_stream(wire)
    assert reasons(events) == ["bad_length"] and len(events) == 1


def test_unknown_response_is_passed_up_and_counted():
    events = decode_stream(w.response(0x9E, 0, b"\x01"))
    assert events[0] == UnknownCommand(0x9E, b"\x01")
    assert reasons(events) == ["unknown_command"]


# --- events around strokes ---------------------------------------------------------------------


def stroke_start(counter: int = 0) -> bytes:
    return w.pen_down(counter, 1_000) + w.paper_info(counter + 1, 3, 27, 1001, 1)


def test_error_dots_keep_the_counter_and_the_clock_but_are_not_points():
    data = stroke_start() + w.dot(2, 5, 400, 1, 1) + w.error_dot(3, 7, 380) + w.dot(4, 5, 400, 2, 2)
    events = decode_stream(data)  # no PenUp: the stroke is closed at the link's end
    assert [type(e) for e in events][2:] == [Dot, ErrorDot, Dot, PenUp]
    assert events[3].dt_ms == 7 and events[3].error_code == 3 and events[3].force == 380
    assert events[-1].synthetic and events[-1].timestamp_ms == 1_000 + 5 + 7 + 5
    assert events[-1].dot_count == 2
    assert not any(isinstance(e, EventGap) for e in events)


def test_hover_between_strokes():
    events = decode_stream(w.hover(0, 10, 12.25, 30.5) + stroke_start(1))
    assert events[0] == Hover(12.25, 30.5, 10)
    assert not any(isinstance(e, EventGap) for e in events)
    assert reasons(decode_stream(w.event(0x6F, bytes(6) + b"\x64\x00"))) == ["bad_value"]


def test_power_off_inside_a_stroke_closes_it():
    events = decode_stream(stroke_start() + w.dot(2, 5, 400, 1, 1) + w.power_off(1))
    assert [type(e).__name__ for e in events] == [
        "PenDown",
        "PaperInfo",
        "Dot",
        "Rejected",
        "PenUp",
        "PowerOff",
    ]
    assert events[3].reason == "stroke_cut" and events[4].synthetic


def test_battery_and_power_off_carry_no_counter():
    events = decode_stream(stroke_start() + w.battery(5) + w.dot(2, 5, 400, 1, 1))
    assert not any(isinstance(e, EventGap) for e in events)


# --- offline chunks ----------------------------------------------------------------------------

STROKES = [
    w.StoredStroke(
        1,
        1_700_000_000_000,
        1_700_000_000_016,
        (w.OfflineDot(0, 300, 10.5, 20.25), w.OfflineDot(8, 0x7DC0, 0xC1 + 0.99, 0x7D + 0.0)),
    ),
    w.StoredStroke(2, 1_700_000_001_000, 1_700_000_001_000, (w.OfflineDot(0, 1, 1, 1),), tip=1),
]


@pytest.mark.parametrize("compress", [True, False])
def test_offline_chunk_decodes_every_stroke_and_dot(compress):
    [chunk] = decode_stream(w.offline_chunk(5, w.CHUNK_LAST, NOTE_WIRE, STROKES, compress))
    assert isinstance(chunk, OfflineChunk)
    assert (chunk.packet_id, chunk.last, chunk.note) == (5, True, NOTE)
    first, second = chunk.strokes
    assert first.address == "3.27.1001.1" and second.address == "3.27.1001.2"
    assert (first.start_ms, first.end_ms, first.tip_type, second.tip_type) == (
        1_700_000_000_000,
        1_700_000_000_016,
        0,
        1,
    )
    assert first.dots == (
        Dot(10.5, 20.25, 300, 0, 60, 60, 0),
        Dot(0xC1 + 0.99, 0x7D, 0x7DC0, 8, 60, 60, 0),
    )
    assert first.key == "3.27.1001.1/1700000000000/1700000000016/2"


def test_first_and_middle_chunks_are_not_last():
    for position in (w.CHUNK_FIRST, w.CHUNK_MIDDLE):
        [chunk] = decode_stream(w.offline_chunk(0, position, NOTE_WIRE, STROKES))
        assert not chunk.last


def chunk_data(raw: bytes, *, count: int = 1, compress: bool = True, sent: bytes | None = None):
    body = (zlib.compress(raw) if compress else raw) if sent is None else sent
    header = struct.pack("<HBHHB", 9, compress, len(raw), len(body), 2)
    return w.event(0x24, header + w.note_field(*NOTE_WIRE) + struct.pack("<H", count) + body)


GOOD_RAW = w.stroke_body(STROKES[0])


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (chunk_data(GOOD_RAW[:-1] + bytes((GOOD_RAW[-1] ^ 1,))), "offline_checksum"),
        (chunk_data(GOOD_RAW, compress=False, sent=GOOD_RAW[:-1]), "offline_bad_size"),
        (chunk_data(GOOD_RAW + b"\x00"), "offline_bad_size"),
        (chunk_data(GOOD_RAW, count=2), "offline_bad_size"),
        (chunk_data(GOOD_RAW, sent=b"not zlib at all"), "offline_bad_zlib"),
        (chunk_data(GOOD_RAW, sent=zlib.compress(GOOD_RAW)[:-3]), "offline_bad_zlib"),
        (chunk_data(GOOD_RAW, compress=False, sent=GOOD_RAW + b"\x00"), "offline_bad_size"),
    ],
    ids=["checksum", "short_body", "left_over", "missing_stroke", "zlib", "zlib_cut", "raw_long"],
)
def test_a_bad_chunk_is_refused_whole(wire, reason):
    events = decode_stream(wire)
    assert reasons(events) == [reason]
    assert events[-1] == OfflineChunkRejected(9, reason)


def test_a_chunk_too_short_for_its_header():
    events = decode_stream(w.event(0x24, b"\x04\x00\x01"))
    assert reasons(events) == ["bad_length"] and events[-1] == OfflineChunkRejected(4, "bad_length")
    assert reasons(decode_stream(w.event(0x24, b"\x04"))) == ["bad_length"]


def test_a_fraction_over_99_in_an_offline_dot_refuses_the_chunk():
    raw = bytearray(GOOD_RAW)
    dot = 27  # the first dot, after the stroke header
    raw[dot + 7] = 100
    raw[dot + 15] = sum(raw[dot : dot + 15]) & 0xFF
    assert reasons(decode_stream(chunk_data(bytes(raw)))) == ["bad_value"]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_damaged_chunk_is_never_half_used(data):
    raw = bytearray(b"".join(w.stroke_body(s) for s in STROKES))
    where = data.draw(st.integers(0, len(raw) - 1))
    raw[where] ^= data.draw(st.integers(1, 255))
    events = decode_stream(chunk_data(bytes(raw), count=2, compress=data.draw(st.booleans())))
    if any(isinstance(e, OfflineChunk) for e in events):
        # Only a change the layout cannot see (a reserved byte, or colour/tip/time) may pass.
        [chunk] = events
        assert [len(s.dots) for s in chunk.strokes] == [2, 1]
    else:
        assert isinstance(events[-1], OfflineChunkRejected)
