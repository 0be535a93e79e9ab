"""Answer and status messages from the broker into the central store (protocol_specs/mqtt.md).

`Ingestor` knows nothing about MQTT: it turns a batch of (topic, payload) messages into stored
rows, duplicates, status updates and dead letters in one transaction, so that it can be tested and
reused without a broker. `MqttIngest` feeds it batches from a persistent MQTT v5 session (shared
subscription, so several workers split the stream) and acknowledges each message only after the
transaction that took care of it has committed.
"""

from __future__ import annotations

import gc
import logging
import queue
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import JSON, Insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from central.models import AnswerEvent, Base, DeadLetter, GatewayState
from central.payloads import (
    SCHEMAS_DIR,
    PayloadRejected,
    load_validators,
    parse_json,
    parse_rfc3339,
)
from central.settings import CentralSettings

__all__ = [
    "ANSWERS_SUBSCRIPTION",
    "STATUS_SUBSCRIPTION",
    "Ingestor",
    "MqttIngest",
    "Outcome",
    "OutcomeKind",
    "parse_rfc3339",
]

logger = logging.getLogger(__name__)

ANSWERS_SUBSCRIPTION = "$share/central/classink/v1/+/+/answers"
STATUS_SUBSCRIPTION = "classink/v1/+/+/status"

_ID = r"[a-z0-9][a-z0-9-]{0,62}"
_TOPIC = re.compile(rf"classink/v1/(?P<site>{_ID})/(?P<gateway>{_ID})/(?P<kind>answers|status)")
_INT64_MAX = 2**63 - 1
# jsonschema quotes the offending value in its message, which can be a whole payload.
_MAX_REASON_CHARS = 300
_ANSWER_COLUMNS = tuple(column.key for column in AnswerEvent.__table__.columns)
_JSON_COLUMNS = frozenset(
    column.key for column in AnswerEvent.__table__.columns if isinstance(column.type, JSON)
)
_STAGING = "classink_incoming_answers"
KEEPALIVE_S = 30
DEFAULT_MAX_BATCH = 500


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


@dataclass(frozen=True)
class _Checked:
    kind: str  # "answers" or "status"
    doc: dict[str, Any]


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


def _insert_ignoring_conflicts(session: Session, model: type[Base]) -> Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(model).on_conflict_do_nothing()
    raise RuntimeError(f"unsupported database dialect {dialect!r}: use SQLite or PostgreSQL")


