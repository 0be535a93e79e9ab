"""Central's fleet client on the broker: gateway heartbeats and statuses in, configuration out.

Heartbeats are telemetry: validated, then recorded on a worker thread (never on paho's network
thread, so a slow database cannot stall keepalives); a lost one is made up by the next. A
heartbeat that breaks the contract is counted and logged, not stored. Configuration is published
retained at QoS 1, so a gateway that connects later still gets the latest, and marked published
only on the broker's PUBACK.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy.exc import SQLAlchemyError

from central.fleet.service import Fleet
from classink.schemas import first_problem

log = logging.getLogger(__name__)

HEARTBEATS = "$share/fleet/classink/v1/+/+/heartbeat"
STATUSES = "classink/v1/+/+/status"
_ID = r"[a-z0-9][a-z0-9-]{0,62}"
_TOPIC = re.compile(rf"classink/v1/(?P<site>{_ID})/(?P<gateway>{_ID})/(?P<kind>heartbeat|status)")
_SCHEMAS = {"heartbeat": "heartbeat.v1.json", "status": "status.v1.json"}


class FleetMonitor:
    def __init__(
        self,
        fleet: Fleet,
        host: str,
        port: int,
        *,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        tls_ca: Path | None = None,
        sweep_s: float = 10.0,
    ) -> None:
        self.fleet = fleet
        self.counts: Counter[str] = Counter()
        self._host, self._port = host, port
        self._sweep_s = sweep_s
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._stop = threading.Event()
        self.subscribed = threading.Event()
        self._worker = threading.Thread(target=self._work, name="fleet-monitor", daemon=True)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if username is not None:
            client.username_pw_set(username, password)
        if tls_ca is not None:
            client.tls_set(ca_certs=str(tls_ca))
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.client = client

    def start(self) -> FleetMonitor:
        # A clean session: heartbeats are QoS 0 and only the latest matters, and the retained
        # statuses tell a restarted monitor where every gateway stands.
        self.client.connect_async(self._host, self._port, keepalive=30, clean_start=True)
        self._worker.start()
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._worker.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()

    def publish_config(self, document: dict[str, Any], timeout: float = 10.0) -> bool:
        """Publish a configuration retained at QoS 1; True once the broker acknowledged it."""
        topic = f"classink/v1/{document['site_id']}/{document['gateway_id']}/config"
        payload = json.dumps(document, separators=(",", ":")).encode()
        info = self.client.publish(topic, payload, qos=1, retain=True)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            log.error("configuration %s not published: %s", document["version"], exc)
            return False
        if not info.is_published():
            log.error("configuration %s: no PUBACK within %.0f s", document["version"], timeout)
            return False
        self.fleet.mark_published(document["site_id"], document["gateway_id"], document["version"])
        return True

    # -- paho callbacks (network thread) --------------------------------------------------------

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.error("fleet monitor: broker refused the connection: %s", reason_code)
            return
        client.subscribe([(HEARTBEATS, 0), (STATUSES, 1)])

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.error("fleet monitor: subscriptions refused: %s", ", ".join(refused))
            return
        self.subscribed.set()

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        self._queue.put((message.topic, message.payload))

    # -- worker ---------------------------------------------------------------------------------

    def _work(self) -> None:
        next_sweep = time.monotonic() + self._sweep_s
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=max(0.0, next_sweep - time.monotonic()))
            except queue.Empty:
                item = ()
            if item is None:
                break
            try:
                if item:
                    self.handle(*item)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self._sweep_s
                    self.counts["went_offline"] += self.fleet.sweep()
            except SQLAlchemyError:
                log.exception("fleet monitor: database error; the next heartbeat tries again")

    def handle(self, topic: str, payload: bytes) -> str:
        """Record one message; returns what became of it (for counts and tests)."""
        route = _TOPIC.fullmatch(topic)
        if route is None:
            return self._reject(topic, "unknown_topic")
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return self._reject(topic, "invalid_json")
        problem = first_problem(_SCHEMAS[route["kind"]], doc)
        if problem is not None:
            return self._reject(topic, f"schema: {problem}")
        if (doc["site_id"], doc["gateway_id"]) != (route["site"], route["gateway"]):
            return self._reject(topic, "topic_mismatch")
        if route["kind"] == "heartbeat":
            self.fleet.record_heartbeat(doc)
        else:
            self.fleet.record_status(doc)
        self.counts[route["kind"]] += 1
        return route["kind"]

    def _reject(self, topic: str, reason: str) -> str:
        self.counts["rejected"] += 1
        log.warning("fleet monitor: rejected a message on %r: %s", topic, reason)
        return "rejected"
