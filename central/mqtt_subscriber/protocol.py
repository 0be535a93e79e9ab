"""Sans-I/O core of central's MQTT v5 subscriber: bytes in, events out; packets to send as bytes.

It knows only what central needs (OASIS MQTT 5.0): CONNECT with a persistent session,
SUBSCRIBE, PUBLISH received at QoS 0 or 1, PUBACK sent when the caller says so, PINGREQ and
DISCONNECT. PUBLISH packets are split by the Cython kernel ext/mqttframes.pyx (reference
ext/mqttframes_ref.py), many per call; the rare other packets are decoded here. Anything a broker
must not send us raises ProtocolError, after which the connection must be dropped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ext.mqttframes import split

from ext.mqttframes_ref import FrameError

# The largest packet MQTT can frame (a four-byte remaining length).
MQTT_MAX_PACKET = 268_435_455

_CONNECT = 0x10
_CONNACK = 2
_PUBLISH = 3
_PUBACK = 0x40
_SUBSCRIBE = 0x82
_SUBACK = 9
_PINGREQ = b"\xc0\x00"
_PINGRESP = 13
_DISCONNECT = 14
_DISCONNECT_NORMALLY = b"\xe0\x00"

# CONNECT properties (§3.1.2.11).
_SESSION_EXPIRY = 0x11
_RECEIVE_MAXIMUM = 0x21
# SUBSCRIBE options byte (§3.8.3.1): retain handling 1 = send retained only if new subscription.
RETAIN_SEND_ALWAYS = 0
RETAIN_SEND_IF_NEW = 1
# Reason codes below this are successes (§2.4).
_FIRST_FAILURE = 0x80


class ProtocolError(Exception):
    """The broker sent something MQTT v5 forbids, or central does not accept."""


@dataclass(frozen=True)
class ConnectOptions:
    client_id: str
    keepalive_s: int
    session_expiry_s: int
    receive_maximum: int
    clean_start: bool = False
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.keepalive_s <= 0xFFFF:
            raise ValueError(f"keepalive must be 0..65535 s, not {self.keepalive_s}")
        if not 0 <= self.session_expiry_s <= 0xFFFFFFFF:
            raise ValueError(f"session expiry must fit 32 bits, not {self.session_expiry_s}")
        if not 1 <= self.receive_maximum <= 0xFFFF:
            raise ValueError(f"receive maximum must be 1..65535, not {self.receive_maximum}")
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")


@dataclass(frozen=True)
class Subscription:
    topic_filter: str
    qos: int = 1
    retain_handling: int = RETAIN_SEND_ALWAYS

    def __post_init__(self) -> None:
        if self.qos not in (0, 1):
            raise ValueError(f"central subscribes at QoS 0 or 1, not {self.qos}")
        if self.retain_handling not in (RETAIN_SEND_ALWAYS, RETAIN_SEND_IF_NEW):
            raise ValueError(f"unsupported retain handling {self.retain_handling}")
        if not self.topic_filter:
            raise ValueError("empty topic filter")


@dataclass(frozen=True, slots=True)
class Connected:
    session_present: bool


@dataclass(frozen=True, slots=True)
class Refused:
    reason_code: int


@dataclass(frozen=True, slots=True)
class Subscribed:
    reason_codes: tuple[int, ...]

    @property
    def refused(self) -> tuple[int, ...]:
        return tuple(code for code in self.reason_codes if code >= _FIRST_FAILURE)


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    packet_id: int  # 0 at QoS 0, which needs no acknowledgement
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Pong:
    pass


@dataclass(frozen=True, slots=True)
class ServerDisconnected:
    reason_code: int


Event = Connected | Refused | Subscribed | Message | Pong | ServerDisconnected


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError("string longer than 65535 bytes")
    return struct.pack("!H", len(data)) + data


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def encode_connect(options: ConnectOptions) -> bytes:
    flags = 0x02 if options.clean_start else 0
    payload = _utf8(options.client_id)
    if options.username is not None:
        flags |= 0x80
        payload += _utf8(options.username)
    if options.password is not None:
        flags |= 0x40
        payload += _utf8(options.password)
    properties = struct.pack(
        "!BIBH",
        _SESSION_EXPIRY,
        options.session_expiry_s,
        _RECEIVE_MAXIMUM,
        options.receive_maximum,
    )
    header = _utf8("MQTT") + struct.pack("!BBH", 5, flags, options.keepalive_s)
    return _packet(_CONNECT, header + _varint(len(properties)) + properties + payload)


def encode_subscribe(packet_id: int, subscriptions: list[Subscription]) -> bytes:
    body = struct.pack("!H", packet_id) + b"\x00"
    for sub in subscriptions:
        body += _utf8(sub.topic_filter) + bytes([sub.qos | sub.retain_handling << 4])
    return _packet(_SUBSCRIBE, body)


def encode_pubacks(packet_ids: list[int]) -> bytes:
    """PUBACKs with reason Success, all in one buffer (one send for a whole batch)."""
    return b"".join(struct.pack("!BBH", _PUBACK, 2, packet_id) for packet_id in packet_ids)


def encode_pingreq() -> bytes:
    return _PINGREQ


def encode_disconnect() -> bytes:
    return _DISCONNECT_NORMALLY


class SubscriberProtocol:
    """One connection's receiving side: feed it what the socket read, act on the events."""

    def __init__(self, max_packet: int = MQTT_MAX_PACKET) -> None:
        self._max_packet = max_packet
        self._buffer = bytearray()
        self._connected = False

    def receive(self, data: bytes) -> list[Event]:
        buffer = self._buffer
        buffer += data
        try:
            packets, consumed = split(buffer, 0, self._max_packet)
        except FrameError as exc:
            raise ProtocolError(str(exc)) from exc
        del buffer[:consumed]
        events: list[Event] = []
        for first, topic, packet_id, body in packets:
            if topic is not None:
                if not self._connected:
                    raise ProtocolError("PUBLISH before CONNACK")
                if first & 0x06 == 0x04:
                    raise ProtocolError("PUBLISH at QoS 2, above what central subscribed to")
                events.append(Message(topic, body, packet_id, bool(first & 0x08)))
            else:
                events.append(self._control(first, body))
        return events

    def _control(self, first: int, body: bytes) -> Event:
        kind = first >> 4
        if kind == _CONNACK:
            if self._connected:
                raise ProtocolError("a second CONNACK")
            if first & 0x0F or len(body) < 2:
                raise ProtocolError("malformed CONNACK")
            if body[1] >= _FIRST_FAILURE:
                return Refused(body[1])
            self._connected = True
            return Connected(bool(body[0] & 0x01))
        if not self._connected:
            raise ProtocolError(f"packet type {kind} before CONNACK")
        if kind == _SUBACK:
            if len(body) < 3:
                raise ProtocolError("malformed SUBACK")
            properties_end = self._after_properties(body, 2)
            return Subscribed(tuple(body[properties_end:]))
        if kind == _PINGRESP:
            return Pong()
        if kind == _DISCONNECT:
            return ServerDisconnected(body[0] if body else 0)
        raise ProtocolError(f"unexpected packet type {kind}")

    @staticmethod
    def _after_properties(body: bytes, pos: int) -> int:
        length = 0
        for shift in range(4):
            if pos >= len(body):
                break
            byte = body[pos]
            pos += 1
            length |= (byte & 0x7F) << (7 * shift)
            if not byte & 0x80:
                if pos + length > len(body):
                    break
                return pos + length
        raise ProtocolError("malformed properties")
