"""The sans-I/O protocol core against the simulator's independent pen-side encoder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.events import Dot, EventGap, PaperInfo, PenDown, PenInfo, PenUp, Rejected
from firmware_bridge.protocol import PenConnection, decode_stream, version_request
from hardware_sim import pen_wire as w

MAC = bytes.fromhex("9c7bef000001")


def stroke(counter: int, page=(3, 27, 1001, 1), dots=((10.5, 20.25), (10.75, 20.5))) -> bytes:
    out = w.pen_down(counter, 1_700_000_000_000) + w.paper_info(counter + 1, *page)
    for i, (x, y) in enumerate(dots):
        out += w.dot(counter + 2 + i, 8, 400, x, y)
    return out + w.pen_up(counter + 2 + len(dots), 1_700_000_000_016, len(dots))


def in_chunks(data: bytes, cuts: list[int]) -> list:
    """Feed data split at the given chunk sizes, then close the link."""
    conn = PenConnection()
    events, i = [], 0
    for n in cuts:
        events += conn.receive_data(data[i : i + n])
        i += n
    return events + conn.receive_data(data[i:]) + conn.close()


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


def test_handshake_identifies_the_pen():
    events = decode_stream(w.version_response("NWP-F121", "1.10", MAC))
    assert events == [PenInfo("NWP-F121", "1.10", "2.18", "classink-sim", 1, MAC)]
    assert events[0].pen_id == "9c:7b:ef:00:00:01"


def test_version_request_is_what_the_pen_expects():
    [(cmd, data, _)] = w.RequestReader().feed(version_request("classink 0.1.0"))
    assert cmd == 0x01 and len(data) == 42 and data[34:38] == b"2.18"


def test_a_stroke_decodes_to_ordered_events_with_positions():
    events = decode_stream(stroke(0))
    assert kinds(events) == ["PenDown", "PaperInfo", "Dot", "Dot", "PenUp"]
    assert events[1] == PaperInfo(3, 27, 1001, 1) and events[1].address == "3.27.1001.1"
    assert (events[2].x, events[2].y, events[2].force, events[2].dt_ms) == (10.5, 20.25, 400, 8)
    assert (
        events[0].timestamp_ms == 1_700_000_000_000 and events[4].timestamp_ms == 1_700_000_000_016
    )


def test_bytes_that_need_escaping_survive():
    # x = 0xC0 + 0x7D * 256 puts both special bytes into the Dot body.
    x = 0x7DC0 + 0.5
    [_, _, dot, _] = decode_stream(
        w.pen_down(0, 5)
        + w.paper_info(1, 0xC1, 0x7D, 0xC0, 0x7D)
        + w.dot(2, 8, 1, x, 1.0)
        + w.pen_up(3, 6, 1)
    )[:4]
    assert isinstance(dot, Dot) and dot.x == x


def test_cut_stroke_gets_a_synthetic_pen_up():
    data = w.pen_down(0, 1) + w.paper_info(1, 3, 27, 1001, 1) + w.dot(2, 8, 1, 1, 1) + stroke(3)
    events = decode_stream(data)
    assert kinds(events)[:5] == ["PenDown", "PaperInfo", "Dot", "Rejected", "PenUp"]
    assert events[3].reason == "stroke_cut" and events[4].synthetic


def test_page_change_inside_a_stroke_splits_it():
    data = w.pen_down(0, 1) + w.paper_info(1, 3, 27, 1001, 1) + w.dot(2, 8, 1, 1, 1)
    data += w.paper_info(3, 3, 27, 1001, 2) + w.dot(4, 8, 1, 2, 2) + w.pen_up(5, 9, 2)
    events = decode_stream(data)
    assert kinds(events) == [
        "PenDown",
        "PaperInfo",
        "Dot",
        "Rejected",
        "PenUp",
        "PenDown",
        "PaperInfo",
        "Dot",
        "PenUp",
    ]
    assert (
        events[3].reason == "page_change_in_stroke" and events[4].synthetic and events[5].synthetic
    )


def test_dot_without_page_is_never_emitted():
    events = decode_stream(w.pen_down(0, 1) + w.dot(1, 8, 1, 1, 1) + w.pen_up(2, 2, 1))
    assert [e.reason for e in events if isinstance(e, Rejected)] == ["dot_without_page"]
    assert not any(isinstance(e, Dot) for e in events)


def test_lost_events_are_reported_as_a_gap():
    events = decode_stream(w.pen_down(0, 1) + w.paper_info(5, 3, 27, 1001, 1))
    assert EventGap(expected=1, received=5) in events


def test_link_loss_closes_the_open_stroke():
    conn = PenConnection()
    conn.receive_data(
        w.pen_down(0, 1) + w.paper_info(1, 3, 27, 1001, 1) + w.dot(2, 8, 1, 1, 1) + b"\xc0\x6c\x0e"
    )
    closing = conn.close()
    assert [type(e) for e in closing] == [Rejected, PenUp]
    assert closing[0].reason == "truncated" and closing[1].synthetic


@pytest.mark.parametrize(
    ("noise", "reason"),
    [
        (b"\x01\x02\x03", "garbage"),
        (bytes((0xC0, 0x6C, 0x20, 0x00, 1, 2, 3, 0xC1)), "bad_length"),
        (bytes((0xC0, 0x6C, 0x7D, 0x11, 0xC1)), "bad_escape"),
        (bytes((0xC0, 0xC1)), "too_short"),
    ],
)
def test_corrupt_frames_are_rejected_and_good_ones_kept(noise, reason):
    events = decode_stream(stroke(0) + noise + stroke(5))
    assert [e.reason for e in events if isinstance(e, Rejected)] == [reason]
    assert kinds([e for e in events if not isinstance(e, Rejected)]) == 2 * [
        "PenDown",
        "PaperInfo",
        "Dot",
        "Dot",
        "PenUp",
    ]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(1, 64), max_size=20))
def test_any_bytes_in_any_chunks_never_crash_and_keep_stroke_order(data, cuts):
    events = in_chunks(data, cuts)
    open_stroke = False
    for e in events:
        if isinstance(e, PenDown):
            assert not open_stroke
            open_stroke = True
        elif isinstance(e, PenUp):
            assert open_stroke
            open_stroke = False
        elif isinstance(e, Dot):
            assert open_stroke
    assert not open_stroke


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_chunking_does_not_change_a_clean_stream(cuts):
    data = w.version_response("p", "1", MAC) + stroke(0) + stroke(5) + stroke(10)
    whole = decode_stream(data)
    events = in_chunks(data, cuts)
    assert events == whole


def test_a_gap_inside_a_run_of_dots_is_reported_where_it_happened():
    data = w.pen_down(0, 1) + w.paper_info(1, 3, 27, 1001, 1)
    data += (
        w.dot(2, 8, 1, 1, 1) + w.dot(3, 8, 1, 2, 2) + w.dot(7, 8, 1, 3, 3) + w.dot(8, 8, 1, 4, 4)
    )
    events = decode_stream(data + w.pen_up(9, 40, 4))
    assert kinds(events) == [
        "PenDown",
        "PaperInfo",
        "Dot",
        "Dot",
        "EventGap",
        "Dot",
        "Dot",
        "PenUp",
    ]
    assert events[4] == EventGap(expected=4, received=7) and events[5].x == 3.0


def test_a_stroke_whose_pen_down_was_lost_is_kept_from_its_paper_info():
    # stroke(0) ends with PenUp counter 4; the next stroke's PenDown (5) never arrived.
    later = (
        w.paper_info(6, 3, 27, 1001, 1)
        + w.dot(7, 8, 400, 11, 21)
        + w.pen_up(8, 1_700_000_000_900, 1)
    )
    events = decode_stream(stroke(0) + later)
    assert kinds(events)[5:] == ["EventGap", "Rejected", "PenDown", "PaperInfo", "Dot", "PenUp"]
    assert events[6].reason == "pen_down_lost"
    assert events[7].synthetic and events[7].timestamp_ms == 1_700_000_000_016  # last PenUp


def test_paper_info_outside_a_stroke_without_a_gap_opens_nothing():
    events = decode_stream(stroke(0) + w.paper_info(5, 3, 27, 1001, 2) + w.dot(6, 8, 1, 1, 1))
    assert kinds(events)[5:] == ["PaperInfo", "Rejected"]
    assert events[6].reason == "dot_without_pen_down"
