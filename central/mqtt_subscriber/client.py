"""Central's MQTT v5 subscriber: the socket, TLS, keepalive and reconnects around the sans-I/O
core in protocol.py.

One I/O thread owns the socket and does every read and write (an SSL socket must not be read and
written from two threads at once). Messages go to the handler a whole receive buffer at a time;
QoS 1 messages stay unacknowledged until `ack` is called with their packet ids, which the I/O
thread then sends as PUBACKs in one write. Packet ids only mean something on the connection that
delivered them, so every connection has a generation number and acks for an older one are
dropped: the broker redelivers those messages on the next connection (persistent session).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from central.mqtt_subscriber.protocol import (
    MQTT_MAX_PACKET,
    Connected,
    ConnectOptions,
    Message,
    Pong,
    ProtocolError,
    Refused,
    ServerDisconnected,
    Subscribed,
    SubscriberProtocol,
    Subscription,
    encode_connect,
    encode_disconnect,
    encode_pingreq,
    encode_pubacks,
    encode_subscribe,
)

logger = logging.getLogger(__name__)

_RECV_BYTES = 1 << 18


class SubscriberHandler(Protocol):
    """Called on the I/O thread: keep it quick (hand messages to another thread)."""

    def on_connected(self, session_present: bool) -> None: ...

    def on_subscribed(self, refused: Sequence[int]) -> None: ...

    def on_disconnected(self, reason: str) -> None: ...

    def on_messages(self, generation: int, messages: list[Message]) -> None: ...


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls_ca: Path | None = None
    connect_timeout_s: float = 10.0


class MqttSubscriber:
    def __init__(
        self,
        address: BrokerAddress,
        options: ConnectOptions,
        subscriptions: list[Subscription],
        handler: SubscriberHandler,
        *,
        min_retry_delay_s: float = 1.0,
        max_retry_delay_s: float = 30.0,
        max_packet: int = MQTT_MAX_PACKET,
    ) -> None:
        self._address = address
        self._options = options
        self._subscriptions = subscriptions
        self._handler = handler
        self._min_delay = min_retry_delay_s
        self._max_delay = max_retry_delay_s
        self._max_packet = max_packet
        self._lock = threading.Lock()
        self._generation = 0
        self._pending_acks: list[int] = []
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="mqtt-subscriber", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def ack(self, generation: int, packet_ids: Sequence[int]) -> bool:
        """Queues PUBACKs for packet ids delivered on `generation`; False if that connection is
        gone (the broker will redeliver those messages)."""
        with self._lock:
            if generation != self._generation:
                return False
            self._pending_acks.extend(packet_ids)
        self._wake()
        return True

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._wake_r.close()
            self._wake_w.close()

    def _wake(self) -> None:
        # BlockingIOError: already woken (the buffer is full); OSError: already stopped.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\x00")

    def _run(self) -> None:
        delay = self._min_delay
        while not self._stopping.is_set():
            reason = "stopped"
            connected = False
            try:
                with self._open() as sock:
                    connected = self._session(sock)
            except (OSError, ProtocolError, ConnectionRefusedError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._generation += 1
                self._pending_acks.clear()
            self._handler.on_disconnected(reason)
            if self._stopping.is_set():
                return
            if connected:
                delay = self._min_delay
            logger.warning("MQTT connection lost (%s); reconnecting in %.1f s", reason, delay)
            self._stopping.wait(delay)
            delay = min(delay * 2, self._max_delay)

    def _open(self) -> socket.socket:
        address = self._address
        sock = socket.create_connection(
            (address.host, address.port), timeout=address.connect_timeout_s
        )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if address.tls_ca is None:
            return sock
        context = ssl.create_default_context(cafile=str(address.tls_ca))
        try:
            return context.wrap_socket(sock, server_hostname=address.host)
        except BaseException:
            sock.close()
            raise

    def _session(self, sock: socket.socket) -> bool:
        """Runs one connection until it ends; True if the broker accepted it."""
        options = self._options
        core = SubscriberProtocol(self._max_packet)
        sock.settimeout(max(options.keepalive_s, 5))
        sock.sendall(encode_connect(options))
        last_sent = time.monotonic()
        ping_sent_at: float | None = None
        connected = False
        generation = -1
        tick = options.keepalive_s / 2 if options.keepalive_s else 1.0
        connect_deadline = time.monotonic() + self._address.connect_timeout_s
        while True:
            if self._stopping.is_set():
                if connected:
                    sock.sendall(encode_disconnect())
                return connected
            pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
            readable = (
                [sock]
                if pending
                else select.select([sock, self._wake_r], [], [], min(tick, 1.0))[0]
            )
            if self._wake_r in readable:
                self._drain_wake()
            with self._lock:
                acks, self._pending_acks = self._pending_acks, []
            if acks:
                sock.sendall(encode_pubacks(acks))
                last_sent = time.monotonic()
            if sock in readable:
                data = sock.recv(_RECV_BYTES)
                if not data:
                    raise ConnectionError("the broker closed the connection")
                messages: list[Message] = []
                for event in core.receive(data):
                    if isinstance(event, Message):
                        messages.append(event)
                    elif isinstance(event, Connected):
                        with self._lock:
                            self._generation += 1
                            generation = self._generation
                        connected = True
                        logger.info(
                            "connected to %s:%d (session present: %s)",
                            self._address.host,
                            self._address.port,
                            event.session_present,
                        )
                        self._handler.on_connected(event.session_present)
                        sock.sendall(encode_subscribe(1, self._subscriptions))
                        last_sent = time.monotonic()
                    elif isinstance(event, Refused):
                        raise ConnectionRefusedError(
                            f"the broker refused the connection (reason 0x{event.reason_code:02x})"
                        )
                    elif isinstance(event, Subscribed):
                        self._handler.on_subscribed(event.refused)
                    elif isinstance(event, Pong):
                        ping_sent_at = None
                    elif isinstance(event, ServerDisconnected):
                        logger.warning(
                            "the broker disconnected us (reason 0x%02x)", event.reason_code
                        )
                        return connected
                if messages:
                    self._handler.on_messages(generation, messages)
            now = time.monotonic()
            if not connected and now > connect_deadline:
                raise TimeoutError("no CONNACK from the broker")
            if options.keepalive_s:
                if ping_sent_at is not None and now - ping_sent_at > options.keepalive_s:
                    raise TimeoutError("no PINGRESP from the broker")
                if connected and ping_sent_at is None and now - last_sent >= tick:
                    sock.sendall(encode_pingreq())
                    last_sent = ping_sent_at = now

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):  # BlockingIOError once it is empty
            while self._wake_r.recv(4096):
                pass