def _copy_answers(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """PostgreSQL: COPY the rows into a per-connection staging table, then move the new ones over
    with INSERT ... ON CONFLICT DO NOTHING in one statement. A multi-row INSERT with bound
    parameters cost several times more per answer on the client (building, converting and sending
    25 parameters a row); COPY streams rows with psycopg's C dumpers."""
    columns = ", ".join(_ANSWER_COLUMNS)
    statements = [
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (LIKE answer_events) ON COMMIT DELETE ROWS",
        f"COPY {_STAGING} ({columns}) FROM STDIN",
        f"INSERT INTO answer_events ({columns}) SELECT {columns} FROM {_STAGING} "
        "ORDER BY event_id ON CONFLICT DO NOTHING RETURNING event_id",
    ]
    driver = session.connection().connection.driver_connection
    statement = statements[0]
    try:
        with driver.cursor() as cursor:
            cursor.execute(statement)
            statement = statements[1]
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(
                        [
                            _json_text(row[column]) if column in _JSON_COLUMNS else row[column]
                            for column in _ANSWER_COLUMNS
                        ]
                    )
            statement = statements[2]
            cursor.execute(statement)
            return {event_id for (event_id,) in cursor.fetchall()}
    except psycopg.Error as exc:
        # As SQLAlchemy would have raised it: DataError for a refused value, OperationalError
        # for an outage, so that callers treat both paths alike.
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


@contextmanager
def _gc_paused() -> Iterator[None]:
    """A batch's parsed answers are thousands of small lists each (the pen points), all alive at
    once and free of cycles: the cyclic collector kept walking them, which cost more than parsing
    and validating together. It is paused for the batch and collects as usual afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class Ingestor:
    """Validates and stores messages a batch at a time; bad input is dead-lettered, never raised.

    Database failures do raise: the caller must then acknowledge none of the batch and try again.
    """

    def __init__(self, sessions: sessionmaker[Session], schemas_dir: Path = SCHEMAS_DIR) -> None:
        self._sessions = sessions
        self._validators = load_validators(schemas_dir)
        self.counts: Counter[str] = Counter()
        # Called with each newly stored scored answer once it is committed (central/tracing adds
        # one). A failing observer is logged: the answer stays stored and is still acknowledged.
        self.observers: list[Callable[[dict[str, Any]], None]] = []

    def handle(self, topic: str, payload: bytes) -> Outcome:
        return self.handle_batch([(topic, payload)])[0]

    def handle_batch(self, messages: Sequence[tuple[str, bytes]]) -> list[Outcome]:
        """One outcome per message, in order, after one transaction for the whole batch."""
        with _gc_paused():
            outcomes, stored = self._handle_batch(messages)
        self._count_and_log(messages, outcomes)
        self._notify(stored)
        return outcomes

    def _handle_batch(
        self, messages: Sequence[tuple[str, bytes]]
    ) -> tuple[list[Outcome], list[dict[str, Any]]]:
        received_at = datetime.now(UTC)
        checked: list[_Checked | str] = []
        for topic, payload in messages:
            try:
                checked.append(self._check(topic, payload))
            except PayloadRejected as rejected:
                checked.append(rejected.reason[:_MAX_REASON_CHARS])
        try:
            outcomes, stored = self._store(messages, checked, received_at)
        except DataError as exc:
            if len(messages) > 1:
                # One value the database refuses (a column narrower than the contract, say) must
                # not hold back the rest: find it by storing the messages one by one.
                outcomes, stored = [], []
                for message in messages:
                    one_outcome, one_stored = self._handle_batch([message])
                    outcomes += one_outcome
                    stored += one_stored
                return outcomes, stored
            # Keep the message rather than fail on it forever.
            detail = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
            reason = f"unstorable: {detail}"[:_MAX_REASON_CHARS]
            outcomes, stored = self._store(messages, [reason], received_at)
        return outcomes, stored

    def _check(self, topic: str, payload: bytes) -> _Checked:
        route = _TOPIC.fullmatch(topic)
        if route is None:
            raise PayloadRejected("unknown_topic")
        doc = parse_json(payload)
        problem = self._validators[route["kind"]].problem(doc)
        if problem is not None:
            raise PayloadRejected(f"schema: {problem}")
        if (doc["site_id"], doc["gateway_id"]) != (route["site"], route["gateway"]):
            raise PayloadRejected("topic_mismatch")
        problem = _storable_problem(doc)
        if problem is not None:
            raise PayloadRejected(f"unstorable: {problem}")
        return _Checked(route["kind"], doc)

    def _store(
        self,
        messages: Sequence[tuple[str, bytes]],
        checked: Sequence[_Checked | str],
        received_at: datetime,
    ) -> tuple[list[Outcome], list[dict[str, Any]]]:
        """Stores the batch in one transaction; returns the outcomes and the new answers."""
        first_of: dict[str, int] = {}  # event id -> index of its first message in the batch
        gateways: set[tuple[str, str]] = set()
        for index, item in enumerate(checked):
            if isinstance(item, _Checked):
                gateways.add((item.doc["site_id"], item.doc["gateway_id"]))
                if item.kind == "answers":
                    first_of.setdefault(item.doc["event_id"], index)
        with self._sessions.begin() as session:
            inserted = self._insert_answers(session, checked, first_of, received_at)
            locked = self._locked_gateways(session, gateways, received_at)
            for index in sorted(
                (first_of[event_id] for event_id in inserted),
                key=lambda i: checked[i].doc["seq"],  # type: ignore[union-attr]
            ):
                doc = checked[index].doc  # type: ignore[union-attr]
                self._advance_seq(locked[doc["site_id"], doc["gateway_id"]], doc)
            for item in checked:
                if isinstance(item, _Checked) and item.kind == "status":
                    gateway = locked[item.doc["site_id"], item.doc["gateway_id"]]
                    gateway.state = item.doc["state"]
                    gateway.reason = item.doc["reason"]
                    gateway.software_version = item.doc["software_version"]
            letters = [
                {
                    "topic": topic,
                    "payload": _payload_text(payload),
                    "reason": item,
                    "received_at": received_at,
                }
                for (topic, payload), item in zip(messages, checked, strict=True)
                if isinstance(item, str)
            ]
            if letters:
                session.execute(DeadLetter.__table__.insert(), letters)
        outcomes: list[Outcome] = []
        stored: list[dict[str, Any]] = []
        for index, item in enumerate(checked):
            if isinstance(item, str):
                outcomes.append(Outcome(OutcomeKind.REJECTED, reason=item))
            elif item.kind == "status":
                outcomes.append(Outcome(OutcomeKind.STATUS))
            else:
                event_id = item.doc["event_id"]
                if first_of[event_id] == index and event_id in inserted:
                    outcomes.append(Outcome(OutcomeKind.STORED, event_id=event_id))
                    stored.append(item.doc)
                else:
                    outcomes.append(Outcome(OutcomeKind.DUPLICATE, event_id=event_id))
        return outcomes, stored

    @staticmethod
    def _insert_answers(
        session: Session,
        checked: Sequence[_Checked | str],
        first_of: dict[str, int],
        received_at: datetime,
    ) -> set[str]:
        """Inserts the batch's distinct answers, skipping those already stored; returns the ids of
        the rows this transaction inserted."""
        if not first_of:
            return set()
        rows = []
        # Sorted by event id, so that two workers inserting overlapping batches (a redelivery
        # that went to the other worker) take the unique-index locks in the same order.
        for event_id in sorted(first_of):
            doc = checked[first_of[event_id]].doc  # type: ignore[union-attr]
            row = {column: doc.get(column) for column in _ANSWER_COLUMNS}
            row["created_at"] = parse_rfc3339(doc["created_at"])
            row["received_at"] = received_at
            rows.append(row)
        if session.get_bind().dialect.name == "postgresql":
            return _copy_answers(session, rows)
        statement = _insert_ignoring_conflicts(session, AnswerEvent).returning(AnswerEvent.event_id)
        return set(session.scalars(statement, rows))

    @staticmethod
    def _locked_gateways(
        session: Session, keys: set[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], GatewayState]:
        # Several central workers may update one gateway's row at once: create the rows if needed,
        # then lock them in key order so that two workers cannot deadlock (PostgreSQL row locks;
        # SQLite already holds its write lock after the insert).
        if not keys:
            return {}
        ordered = sorted(keys)
        session.execute(
            _insert_ignoring_conflicts(session, GatewayState),
            [
                {
                    "site_id": site_id,
                    "gateway_id": gateway_id,
                    "last_seen": now,
                    "highest_seq": 0,
                    "seq_gaps": 0,
                }
                for site_id, gateway_id in ordered
            ],
        )
        rows = session.scalars(
            select(GatewayState)
            .where(tuple_(GatewayState.site_id, GatewayState.gateway_id).in_(ordered))
            .order_by(GatewayState.site_id, GatewayState.gateway_id)
            .with_for_update()
        )
        locked = {(row.site_id, row.gateway_id): row for row in rows}
        for row in locked.values():
            row.last_seen = now
        return locked

    @staticmethod
    def _advance_seq(gateway: GatewayState, doc: dict[str, Any]) -> None:
        # Invariant: seq_gaps = highest_seq - (stored events with seq <= highest_seq), which holds
        # whatever order a batch's new events are applied in, as long as seqs are unique.
        seq = doc["seq"]
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
                doc["event_id"],
            )

    def _count_and_log(
        self, messages: Sequence[tuple[str, bytes]], outcomes: Sequence[Outcome]
    ) -> None:
        for (topic, _), outcome in zip(messages, outcomes, strict=True):
            self.counts[str(outcome.kind)] += 1
            if outcome.kind == OutcomeKind.REJECTED:
                reason = outcome.reason or ""
                self.counts[f"rejected:{reason.split(':', 1)[0]}"] += 1
                logger.warning("dead-lettered a message on %r: %s", topic, reason)
            elif outcome.kind == OutcomeKind.DUPLICATE:
                logger.debug("duplicate answer event %s ignored", outcome.event_id)

    def _notify(self, stored: Sequence[dict[str, Any]]) -> None:
        for doc in stored:
            if doc["status"] != "scored":
                continue
            for observe in self.observers:
                try:
                    observe(doc)
                except Exception:
                    logger.exception("answer observer %r failed on %s", observe, doc["event_id"])


class MqttIngest:
    """Subscribes with a persistent MQTT v5 session and feeds the messages to an `Ingestor`.

    Messages are handled on one worker thread, not in paho's network thread, so that a slow or
    unavailable database never stalls keepalives. The worker takes whatever has arrived (up to
    `max_batch` messages) as one batch, so batches grow with the load and a lone message is not
    kept waiting. A message is acknowledged only after `handle_batch` returned, i.e. after the
    transaction holding it committed; while the database is down the same batch is retried with
    backoff. Unacknowledged messages are redelivered by the broker on the next connection, and the
    idempotent insert makes that harmless. Workers with different client ids share the answers
    through the `$share/central/...` subscription.
    """

    def __init__(
        self,
        ingestor: Ingestor,
        settings: CentralSettings,
        *,
        max_retry_delay_s: float = 30.0,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._ingestor = ingestor
        self._settings = settings
        self._max_retry_delay_s = max_retry_delay_s
        self._max_batch = max_batch
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
        if settings.mqtt_username is not None:
            client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        if settings.mqtt_tls_ca is not None:
            client.tls_set(ca_certs=str(settings.mqtt_tls_ca))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    def start(self) -> MqttIngest:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._settings.mqtt_session_expiry_s
        # How many unacknowledged messages the broker may send us: a batch can only hold that
        # many, and a second batch's worth keeps arriving while the first one commits.
        properties.ReceiveMaximum = min(2 * self._max_batch, 65535)
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
        while (batch := self._next_batch()) and not self._stopping.is_set():
            if self._handle_until_committed(batch):
                self._ack(batch)

    def _next_batch(self) -> list[tuple[int, mqtt.MQTTMessage]]:
        """Waits for one message, then takes whatever else is already queued; [] when stopping."""
        item = self._queue.get()
        if item is None:
            return []
        batch = [item]
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # seen again by the next call, after this batch
                break
            batch.append(item)
        return batch

    def _handle_until_committed(self, batch: list[tuple[int, mqtt.MQTTMessage]]) -> bool:
        messages = [(message.topic, message.payload) for _, message in batch]
        delay = 0.1
        while not self._stopping.is_set():
            try:
                self._ingestor.handle_batch(messages)
                return True
            except SQLAlchemyError:
                logger.exception(
                    "storing a batch of %d messages failed; retrying in %.1f s", len(batch), delay
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, self._max_retry_delay_s)
            except Exception:
                # Not a database outage, so retrying now would fail the same way. Leaving the batch
                # unacknowledged makes the broker deliver it again on the next connection.
                logger.exception(
                    "handling a batch of %d messages failed; not acknowledged", len(batch)
                )
                return False
        return False

    def _ack(self, batch: list[tuple[int, mqtt.MQTTMessage]]) -> None:
        with self._generation_lock:
            for generation, message in batch:
                if generation == self._generation:
                    self._client.ack(message.mid, message.qos)
