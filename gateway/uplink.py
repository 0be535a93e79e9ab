"""The uplink: outbox rows to the broker over MQTT v5 at QoS 1, removed only on PUBACK.

paho calls on_publish while holding its own message lock, so the callback only queues the
acknowledgement; the publisher thread matches it to the outbox row and deletes it. That keeps every
outbox access in one place and cannot deadlock against publish().

The session is persistent (clean start off, a week's session expiry), so the broker keeps the
gateway's subscription to its own `config` topic and whatever was queued for it across reconnects.
Reconnects back off exponentially with jitter, so that a broker restart is not met by every gateway
of a district at the same instant. With `tls_ca` the connection is TLS, verified against that CA;
with `username` the gateway logs in with its own credentials (gateway/identity.py).
"""

from __future__ import annotations

import json
import logging
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.outbox import Outbox
from gateway.stage_trace import StageTrace
from gateway.storage_alarm import StorageAlarm

log = logging.getLogger(__name__)

WINDOW = 256  # messages handed to paho and not yet acknowledged
SESSION_EXPIRY_S = 7 * 24 * 3600  # keep the broker-side session across a week of school holidays
RETRY_REFUSED_AFTER_S = 5.0
NO_SUBSCRIBERS = 0x10  # PUBACK reason code (MQTT v5 §3.4.2.1)
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 60.0
# Acknowledged rows are deleted together this often (one transaction, one fsync): deleting late
# only means a row might be sent again after a crash, which central's dedupe absorbs.
REMOVE_EVERY_S = 0.25


def topic(site_id: str, gateway_id: str, kind: str) -> str:
    return f"classink/v1/{site_id}/{gateway_id}/{kind}"


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Backoff:
    """Exponential reconnect delays with "equal jitter": each wait is half the exponential step
    plus a random share of the other half, so gateways that lost the same broker spread out."""

    min_s: float = RECONNECT_MIN_S
    max_s: float = RECONNECT_MAX_S
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next(self) -> float:
        step = min(self.max_s, self.min_s * 2**self.attempts)
        self.attempts = min(self.attempts + 1, 32)
        return step / 2 + self.rng.uniform(0, step / 2)

    def reset(self) -> None:
        self.attempts = 0


@dataclass
class UplinkStats:
    published: int = 0
    acknowledged: int = 0  # PUBACKs received
    removed: int = 0  # acknowledged events deleted from the outbox (later, while a disk is full)
    refused: int = 0
    connects: int = 0
    connected: bool = False
    refused_connections: int = 0
    telemetry_sent: int = 0
    telemetry_skipped: int = 0
    remove_failures: int = 0


