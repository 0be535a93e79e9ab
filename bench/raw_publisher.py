"""The ingest benchmark's gateways: pre-encoded MQTT v5 PUBLISH packets over a raw socket.

A test harness, not a client: paho's pure-Python publishing cost as much CPU per answer as central
itself, and on a 2-core machine the publishers starved the worker they were meant to load. Here a
publish is a timestamp patched into ready bytes and one send; PUBACKs are read with the same frame
splitter central uses (ext/mqttframes.pyx), and the broker's Receive Maximum is honoured.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable

from ext.mqttframes import split

from central.mqtt_subscriber.protocol import ConnectOptions, encode_connect, encode_disconnect

_PUBACK_TYPE = 4
_CONNACK_TYPE = 2
_RECEIVE_MAXIMUM = 0x21
_MAX_PACKET = 1 << 20
_MAX_WINDOW = 2000


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """A QoS 1 PUBLISH with no properties."""
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name + struct.pack("!H", packet_id) + b"\x00" + payload
    return b"\x32" + _varint(len(body)) + body


def _receive_maximum(connack_body: bytes) -> int:
    """The broker's Receive Maximum from CONNACK properties (65535 when absent, §3.2.2.3.3)."""
    pos, length, shift = 2, 0, 0
    while True:
        byte = connack_body[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    end = pos + length
    while pos < end:
        identifier = connack_body[pos]
        if identifier == _RECEIVE_MAXIMUM:
            return struct.unpack_from("!H", connack_body, pos + 1)[0]
        pos += 1 + _property_size(identifier, connack_body, pos + 1)
    return 65535


def _property_size(identifier: int, data: bytes, pos: int) -> int:
    if identifier in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):
        return 1
    if identifier in (0x13, 0x21, 0x22):
        return 2
    if identifier in (0x02, 0x11, 0x18, 0x27):
        return 4
    if identifier in (0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F):
        return 2 + struct.unpack_from("!H", data, pos)[0]
    if identifier == 0x26:  # user property: two strings
        first = 2 + struct.unpack_from("!H", data, pos)[0]
        return first + 2 + struct.unpack_from("!H", data, pos + first)[0]
    raise ValueError(f"unknown CONNACK property 0x{identifier:02x}")


class RawPublisher:
    """Publishes at QoS 1 over one connection; `publish_all` returns once every PUBACK is in."""

    def __init__(self, port: int, client_id: str, host: str = "127.0.0.1") -> None:
        self._sock = socket.create_connection((host, port), timeout=30)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        options = ConnectOptions(
            client_id=client_id,
            keepalive_s=0,
            session_expiry_s=0,
            receive_maximum=65535,
            clean_start=True,
        )
        self._sock.sendall(encode_connect(options))
        self._buffer = bytearray()
        packets = self._read()
        first, _, _, body = packets[0]
        if first >> 4 != _CONNACK_TYPE or body[1] >= 0x80:
            raise ConnectionRefusedError(f"broker refused the benchmark publisher: {body!r}")
        # Packet ids are reused once acknowledged; a window far below 65535 keeps them unique.
        self._window = min(_receive_maximum(body), _MAX_WINDOW)
        self._unacked = 0

    def _read(self) -> list[tuple[int, str | None, int, bytes]]:
        while True:
            data = self._sock.recv(1 << 16)
            if not data:
                raise ConnectionError("the broker closed the publisher's connection")
            self._buffer += data
            packets, used = split(self._buffer, 0, _MAX_PACKET)
            del self._buffer[:used]
            if packets:
                return packets

    def _collect_acks(self) -> None:
        for first, _, _, _ in self._read():
            if first >> 4 == _PUBACK_TYPE:
                self._unacked -= 1

    def publish_all(self, messages: Iterable[tuple[str, bytes]]) -> None:
        """Publishes each (topic, payload) as the iterable yields it (so it may pace and stamp)."""
        packet_id = 0
        for topic, payload in messages:
            while self._unacked >= self._window:
                self._collect_acks()
            packet_id = packet_id % 65535 + 1
            self._sock.sendall(publish_packet(topic, payload, packet_id))
            self._unacked += 1
        while self._unacked:
            self._collect_acks()

    def close(self) -> None:
        self._sock.sendall(encode_disconnect())
        self._sock.close()
