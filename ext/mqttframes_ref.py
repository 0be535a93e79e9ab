"""Plain-Python reference of the MQTT v5 frame splitter (OASIS MQTT 5.0, §2.1, §2.2.1, §3.3).

`ext/mqttframes.pyx` must return exactly what this module returns, or raise the same error, for
every input: this is the readable statement of the rules, and the baseline the kernel is
benchmarked against.

split(data, start, max_packet) -> (packets, consumed)

Takes every complete packet in data[start:] and stops at the first incomplete one; `consumed` is
the offset just past the last complete packet. Each packet is a tuple
(first_byte, topic, packet_id, body):

- PUBLISH (type 3): topic is the topic name (str), packet_id the packet identifier (0 at QoS 0),
  body the application payload (the properties are skipped).
- any other type: topic is None, packet_id 0, body the whole variable header and payload, which
  the protocol core decodes (those packets are rare).

Malformed input raises FrameError: a remaining length over four bytes or above max_packet, a
PUBLISH at QoS 3, with the DUP flag at QoS 0, without a packet identifier at QoS 1 or 2, with a
topic or properties longer than the packet, an empty topic (we allow no topic aliases) or a topic
that is not UTF-8.
"""

PUBLISH = 3


class FrameError(ValueError):
    """The bytes are not a well-formed MQTT v5 packet; the connection must be closed."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """A variable byte integer at data[pos:end] as (value, next position); None if incomplete."""
    value = 0
    for shift in range(4):
        if pos >= end:
            return None
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * shift)
        if not byte & 0x80:
            return value, pos
    raise FrameError("variable byte integer longer than four bytes")


def _publish(first: int, data: bytes, pos: int, end: int) -> tuple[int, str, int, bytes]:
    qos = (first >> 1) & 3
    if qos == 3:
        raise FrameError("PUBLISH with QoS 3")
    if qos == 0 and first & 0x08:
        raise FrameError("PUBLISH with DUP set at QoS 0")
    if end - pos < 2:
        raise FrameError("PUBLISH shorter than its topic length")
    topic_len = (data[pos] << 8) | data[pos + 1]
    pos += 2
    if topic_len == 0:
        raise FrameError("PUBLISH with an empty topic (topic aliases are not allowed)")
    if topic_len > end - pos:
        raise FrameError("PUBLISH topic longer than the packet")
    try:
        topic = bytes(data[pos : pos + topic_len]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError("PUBLISH topic is not UTF-8") from exc
    pos += topic_len
    packet_id = 0
    if qos:
        if end - pos < 2:
            raise FrameError("PUBLISH shorter than its packet identifier")
        packet_id = (data[pos] << 8) | data[pos + 1]
        pos += 2
        if packet_id == 0:
            raise FrameError("PUBLISH with packet identifier 0")
    try:
        found = _varint(data, pos, end)
    except FrameError as exc:
        raise FrameError("PUBLISH properties length is malformed") from exc
    if found is None:
        raise FrameError("PUBLISH properties length runs past the packet")
    properties_len, pos = found
    if properties_len > end - pos:
        raise FrameError("PUBLISH properties longer than the packet")
    pos += properties_len
    return first, topic, packet_id, bytes(data[pos:end])


def split(
    data: bytes | bytearray, start: int, max_packet: int
) -> tuple[list[tuple[int, str | None, int, bytes]], int]:
    packets: list[tuple[int, str | None, int, bytes]] = []
    size = len(data)
    pos = start
    while pos < size:
        first = data[pos]
        found = _varint(data, pos + 1, size)
        if found is None:
            break
        remaining, body = found
        if remaining > max_packet:
            raise FrameError(f"packet of {remaining} bytes is larger than {max_packet}")
        end = body + remaining
        if end > size:
            break
        if first >> 4 == PUBLISH:
            packets.append(_publish(first, data, body, end))
        else:
            packets.append((first, None, 0, bytes(data[body:end])))
        pos = end
    return packets, pos