@dataclass
class Uplink:
    outbox: Outbox
    site_id: str
    gateway_id: str
    host: str
    port: int
    software_version: str
    username: str | None = None
    password: str | None = None
    tls_ca: Path | None = None
    # Called on paho's network thread with each message on the gateway's `config` topic.
    on_config: Callable[[bytes], None] | None = None
    backoff: Backoff = field(default_factory=Backoff)
    stats: UplinkStats = field(default_factory=UplinkStats)
    trace: StageTrace | None = None  # per-answer stage times, for bench.classroom

    def __post_init__(self) -> None:
        self._status_topic = topic(self.site_id, self.gateway_id, "status")
        self._config_topic = topic(self.site_id, self.gateway_id, "config")
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"classink-gw-{self.site_id}-{self.gateway_id}",
            protocol=mqtt.MQTTv5,
        )
        if self.username is not None:
            self.client.username_pw_set(self.username, self.password)
        if self.tls_ca is not None:
            self.client.tls_set(ca_certs=str(self.tls_ca))
        self.client.will_set(
            self._status_topic, self._status("offline", "connection lost", None), 1, True
        )
        self.client.max_inflight_messages_set(64)
        self.client.max_queued_messages_set(0)
        self._next_reconnect_delay()
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self._acks: queue.SimpleQueue[tuple[int, bool, float]] = queue.SimpleQueue()
        self._inflight: dict[int, tuple[int, str]] = {}  # mid -> seq, event id
        self._refused: list[tuple[float, int]] = []
        self._acked: list[int] = []  # acknowledged seqs not yet deleted from the outbox
        self._removed_at = 0.0
        self._remove_failing = False
        self._failed = False
        self._storage_alarm = StorageAlarm()
        self._sent_up_to = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(
            self.host, self.port, keepalive=30, clean_start=False, properties=props
        )
        self.client.loop_start()
        self._thread.start()

    def stop(self, drain_s: float = 5.0) -> None:
        """Let in-flight messages land, say goodbye, disconnect; the outbox keeps the rest."""
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and (self._inflight or self.outbox.depth()):
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(timeout=5)
        if self.stats.connected:
            info = self.client.publish(
                self._status_topic, self._status("offline", "shutdown", now_rfc3339()), 1, True
            )
            info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks (network thread) -----------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.stats.refused_connections += 1
            log.error("broker refused the connection: %s", reason_code)
            return
        self.backoff.reset()
        self.stats.connects += 1
        self.stats.connected = True
        log.info(
            "connected to %s:%s (session present: %s)", self.host, self.port, flags.session_present
        )
        client.publish(
            self._status_topic, self._status("online", "connected", now_rfc3339()), 1, True
        )
        if self.on_config is not None:
            # Also on a resumed session: subscribing again is what re-sends the retained config,
            # which tells a gateway that was offline what it missed.
            client.subscribe(self._config_topic, qos=1)

    def _on_connect_fail(self, client, userdata) -> None:
        self._next_reconnect_delay()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.stats.connected = False
        self._next_reconnect_delay()
        if not self._stop.is_set():
            log.warning("disconnected from broker (%s); reconnecting with backoff", reason_code)

    def _next_reconnect_delay(self) -> None:
        # paho waits min_delay before its next attempt after a reset, so setting both bounds to
        # our jittered delay makes that wait ours.
        delay = self.backoff.next()
        self.client.reconnect_delay_set(min_delay=delay, max_delay=delay)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # "No matching subscribers" is a success code, yet nobody will ever get the message: a
        # broker restarted from its persistence routes nothing to offline sessions until they
        # reconnect (Mosquitto 2.0), so central is not listening yet. The row stays, for a retry.
        failed = reason_code.is_failure or reason_code.value == NO_SUBSCRIBERS
        self._acks.put((mid, failed, time.time()))

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == self._config_topic and self.on_config is not None:
            self.on_config(message.payload)
        else:
            log.warning("ignored a message on %r", message.topic)

    # -- telemetry ------------------------------------------------------------------------------

    def publish_telemetry(self, kind: str, payload: bytes) -> bool:
        """Send a heartbeat-like message now (QoS 0, not stored): a stale one is worth nothing,
        so while offline it is skipped rather than queued."""
        if not self.stats.connected:
            self.stats.telemetry_skipped += 1
            return False
        info = self.client.publish(topic(self.site_id, self.gateway_id, kind), payload, qos=0)
        ok = info.rc == mqtt.MQTT_ERR_SUCCESS
        if ok:
            self.stats.telemetry_sent += 1
        else:
            self.stats.telemetry_skipped += 1
        return ok

    # -- publisher thread -----------------------------------------------------------------------

    @property
    def failed(self) -> bool:
        """The publisher thread ended on an unexpected error (logged): nothing more is sent."""
        return self._failed

    def _run(self) -> None:
        try:
            self._publish_until_stopped()
        except Exception:
            self._failed = True
            log.critical(
                "uplink publisher stopped by an unexpected error; nothing more is sent until the "
                "gateway restarts (the outbox keeps every event)",
                exc_info=True,
            )

    def _publish_until_stopped(self) -> None:
        while not self._stop.is_set():
            self._settle_acks()
            sent = self._send_more()
            if not sent:
                self.outbox.wait_for_new(0.05)
        self._settle_acks()
        self._remove_acked()

    def _remove_acked(self) -> None:
        self._removed_at = time.monotonic()
        if not self._acked:
            return
        try:
            self.outbox.remove(self._acked)
        except sqlite3.Error as exc:
            # A full disk refuses even a DELETE (it grows the WAL). Keep the acknowledged seqs
            # and try again: if the gateway dies first they are sent again, and central's dedupe
            # absorbs that. Letting the error out would end this thread and every send with it.
            self._remove_failing = True
            self.stats.remove_failures += 1
            if self._storage_alarm.due(self._removed_at):
                log.error(
                    "GATEWAY STORAGE FAILING (%s): %d acknowledged events not yet removed from the "
                    "outbox; retrying. Free space on the outbox's disk.",
                    exc,
                    len(self._acked),
                )
            return
        self._remove_failing = False
        self.stats.removed += len(self._acked)
        self._acked = []

    def _send_more(self) -> int:
        room = WINDOW - len(self._inflight)
        if room <= 0:
            return 0
        due = [seq for at, seq in self._refused if time.monotonic() >= at][:room]
        if due:
            self._refused = [(at, s) for at, s in self._refused if s not in due]
            rows = self.outbox.rows(due)
        else:
            rows = self.outbox.pending(self._sent_up_to, room)
        for row in rows:
            info = self.client.publish(row.topic, row.payload, qos=1)
            self._inflight[info.mid] = (row.seq, row.event_id)
            if self.trace is not None:
                self.trace.published(row.event_id)
            self._sent_up_to = max(self._sent_up_to, row.seq)
            self.stats.published += 1
        return len(rows)

    def _settle_acks(self) -> None:
        done: list[int] = []
        while True:
            try:
                mid, failed, acked_at = self._acks.get_nowait()
            except queue.Empty:
                break
            # publish() returns before this thread settles acks, so an unknown mid is a status
            # message's ack, which needs no bookkeeping.
            sent = self._inflight.pop(mid, None)
            if sent is None:
                continue
            seq, event_id = sent
            if failed:
                # The broker refused it (e.g. not authorised): keep it, say so, retry later.
                self.stats.refused += 1
                log.error("broker refused event seq %d; kept in the outbox for retry", seq)
                self._refused.append((time.monotonic() + RETRY_REFUSED_AFTER_S, seq))
            else:
                done.append(seq)
                if self.trace is not None:
                    self.trace.acknowledged(event_id, acked_at)
        self._acked += done
        self.stats.acknowledged += len(done)
        # While removal fails, a full window of acks must not turn into a retry per loop.
        window_full = len(self._acked) >= WINDOW and not self._remove_failing
        if time.monotonic() - self._removed_at >= REMOVE_EVERY_S or window_full:
            self._remove_acked()

    def _status(self, state: str, reason: str, at: str | None) -> bytes:
        return json.dumps(
            {
                "schema": "classink.status.v1",
                "site_id": self.site_id,
                "gateway_id": self.gateway_id,
                "state": state,
                "reason": reason,
                "at": at,
                "software_version": self.software_version,
            }
        ).encode()
