"""Answer and status messages from the broker into the central store (protocol_specs/mqtt.md).

`Ingestor` knows nothing about MQTT: it turns (topic, payload) into a stored row, a duplicate, a
status update or a dead letter, so that it can be tested and reused without a broker. `MqttIngest`
feeds it from a persistent MQTT v5 session and acknowledges each message only after the database
transaction that took care of it has committed.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import extend, validator_for
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import Insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from central.models import AnswerEvent, Base, DeadLetter, GatewayState
from central.settings import CentralSettings

logger = logging.getLogger(__name__)

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "protocol_specs" / "schemas"
ANSWERS_SUBSCRIPTION = "$share/central/classink/v1/+/+/answers"
STATUS_SUBSCRIPTION = "classink/v1/+/+/status"

_ID = r"[a-z0-9][a-z0-9-]{0,62}"
_TOPIC = re.compile(rf"classink/v1/(?P<site>{_ID})/(?P<gateway>{_ID})/(?P<kind>answers|status)")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_SCHEMA_FILES = {"answers": "answer-event.v1.json", "status": "status.v1.json"}
_INT64_MAX = 2**63 - 1
# jsonschema quotes the offending value in its message, which can be a whole payload.
_MAX_REASON_CHARS = 300
KEEPALIVE_S = 30


class OutcomeKind(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    STATUS = "status"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    reason: str | None = None
    event_id: str | None = None


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 timestamp (offset required) as an aware UTC datetime; ValueError otherwise."""
    if not _RFC3339.fullmatch(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    try:
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
        raise ValueError(f"{value!r} is out of range") from exc


# jsonschema only checks "date-time" when an optional package is installed; the contract must not
# depend on what happens to be installed, so the format is checked here.
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_rfc3339(value: object) -> bool:
    if isinstance(value, str):
        parse_rfc3339(value)
    return True


def _ecma_pattern(
    validator: Validator, pattern: str, instance: Any, _schema: Any
) -> Iterator[ValidationError]:
    # JSON Schema patterns are ECMA-262 regexes, where a final `$` matches only at the very end;
    # Python's also matches before a trailing newline and would accept "gw-1\n" as an id.
    python_pattern = pattern[:-1] + r"\Z" if re.search(r"(?<!\\)\$$", pattern) else pattern
    if validator.is_type(instance, "string") and not re.search(python_pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def load_validators(schemas_dir: Path = SCHEMAS_DIR) -> dict[str, Validator]:
    validators: dict[str, Validator] = {}
    for kind, filename in _SCHEMA_FILES.items():
        schema = json.loads((schemas_dir / filename).read_text(encoding="utf-8"))
        cls = extend(validator_for(schema), validators={"pattern": _ecma_pattern})
        cls.check_schema(schema)
        validators[kind] = cls(schema, format_checker=_FORMATS)
    return validators


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # Infinity cannot be stored in a JSON column, and 1e400 would silently become it.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _parse_json(payload: bytes) -> Any:
    try:
        return json.loads(
            payload.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except (ValueError, RecursionError) as exc:
        raise _Rejected("invalid_json") from exc


def _storable_problem(doc: dict[str, Any]) -> str | None:
    """What the schema allows but the databases cannot hold: NULs, integers beyond 64 bits."""
    for key, value in doc.items():
        if isinstance(value, str) and "\x00" in value:
            return f"$.{key} contains a NUL character"
        if isinstance(value, int) and not isinstance(value, bool) and value > _INT64_MAX:
            return f"$.{key} is larger than a 64-bit integer"
    return None


def _payload_text(payload: bytes) -> str:
    # Kept as text so that people can read it; undecodable bytes and NULs (which PostgreSQL text
    # refuses) are written as escapes instead of being lost.
    return payload.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")


def _insert_ignoring_conflicts(session: Session, model: type[Base], **values: Any) -> Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        insert_stmt = postgresql.insert(model).values(**values)
    elif dialect == "sqlite":
        insert_stmt = sqlite.insert(model).values(**values)
    else:
        raise RuntimeError(f"unsupported database dialect {dialect!r}: use SQLite or PostgreSQL")
    return insert_stmt.on_conflict_do_nothing()


class Ingestor:
    """Validates and stores one message at a time; bad input is dead-lettered, never raised.

    Database failures do raise: the caller must then not acknowledge the message and try again.
    """

    def __init__(self, sessions: sessionmaker[Session], schemas_dir: Path = SCHEMAS_DIR) -> None:
        self._sessions = sessions
        self._validators = load_validators(schemas_dir)
        self.counts: Counter[str] = Counter()

    def handle(self, topic: str, payload: bytes) -> Outcome:
        received_at = datetime.now(UTC)
        try:
            kind, doc = self._check(topic, payload)
        except _Rejected as rejected:
            return self._dead_letter(topic, payload, rejected.reason, received_at)
        try:
            if kind == "answers":
                outcome = self._store_answer(doc, received_at)
            else:
                outcome = self._store_status(doc, received_at)
        except DataError as exc:
            # The database refused a value that passed every check above (a column narrower than
            # the contract, say): keep the message rather than fail on it forever.
            detail = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
            return self._dead_letter(topic, payload, f"unstorable: {detail}", received_at)
        self.counts[str(outcome.kind)] += 1
        return outcome

    def _check(self, topic: str, payload: bytes) -> tuple[str, dict[str, Any]]:
        route = _TOPIC.fullmatch(topic)
        if route is None:
            raise _Rejected("unknown_topic")
        doc = _parse_json(payload)
        error = best_match(self._validators[route["kind"]].iter_errors(doc))
        if error is not None:
            raise _Rejected(f"schema: {error.json_path}: {error.message}")
        if (doc["site_id"], doc["gateway_id"]) != (route["site"], route["gateway"]):
            raise _Rejected("topic_mismatch")
        problem = _storable_problem(doc)
        if problem is not None:
            raise _Rejected(f"unstorable: {problem}")
        return route["kind"], doc

    def _store_answer(self, doc: dict[str, Any], received_at: datetime) -> Outcome:
        row = dict(doc, created_at=parse_rfc3339(doc["created_at"]), received_at=received_at)
        with self._sessions.begin() as session:
            inserted = session.execute(
                _insert_ignoring_conflicts(session, AnswerEvent, **row).returning(
                    AnswerEvent.event_id
                )
            ).scalar_one_or_none()
            gateway = self._locked_gateway(session, doc["site_id"], doc["gateway_id"], received_at)
            gateway.last_seen = received_at
            if inserted is not None:
                self._advance_seq(gateway, doc["seq"], doc["event_id"])
        if inserted is None:
            logger.info("duplicate answer event %s ignored", doc["event_id"])
            return Outcome(OutcomeKind.DUPLICATE, event_id=doc["event_id"])
        return Outcome(OutcomeKind.STORED, event_id=doc["event_id"])

    def _store_status(self, doc: dict[str, Any], received_at: datetime) -> Outcome:
        with self._sessions.begin() as session:
            gateway = self._locked_gateway(session, doc["site_id"], doc["gateway_id"], received_at)
            gateway.state = doc["state"]
            gateway.reason = doc["reason"]
            gateway.software_version = doc["software_version"]
            gateway.last_seen = received_at
        logger.info(
            "gateway %s/%s is %s (%s)",
            doc["site_id"],
            doc["gateway_id"],
            doc["state"],
            doc["reason"],
        )
        return Outcome(OutcomeKind.STATUS)

    @staticmethod
    def _locked_gateway(
        session: Session, site_id: str, gateway_id: str, now: datetime
    ) -> GatewayState:
        # Several central workers may update one gateway's row at once: create it if needed, then
        # lock it (PostgreSQL row lock; SQLite already holds its write lock after the insert).
        session.execute(
            _insert_ignoring_conflicts(
                session,
                GatewayState,
                site_id=site_id,
                gateway_id=gateway_id,
                last_seen=now,
                highest_seq=0,
                seq_gaps=0,
            )
        )
        return session.execute(
            select(GatewayState)
            .where(GatewayState.site_id == site_id, GatewayState.gateway_id == gateway_id)
            .with_for_update()
        ).scalar_one()

    @staticmethod
    def _advance_seq(gateway: GatewayState, seq: int, event_id: str) -> None:
        if seq > gateway.highest_seq:
            gateway.seq_gaps += seq - gateway.highest_seq - 1
            gateway.highest_seq = seq
        elif seq < gateway.highest_seq:
            # Event ids are unique, so a new event below the highest seq fills a gap counted before.
            gateway.seq_gaps = max(gateway.seq_gaps - 1, 0)
        else:
            logger.warning(
                "gateway %s/%s sent seq %d again with a new event id %s: was its outbox reset?",
                gateway.site_id,
                gateway.gateway_id,
                seq,
                event_id,
            )

    def _dead_letter(
        self, topic: str, payload: bytes, reason: str, received_at: datetime
    ) -> Outcome:
        reason = reason[:_MAX_REASON_CHARS]
        with self._sessions.begin() as session:
            session.add(
                DeadLetter(
                    topic=topic,
                    payload=_payload_text(payload),
                    reason=reason,
                    received_at=received_at,
                )
            )
        self.counts[str(OutcomeKind.REJECTED)] += 1
        self.counts[f"rejected:{reason.split(':', 1)[0]}"] += 1
        logger.warning("dead-lettered a message on %r: %s", topic, reason)
        return Outcome(OutcomeKind.REJECTED, reason=reason)


class MqttIngest:
    """Subscribes with a persistent MQTT v5 session and feeds every message to an `Ingestor`.

    Messages are handled on one worker thread, not in paho's network thread, so that a slow or
    unavailable database never stalls keepalives. A message is acknowledged only after `handle`
    returned, i.e. after its transaction committed; while the database is down the same message is
    retried with backoff. Unacknowledged messages are redelivered by the broker on the next
    connection, and the idempotent insert makes that harmless.
    """

    def __init__(
        self,
        ingestor: Ingestor,
        settings: CentralSettings,
        *,
        max_retry_delay_s: float = 30.0,
    ) -> None:
        self._ingestor = ingestor
        self._settings = settings
        self._max_retry_delay_s = max_retry_delay_s
        self._queue: queue.Queue[tuple[int, mqtt.MQTTMessage] | None] = queue.Queue()
        # Message ids are only meaningful on the connection that delivered them: every connect and
        # disconnect starts a new generation, and acks from an older one are dropped.
        self._generation = 0
        self._generation_lock = threading.Lock()
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, name="central-ingest", daemon=True)

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        client.manual_ack_set(True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    def start(self) -> MqttIngest:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._settings.mqtt_session_expiry_s
        self._client.connect_async(
            self._settings.mqtt_host,
            self._settings.mqtt_port,
            keepalive=KEEPALIVE_S,
            clean_start=False,
            properties=properties,
        )
        self._worker.start()
        # loop_start retries the first connection too, so a broker that is not up yet is fine.
        self._client.loop_start()
        return self

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._queue.put(None)
        self._worker.join(timeout)
        if self._worker.is_alive():
            logger.warning("ingest worker still busy after %.0f s; stopping anyway", timeout)
        self._client.disconnect()
        self._client.loop_stop()
        logger.info("MQTT ingest stopped: %s", dict(self._ingestor.counts))

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            logger.error("broker refused the connection: %s", reason_code)
            return
        with self._generation_lock:
            self._generation += 1
        logger.info(
            "connected to %s:%d (session present: %s)",
            self._settings.mqtt_host,
            self._settings.mqtt_port,
            flags.session_present,
        )
        client.subscribe(
            [
                (ANSWERS_SUBSCRIPTION, SubscribeOptions(qos=1)),
                # A resumed session already has the retained statuses; do not replay them.
                (
                    STATUS_SUBSCRIPTION,
                    SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB),
                ),
            ]
        )

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        with self._generation_lock:
            self._generation += 1
        self._subscribed.clear()
        if not self._stopping.is_set():
            logger.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _mid: int,
        reason_codes: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            logger.error("broker refused the subscriptions: %s", ", ".join(refused))
            return
        self._subscribed.set()

    def _on_message(
        self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        # Runs on the network thread, like _on_connect, so the generation read here is current.
        self._queue.put((self._generation, message))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None and not self._stopping.is_set():
            generation, message = item
            if self._handle_until_committed(message):
                self._ack(generation, message)

    def _handle_until_committed(self, message: mqtt.MQTTMessage) -> bool:
        delay = 0.1
        while not self._stopping.is_set():
            try:
                self._ingestor.handle(message.topic, message.payload)
                return True
            except SQLAlchemyError:
                logger.exception("storing a message failed; retrying in %.1f s", delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, self._max_retry_delay_s)
            except Exception:
                # Not a database outage, so retrying now would fail the same way. Leaving it
                # unacknowledged makes the broker deliver it again on the next connection.
                logger.exception("handling a message on %r failed; not acknowledged", message.topic)
                return False
        return False

    def _ack(self, generation: int, message: mqtt.MQTTMessage) -> None:
        with self._generation_lock:
            if generation == self._generation:
                self._client.ack(message.mid, message.qos)
