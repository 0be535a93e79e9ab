"""The Cython MQTT frame splitter (ext.mqttframes) against its Python reference and MQTT 5.0.

Packets are built by a small encoder written here from the spec (§2.1.4 variable byte integers,
§3.3 PUBLISH), independent of the project's own encoders.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ext import mqttframes, mqttframes_ref
from ext.mqttframes_ref import FrameError

SPLITTERS = [
    pytest.param(mqttframes.split, id="cython"),
    pytest.param(mqttframes_ref.split, id="ref"),
]
Split = Callable[[bytes, int, int], tuple[list[tuple[int, str | None, int, bytes]], int]]
MQTT_MAX = 268_435_455


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        value, byte = divmod(value, 128)
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def publish(
    topic: str,
    payload: bytes,
    packet_id: int = 0,
    *,
    qos: int = 1,
    dup: bool = False,
    properties: bytes = b"",
) -> bytes:
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name
    if qos:
        body += struct.pack("!H", packet_id)
    body += varint(len(properties)) + properties + payload
    return bytes([0x30 | qos << 1 | dup << 3]) + varint(len(body)) + body


def outcome(split: Split, data: bytes, start: int = 0, max_packet: int = MQTT_MAX) -> object:
    try:
        return split(data, start, max_packet)
    except FrameError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("split", SPLITTERS)
def test_publishes_and_control_packets_are_split_in_one_pass(split: Split) -> None:
    # A message expiry property (0x02, four bytes) and a user property must be skipped.
    properties = (
        b"\x02\x00\x00\x00\x3c"
        + b"\x26"
        + struct.pack("!H", 1)
        + b"k"
        + struct.pack("!H", 1)
        + b"v"
    )
    data = (
        publish("classink/v1/s/g/answers", b'{"a":1}', 7, properties=properties)
        + publish("classink/v1/s/g/status", b"", qos=0)
        + b"\xd0\x00"  # PINGRESP
        + publish("t/ü", b"x" * 300, 65535, dup=True)
    )
    packets, consumed = split(data, 0, MQTT_MAX)
    assert consumed == len(data)
    assert packets == [
        (0x32, "classink/v1/s/g/answers", 7, b'{"a":1}'),
        (0x30, "classink/v1/s/g/status", 0, b""),
        (0xD0, None, 0, b""),
        (0x3A, "t/ü", 65535, b"x" * 300),
    ]


@pytest.mark.parametrize("split", SPLITTERS)
def test_an_incomplete_packet_is_left_for_the_next_read(split: Split) -> None:
    whole = publish("a/b", b"payload" * 40, 3)
    for cut in range(len(whole)):
        assert split(whole[:cut], 0, MQTT_MAX) == ([], 0)
    two = whole + whole
    packets, consumed = split(two[: len(whole) + 5], 0, MQTT_MAX)
    assert (len(packets), consumed) == (1, len(whole))
    assert split(bytearray(two), len(whole), MQTT_MAX) == (
        [(0x32, "a/b", 3, b"payload" * 40)],
        len(two),
    )


@pytest.mark.parametrize("split", SPLITTERS)
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x32\xff\xff\xff\xff\x01", "longer than four bytes"),
        (publish("a", b"x", qos=0)[:1] + b"\x08" + b"\x00\x01a" + b"\x00" * 5, None),
        (bytes([0x36, 4, 0, 1, ord("a"), 0]), "QoS 3"),
        (bytes([0x38, 4, 0, 1, ord("a"), 0]), "DUP set at QoS 0"),
        (bytes([0x32, 1, 0]), "shorter than its topic length"),
        (bytes([0x32, 3, 0, 5, ord("a")]), "topic longer than the packet"),
        (bytes([0x32, 5, 0, 0, 0, 1, 0]), "empty topic"),
        (bytes([0x32, 6, 0, 1, 0xFF, 0, 1, 0]), "not UTF-8"),
        (bytes([0x32, 4, 0, 1, ord("a"), 0]), "packet identifier"),
        (bytes([0x32, 6, 0, 1, ord("a"), 0, 0, 0]), "packet identifier 0"),
        (bytes([0x32, 5, 0, 1, ord("a"), 0, 1]), "properties length runs past"),
        (bytes([0x32, 7, 0, 1, ord("a"), 0, 1, 0x85, 0x80]), "properties length runs past"),
        (bytes([0x32, 10, 0, 1, ord("a"), 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), "malformed"),
        (bytes([0x32, 7, 0, 1, ord("a"), 0, 1, 5, 0]), "properties longer than the packet"),
    ],
)
def test_malformed_packets_are_refused_alike(
    split: Split, data: bytes, message: str | None
) -> None:
    if message is None:  # a well-formed QoS 0 publish with a 5-byte payload, for contrast
        packets, consumed = split(data, 0, MQTT_MAX)
        assert consumed == len(data) and packets[0][3] == b"\x00" * 4
        return
    with pytest.raises(FrameError, match=message):
        split(data, 0, MQTT_MAX)


@pytest.mark.parametrize("split", SPLITTERS)
def test_oversize_packets_are_refused_before_they_are_buffered(split: Split) -> None:
    header_only = b"\x32" + varint(1025)  # the body has not arrived yet
    with pytest.raises(FrameError, match="larger than 1024"):
        split(header_only, 0, 1024)
    assert split(header_only, 0, 1025) == ([], 0)


messages = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=30).filter(lambda t: "\x00" not in t),
        st.binary(max_size=300),
        st.integers(1, 65535),
        st.integers(0, 1),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(messages, st.data())
def test_kernel_and_reference_agree_on_valid_streams(
    batch: list[tuple[str, bytes, int, int]], data: st.DataObject
) -> None:
    stream = b"".join(publish(t, p, i, qos=q) for t, p, i, q in batch)
    cut = data.draw(st.integers(0, len(stream)))
    expected = outcome(mqttframes_ref.split, stream[:cut])
    assert outcome(mqttframes.split, stream[:cut]) == expected
    if cut == len(stream):
        packets, consumed = expected  # type: ignore[misc]
        assert consumed == len(stream)
        assert packets == [
            (0x30 | qos << 1, topic, packet_id if qos else 0, payload)
            for topic, payload, packet_id, qos in batch
        ]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 8), st.integers(0, 300))
def test_kernel_and_reference_agree_on_arbitrary_bytes(
    data: bytes, start: int, max_packet: int
) -> None:
    start = min(start, len(data))
    assert outcome(mqttframes.split, data, start, max_packet) == outcome(
        mqttframes_ref.split, data, start, max_packet
    )
