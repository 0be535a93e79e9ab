"""Answer and status messages from the broker into the central store (protocol_specs/mqtt.md).

`Ingestor` knows nothing about MQTT: it turns a batch of (topic, payload) messages into stored
rows, duplicates, status updates and dead letters in one transaction, so that it can be tested and
reused without a broker. `MqttIngest` feeds it batches from a persistent MQTT v5 session (shared
subscription, so several workers split the stream) and acknowledges each message only after the
transaction that took care of it has committed.
"""

from __future__ import annotations

import contextlib
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
import psycopg
from ext.jsonspan import value_span
from psycopg.postgres import types as pg_types
from sqlalchemy import JSON, Insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from central.models import AnswerEvent, Base, DeadLetter, GatewayState
from central.mqtt_subscriber.client import BrokerAddress, MqttSubscriber
from central.mqtt_subscriber.protocol import (
    RETAIN_SEND_IF_NEW,
    ConnectOptions,
    Message,
    Subscription,
)
from central.payloads import (
    SCHEMAS_DIR,
    PayloadRejected,
    load_strokes_fast_path,
    load_validators,
    parse_json,
    parse_rfc3339,
)
from central.settings import CentralSettings

__all__ = [
    "ANSWERS_SUBSCRIPTION",
    "CheckedBatch",
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
_EVENT_ID = _ANSWER_COLUMNS.index("event_id")
_STAGING = "classink_incoming_answers"
_PREFERS_LZ4 = "classink_prefers_lz4"
_COPY_TYPES = "classink_answer_copy_types"
# answer_events' column types whose binary COPY form psycopg writes from the values _copy_row
# gives, and the type to write each as. JSON goes as its text, which is json's binary form too:
# psycopg's own json writer would encode the text again, as a JSON string.
_BINARY_COPY_AS = {
    name: name for name in ("varchar", "text", "int8", "float8", "bool", "timestamptz")
} | {"json": "text"}
KEEPALIVE_S = 30
DEFAULT_MAX_BATCH = 1000


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
    doc: dict[str, Any]  # an answer's without its strokes, when strokes_json holds them
    payload: bytes  # the JSON text the doc was parsed from
    strokes_json: str | None = None


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


def _prefer_lz4(cursor: psycopg.Cursor[Any], info: dict[str, Any]) -> None:
    """Once per database connection, where the server has it: lz4 rather than pglz for the
    strokes PostgreSQL compresses (pglz cost the server about a third more per answer in
    bench.ingest; readers get the same JSON back). Should the transaction roll back, the setting
    goes with it, which costs speed only."""
    if info.get(_PREFERS_LZ4):
        return
    cursor.execute(
        "SELECT set_config('default_toast_compression', 'lz4', false) FROM pg_settings "
        "WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
    )
    info[_PREFERS_LZ4] = True


def _binary_copy_types(cursor: psycopg.Cursor[Any], info: dict[str, Any]) -> list[int] | None:
    """Once per database connection: the type oid to write each of _ANSWER_COLUMNS as in a binary
    COPY, read from answer_events itself, or None if a column has a type _BINARY_COPY_AS lacks
    (then COPY uses text, as it can for any type). Binary rows cost psycopg about a fifth of
    text ones, which format every number and date as text and escape every string."""
    if _COPY_TYPES not in info:
        cursor.execute(
            "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = 'answer_events'::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        )
        types = dict(cursor.fetchall())
        write_as = [_BINARY_COPY_AS.get(types.get(column, "")) for column in _ANSWER_COLUMNS]
        oids = [pg_types[name].oid for name in write_as if name is not None]
        info[_COPY_TYPES] = oids if len(oids) == len(_ANSWER_COLUMNS) else None
    return info[_COPY_TYPES]


def _copy_rows(
    cursor: psycopg.Cursor[Any], table: str, rows: list[list[Any]], types: list[int] | None
) -> None:
    """COPY in binary when given the types to write each column as, else in text."""
    columns = ", ".join(_ANSWER_COLUMNS)
    binary = " WITH (FORMAT BINARY)" if types else ""
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN{binary}") as copy:
        if types:
            copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _copy_answers(session: Session, rows: list[list[Any]]) -> set[str]:
    """PostgreSQL: rows (in _ANSWER_COLUMNS order, sorted by event id) are streamed with COPY,
    which costs a fraction of a multi-row INSERT on the client. Rows whose ids are already stored
    (a redelivery) are left out first; if another worker stores one of the rest meanwhile, the
    COPY fails on the unique index, is rolled back to its savepoint, and the batch goes through
    a per-connection staging table and INSERT ... ON CONFLICT DO NOTHING instead."""
    connection = session.connection().connection
    driver = connection.driver_connection
    statement = "choosing lz4 compression"
    try:
        with driver.cursor() as cursor:
            _prefer_lz4(cursor, connection.info)
            statement = "SELECT event_id FROM answer_events WHERE event_id = ANY(%s)"
            cursor.execute(statement, ([row[_EVENT_ID] for row in rows],))
            stored = {event_id for (event_id,) in cursor.fetchall()}
            new = [row for row in rows if row[_EVENT_ID] not in stored]
            if not new:
                return set()
            cursor.execute("SAVEPOINT classink_copy")
            statement = "COPY answer_events FROM STDIN"  # as errors will name it
            try:
                try:
                    types = _binary_copy_types(cursor, connection.info)
                    _copy_rows(cursor, "answer_events", new, types)
                except (TypeError, ValueError, OverflowError):
                    # A value psycopg cannot write in its column's binary form, such as 5.0 for
                    # an integer (JSON Schema allows it): the batch goes as text, as any could.
                    cursor.execute("ROLLBACK TO SAVEPOINT classink_copy")
                    _copy_rows(cursor, "answer_events", new, None)
            except psycopg.errors.UniqueViolation:
                cursor.execute("ROLLBACK TO SAVEPOINT classink_copy")
                return _copy_through_staging(cursor, new)
            cursor.execute("RELEASE SAVEPOINT classink_copy")
            return {row[_EVENT_ID] for row in new}
    except psycopg.Error as exc:
        # As SQLAlchemy would have raised it: DataError for a refused value, OperationalError
        # for an outage, so that callers treat both paths alike.
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def _copy_through_staging(cursor: psycopg.Cursor[Any], rows: list[list[Any]]) -> set[str]:
    columns = ", ".join(_ANSWER_COLUMNS)
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (LIKE answer_events) ON COMMIT DELETE ROWS"
    )
    _copy_rows(cursor, _STAGING, rows, None)  # rare: in text, which takes any value
    cursor.execute(
        f"INSERT INTO answer_events ({columns}) SELECT {columns} FROM {_STAGING} "
        "ORDER BY event_id ON CONFLICT DO NOTHING RETURNING event_id"
    )
    return {event_id for (event_id,) in cursor.fetchall()}


_gc_pauses = 0
_gc_pause_lock = threading.Lock()
_gc_was_enabled = True


def _pause_gc() -> None:
    global _gc_pauses, _gc_was_enabled
    with _gc_pause_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1


def _resume_gc() -> None:
    global _gc_pauses
    with _gc_pause_lock:
        _gc_pauses -= 1
        if _gc_pauses == 0 and _gc_was_enabled:
            gc.enable()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """A batch's parsed answers are thousands of small lists each (the pen points), all alive at
    once and free of cycles: the cyclic collector kept walking them, which cost more than parsing
    and validating together. It is paused while any batch is alive (checked but not yet stored,
    see CheckedBatch, or being handled) and collects as usual once none is."""
    _pause_gc()
    try:
        yield
    finally:
        _resume_gc()


class CheckedBatch(list[tuple[str, bytes]]):
    """Messages whose payloads `Ingestor.check_batch` already parsed and validated, so that
    `handle_batch` only stores them; MqttIngest checks the next batch while one commits.

    It keeps the garbage collector paused until `release()`, which drops the parsed payloads
    first: resuming while they were alive would make the collector walk every one of them."""

    def __init__(self, messages: Sequence[tuple[str, bytes]], checked: list[_Checked | str]):
        super().__init__(messages)
        self.checked = checked
        self._holds_gc_pause = True

    def release(self) -> None:
        if self._holds_gc_pause:
            self._holds_gc_pause = False
            self.checked = []
            self.clear()
            _resume_gc()


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _strokes_span(payload: bytes) -> tuple[int, int] | None:
    # A `\u` escape could spell a second member named strokes, which parsers would keep instead.
    return None if b"\\u" in payload else value_span(payload, b"strokes")


def _strokes_text(strokes: Any, payload: bytes) -> str:
    """The strokes' JSON text: the payload's own slice where ext/jsonspan finds it, rather than
    the parsed points serialised again; PostgreSQL stores JSON as text, so readers get the same
    value back."""
    span = _strokes_span(payload)
    if span is None:
        return orjson.dumps(strokes).decode()
    return payload[span[0] : span[1]].decode()


def _copy_row(answer: _Checked, received_at: datetime) -> list[Any]:
    """One answer as a COPY row, in _ANSWER_COLUMNS order; the strokes (most of the row) as the
    JSON text _check kept, or as _strokes_text makes it from a doc that holds them."""
    doc = answer.doc
    strokes = answer.strokes_json
    if strokes is None:
        strokes = _strokes_text(doc["strokes"], answer.payload)
    row: list[Any] = []
    for column in _ANSWER_COLUMNS:
        if column == "strokes":
            row.append(strokes)
        elif column in _JSON_COLUMNS:
            row.append(_json_text(doc.get(column)))
        elif column == "created_at":
            row.append(parse_rfc3339(doc["created_at"]))
        elif column == "received_at":
            row.append(received_at)
        else:
            row.append(doc.get(column))
    return row


class Ingestor:
    """Validates and stores messages a batch at a time; bad input is dead-lettered, never raised.

    Database failures do raise: the caller must then acknowledge none of the batch and try again.
    """

    def __init__(self, sessions: sessionmaker[Session], schemas_dir: Path = SCHEMAS_DIR) -> None:
        self._sessions = sessions
        self._validators = load_validators(schemas_dir)
        self._strokes_fast_path = load_strokes_fast_path(schemas_dir)
        self.counts: Counter[str] = Counter()
        # Called with each newly stored scored answer's fields once it is committed (central/
        # tracing adds one); without strokes, which are left unparsed when possible. A failing
        # observer is logged: the answer stays stored and is still acknowledged.
        self.observers: list[Callable[[dict[str, Any]], None]] = []

    def handle(self, topic: str, payload: bytes) -> Outcome:
        return self.handle_batch([(topic, payload)])[0]

    def check_batch(self, messages: Sequence[tuple[str, bytes]]) -> CheckedBatch:
        """Parses and validates a batch without touching the database; the caller must call the
        result's `release()` once it is stored or given up (see CheckedBatch)."""
        _pause_gc()
        try:
            checked = self._check_all(messages)
        except BaseException:
            _resume_gc()
            raise
        return CheckedBatch(messages, checked)

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
        if isinstance(messages, CheckedBatch):
            checked = messages.checked
        else:
            checked = self._check_all(messages)
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

    def _check_all(self, messages: Sequence[tuple[str, bytes]]) -> list[_Checked | str]:
        checked: list[_Checked | str] = []
        for topic, payload in messages:
            try:
                checked.append(self._check(topic, payload))
            except PayloadRejected as rejected:
                checked.append(rejected.reason[:_MAX_REASON_CHARS])
        return checked

    def _check(self, topic: str, payload: bytes) -> _Checked:
        route = _TOPIC.fullmatch(topic)
        if route is None:
            raise PayloadRejected("unknown_topic")
        kind = route["kind"]
        fast = self._strokes_fast_path.accept(payload) if kind == "answers" else None
        if fast is not None:
            doc, strokes_json = fast
        else:
            doc = parse_json(payload)
            problem = self._validators[kind].problem(doc)
            if problem is not None:
                raise PayloadRejected(f"schema: {problem}")
            strokes_json = None
        if (doc["site_id"], doc["gateway_id"]) != (route["site"], route["gateway"]):
            raise PayloadRejected("topic_mismatch")
        problem = _storable_problem(doc)
        if problem is not None:
            raise PayloadRejected(f"unstorable: {problem}")
        if kind == "answers" and strokes_json is None:
            strokes_json = _strokes_text(doc.pop("strokes"), payload)
        return _Checked(kind, doc, payload, strokes_json)

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
        # Sorted by event id, so that two workers inserting overlapping batches (a redelivery
        # that went to the other worker) take the unique-index locks in the same order.
        answers = [checked[first_of[event_id]] for event_id in sorted(first_of)]
        if session.get_bind().dialect.name == "postgresql":
            return _copy_answers(session, [_copy_row(a, received_at) for a in answers])  # type: ignore[arg-type]
        rows = []
        for answer in answers:
            doc = answer.doc  # type: ignore[union-attr]
            row = {column: doc.get(column) for column in _ANSWER_COLUMNS}
            strokes_json = answer.strokes_json  # type: ignore[union-attr]
            if strokes_json is not None:  # parsed as the whole payload would have been
                row["strokes"] = parse_json(strokes_json.encode())
            row["created_at"] = parse_rfc3339(doc["created_at"])
            row["received_at"] = received_at
            rows.append(row)
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

    The socket is central/mqtt_subscriber's I/O thread; messages are handled on one worker
    thread, so that a slow or unavailable database never stalls keepalives. The worker takes
    whatever has arrived (up to `max_batch` messages) as one batch, so batches grow with the load
    and a lone message is not kept waiting. A message is acknowledged only after `handle_batch`
    returned, i.e. after the transaction holding it committed; while the database is down the
    same batch is retried with backoff. Unacknowledged messages are redelivered by the broker on
    the next connection, and the idempotent insert makes that harmless. Workers with different
    client ids share the answers through the `$share/central/...` subscription.
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
        self._max_retry_delay_s = max_retry_delay_s
        self._max_batch = max_batch
        # Whole receive buffers, as the subscriber delivered them, tagged with their connection.
        self._queue: queue.Queue[tuple[int, list[Message]] | None] = queue.Queue()
        self._carried: list[tuple[int, Message]] = []  # received beyond the last batch's cap
        # Checked batches waiting for the worker: one is checked while the one before commits.
        self._checked: queue.Queue[tuple[list[tuple[int, Message]], CheckedBatch] | None] = (
            queue.Queue(maxsize=1)
        )
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._checker = threading.Thread(
            target=self._check_batches, name="central-ingest-check", daemon=True
        )
        self._worker = threading.Thread(target=self._work, name="central-ingest", daemon=True)
        self._subscriber = MqttSubscriber(
            BrokerAddress(settings.mqtt_host, settings.mqtt_port, settings.mqtt_tls_ca),
            ConnectOptions(
                client_id=settings.client_id,
                keepalive_s=KEEPALIVE_S,
                session_expiry_s=settings.mqtt_session_expiry_s,
                # How many unacknowledged messages the broker may send us: one batch commits,
                # the next is being checked, and a third and fourth batch's worth are arriving.
                receive_maximum=min(4 * max_batch, 65535),
                username=settings.mqtt_username,
                password=settings.mqtt_password,
            ),
            [
                Subscription(ANSWERS_SUBSCRIPTION, qos=1),
                # A resumed session already has the retained statuses; do not replay them.
                Subscription(STATUS_SUBSCRIPTION, qos=1, retain_handling=RETAIN_SEND_IF_NEW),
            ],
            self,
        )

    def start(self) -> MqttIngest:
        self._checker.start()
        self._worker.start()
        # The subscriber retries the first connection too, so a broker that is not up yet is fine.
        self._subscriber.start()
        return self

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._queue.put(None)
        self._checker.join(timeout)
        self._worker.join(timeout)
        with contextlib.suppress(queue.Empty):  # a checked batch the worker did not take
            while item := self._checked.get_nowait():
                item[1].release()
        if self._worker.is_alive() or self._checker.is_alive():
            logger.warning("ingest worker still busy after %.0f s; stopping anyway", timeout)
        self._subscriber.stop(timeout)
        logger.info("MQTT ingest stopped: %s", dict(self._ingestor.counts))

    # SubscriberHandler: called on the subscriber's I/O thread.

    def on_connected(self, session_present: bool) -> None:
        self._subscribed.clear()

    def on_subscribed(self, refused: Sequence[int]) -> None:
        if refused:
            codes = ", ".join(f"0x{code:02x}" for code in refused)
            logger.error("broker refused the subscriptions: %s", codes)
            return
        self._subscribed.set()

    def on_disconnected(self, reason: str) -> None:
        self._subscribed.clear()

    def on_messages(self, generation: int, messages: list[Message]) -> None:
        self._queue.put((generation, messages))

    def _check_batches(self) -> None:
        while (batch := self._next_batch()) and not self._stopping.is_set():
            try:
                checked = self._ingestor.check_batch([(m.topic, m.payload) for _, m in batch])
            except Exception:
                # A bug rather than bad input (which is dead-lettered): leave the batch
                # unacknowledged, so that the broker delivers it again on the next connection.
                logger.exception(
                    "checking a batch of %d messages failed; not acknowledged", len(batch)
                )
                continue
            if not self._hand_over((batch, checked)):
                checked.release()
                return
        self._hand_over(None)

    def _hand_over(self, item: tuple[list[tuple[int, Message]], CheckedBatch] | None) -> bool:
        """Waits for the worker to take the previous batch; False if stopping meanwhile."""
        while not self._stopping.is_set():
            try:
                self._checked.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                item = self._checked.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                return
            batch, checked = item
            try:
                committed = self._handle_until_committed(checked)
            finally:
                checked.release()
            if committed:
                self._ack(batch)

    def _next_batch(self) -> list[tuple[int, Message]]:
        """Waits for one message, then takes whatever else has arrived, up to max_batch; [] when
        stopping."""
        batch: list[tuple[int, Message]] = []
        while len(batch) < self._max_batch:
            if not self._carried:
                try:
                    item = self._queue.get(block=not batch)
                except queue.Empty:
                    break
                if item is None:
                    if batch:
                        self._queue.put(None)  # seen again by the next call, after this batch
                    break
                generation, messages = item
                self._carried = [(generation, message) for message in messages]
            room = self._max_batch - len(batch)
            batch += self._carried[:room]
            del self._carried[:room]
        return batch

    def _handle_until_committed(self, messages: CheckedBatch) -> bool:
        delay = 0.1
        while not self._stopping.is_set():
            try:
                self._ingestor.handle_batch(messages)
                return True
            except SQLAlchemyError:
                logger.exception(
                    "storing a batch of %d messages failed; retrying in %.1f s",
                    len(messages),
                    delay,
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, self._max_retry_delay_s)
            except Exception:
                # Not a database outage, so retrying now would fail the same way. Leaving the batch
                # unacknowledged makes the broker deliver it again on the next connection.
                logger.exception(
                    "handling a batch of %d messages failed; not acknowledged", len(messages)
                )
                return False
        return False

    def _ack(self, batch: list[tuple[int, Message]]) -> None:
        by_generation: dict[int, list[int]] = {}
        for generation, message in batch:
            if message.packet_id:  # QoS 0 needs no acknowledgement
                by_generation.setdefault(generation, []).append(message.packet_id)
        for generation, packet_ids in by_generation.items():
            # A stale connection's ids are dropped: the broker redelivers those messages.
            self._subscriber.ack(generation, packet_ids)
