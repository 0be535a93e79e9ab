"""Central ingest: validation, idempotent storage and dead letters on SQLite and PostgreSQL, then
delivery through a real Mosquitto with manual acknowledgement."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pytest
from conftest import Messages, Publisher, Store
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from central.ingest import Ingestor, MqttIngest, Outcome, OutcomeKind
from central.models import AnswerEvent, DeadLetter, GatewayState
from central.settings import CentralSettings


def count(store: Store, model: type) -> int:
    with store.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def gateway_state(store: Store, messages: Messages) -> GatewayState:
    with store.sessions() as session:
        state = session.get(GatewayState, (messages.site_id, messages.gateway_id))
        assert state is not None
        return state


def dead_letters(store: Store) -> list[DeadLetter]:
    with store.sessions() as session:
        return list(session.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the ingest"
        time.sleep(0.05)


# --- storage, on both databases ---------------------------------------------------------------


def test_valid_event_is_stored_with_every_field(store: Store, messages: Messages) -> None:
    event = messages.answer(created_at="2025-03-04T09:15:30.250+01:00", student_id=None)

    outcome = store.ingestor.handle(messages.topic(), messages.payload(event))

    assert outcome == Outcome(OutcomeKind.STORED, event_id=event["event_id"])
    with store.sessions() as session:
        row = session.get(AnswerEvent, event["event_id"])
        assert row is not None
        stored = {column: getattr(row, column) for column in event}
    expected = dict(event, created_at=datetime(2025, 3, 4, 8, 15, 30, 250000, tzinfo=UTC))
    assert stored == expected
    assert row.received_at.tzinfo is not None
    assert abs((datetime.now(UTC) - row.received_at).total_seconds()) < 60


def test_redelivered_event_is_stored_once(store: Store, messages: Messages) -> None:
    payload = messages.payload(messages.answer())

    first = store.ingestor.handle(messages.topic(), payload)
    second = store.ingestor.handle(messages.topic(), payload)

    assert (first.kind, second.kind) == (OutcomeKind.STORED, OutcomeKind.DUPLICATE)
    assert count(store, AnswerEvent) == 1
    state = gateway_state(store, messages)
    assert (state.highest_seq, state.seq_gaps) == (1, 0)


def test_seq_gaps_are_counted_and_filled_by_late_events(store: Store, messages: Messages) -> None:
    def send(seq: int) -> bytes:
        payload = messages.payload(messages.answer(seq=seq))
        assert store.ingestor.handle(messages.topic(), payload).kind == OutcomeKind.STORED
        return payload

    send(1)
    send(2)
    fifth = send(5)
    state = gateway_state(store, messages)
    assert (state.highest_seq, state.seq_gaps) == (5, 2)

    send(3)  # arrives late, e.g. from another central worker's share of the stream
    store.ingestor.handle(messages.topic(), fifth)  # a redelivery is not a new event
    state = gateway_state(store, messages)
    assert (state.highest_seq, state.seq_gaps) == (5, 1)

    send(9)
    assert gateway_state(store, messages).seq_gaps == 4


def test_status_messages_update_the_gateway_state(store: Store, messages: Messages) -> None:
    topic = messages.topic("status")
    online = messages.status(software_version="1.2.3")
    assert store.ingestor.handle(topic, messages.payload(online)).kind == OutcomeKind.STATUS
    state = gateway_state(store, messages)
    assert (state.state, state.reason, state.software_version) == ("online", "connected", "1.2.3")
    assert (state.highest_seq, state.seq_gaps) == (0, 0)

    will = messages.status(state="offline", reason="connection lost", at=None)
    store.ingestor.handle(topic, messages.payload(will))
    state = gateway_state(store, messages)
    assert (state.state, state.reason) == ("offline", "connection lost")
    assert state.last_seen.tzinfo is not None


def _bad_messages(messages: Messages) -> list[tuple[str, bytes, str]]:
    """(topic, payload, expected reason) for every kind of rejection."""
    answers, status = messages.topic("answers"), messages.topic("status")

    def answer(**overrides: object) -> bytes:
        return messages.payload(messages.answer(**overrides))

    missing_label = messages.answer()
    del missing_label["label"]
    return [
        (answers, b"{not json", "invalid_json"),
        (answers, b"", "invalid_json"),
        (answers, b"\xff\xfe\x00garbage", "invalid_json"),
        (answers, b'{"confidence": NaN}', "invalid_json"),
        (answers, b'{"confidence": 1e400}', "invalid_json"),
        (answers, b"[" * 100_000, "invalid_json"),
        (answers, b'["an array"]', "schema: $: ['an array'] is not of type 'object'"),
        (
            answers,
            answer(confidence=1.5),
            "schema: $.confidence: 1.5 is greater than the maximum of 1",
        ),
        (answers, messages.payload(missing_label), "schema: $: 'label' is a required property"),
        (answers, answer(pen_id="00-1A-2B-3C-4D-5E"), "schema: $.pen_id: "),
        (answers, answer(status="review", correct=True), "schema: $.correct: None was expected"),
        (
            answers,
            answer(created_at="yesterday"),
            "schema: $.created_at: 'yesterday' is not a 'date-time'",
        ),
        (answers, answer(created_at="2025-03-04 09:15:30"), "schema: $.created_at: "),
        (answers, answer(extra="field"), "schema: $: Additional properties are not allowed"),
        (answers, messages.payload(messages.status()), "schema: "),
        (answers, answer(created_at="9999-12-31T23:59:59-01:00"), "schema: $.created_at: "),
        (answers, answer(pen_id="00:1a:2b:3c:4d:5e\n"), "schema: $.pen_id: "),  # ECMA `$`
        (answers, answer(gateway_id="gw-2"), "topic_mismatch"),
        (status, messages.payload(messages.status(site_id="site-2")), "topic_mismatch"),
        (answers, answer(label="7\x00"), "unstorable: $.label contains a NUL character"),
        (answers, answer(seq=2**64), "unstorable: $.seq is larger than a 64-bit integer"),
        ("classink/v1/site-1/gw-1/config", answer(), "unknown_topic"),
        ("classink/v2/site-1/gw-1/answers", answer(), "unknown_topic"),
        ("classink/v1/Site_1/gw-1/answers", answer(), "unknown_topic"),
        ("classink/v1/site-1/gw-1/answers/extra", answer(), "unknown_topic"),
        ("classink/v1/site-1/gw-1/answers\n", answer(), "unknown_topic"),
    ]


def test_every_kind_of_bad_message_is_dead_lettered(store: Store, messages: Messages) -> None:
    bad = _bad_messages(messages)

    for topic, payload, reason in bad:
        outcome = store.ingestor.handle(topic, payload)
        assert outcome.kind == OutcomeKind.REJECTED, (topic, payload[:80])
        assert outcome.reason is not None and outcome.reason.startswith(reason), outcome.reason
        assert len(outcome.reason) <= 300

    letters = dead_letters(store)
    for letter, (topic, _, reason) in zip(letters, bad, strict=True):
        assert letter.topic == topic
        assert letter.reason.startswith(reason)
    by_payload = {letter.payload for letter in letters}
    assert "{not json" in by_payload
    assert "\\xff\\xfe\\x00garbage" in by_payload  # undecodable bytes and NULs kept as escapes
    assert count(store, AnswerEvent) == 0
    assert store.ingestor.counts[OutcomeKind.REJECTED] == len(bad)
    assert store.ingestor.counts["rejected:topic_mismatch"] == 2
    assert store.ingestor.counts["rejected:unknown_topic"] == 5

    good = messages.answer()
    outcome = store.ingestor.handle(messages.topic(), messages.payload(good))
    assert outcome.kind == OutcomeKind.STORED
    assert count(store, AnswerEvent) == 1


def test_value_the_database_refuses_is_dead_lettered(
    postgres_store: Store, messages: Messages
) -> None:
    # Stands in for any column narrower than the contract allows.
    with postgres_store.engine.begin() as connection:
        connection.execute(text("ALTER TABLE answer_events ALTER COLUMN label TYPE varchar(3)"))

    outcome = postgres_store.ingestor.handle(
        messages.topic(), messages.payload(messages.answer(label="tick"))
    )

    assert outcome.kind == OutcomeKind.REJECTED
    assert outcome.reason == "unstorable: value too long for type character varying(3)"
    assert [letter.reason for letter in dead_letters(postgres_store)] == [outcome.reason]
    good = messages.payload(messages.answer(label="7"))
    assert postgres_store.ingestor.handle(messages.topic(), good).kind == OutcomeKind.STORED


# --- delivery through a real broker -----------------------------------------------------------


def test_mqtt_ingest_stores_each_distinct_event_once_and_dead_letters_bad_ones(
    store: Store, messages: Messages, publisher: Publisher, central_settings: CentralSettings
) -> None:
    ingest = MqttIngest(store.ingestor, central_settings).start()
    try:
        assert ingest.wait_subscribed(10), "MqttIngest did not subscribe"
        events = [messages.answer(question_id=f"q{n}") for n in range(1, 21)]
        for n, event in enumerate(events):
            publisher.publish(messages.topic(), messages.payload(event))
            if n % 3 == 0:  # the gateway's outbox resends what it was not sure about
                publisher.publish(messages.topic(), messages.payload(event))
        publisher.publish(messages.topic("status"), messages.payload(messages.status()))
        bad = [
            (messages.topic(), b"\x00\x01 not json"),
            (messages.topic(), messages.payload(messages.answer(confidence=-1))),
            (messages.topic(), messages.payload(messages.answer(site_id="elsewhere"))),
            ("classink/v1/NOT_AN_ID/gw-1/answers", messages.payload(messages.answer())),
        ]
        for topic, payload in bad:
            publisher.publish(topic, payload)
        publisher.publish(messages.topic(), messages.payload(messages.answer(question_id="last")))

        wait_until(lambda: count(store, AnswerEvent) == 21 and count(store, DeadLetter) == 4)
        time.sleep(0.3)  # anything extra would show up now
    finally:
        ingest.stop()

    assert count(store, AnswerEvent) == 21
    assert sorted(letter.reason.split(":")[0] for letter in dead_letters(store)) == [
        "invalid_json",
        "schema",
        "topic_mismatch",
        "unknown_topic",
    ]
    state = gateway_state(store, messages)
    assert (state.state, state.highest_seq, state.seq_gaps) == ("online", 24, 3)
    assert store.ingestor.counts[OutcomeKind.DUPLICATE] == 7


class FailingIngestor(Ingestor):
    """Behaves like a database that is down for the first `failures` attempts."""

    def __init__(self, store: Store, failures: int) -> None:
        super().__init__(store.sessions)
        self.failures = failures
        self.attempts = 0
        self.attempted = threading.Event()

    def handle_batch(self, messages: Sequence[tuple[str, bytes]]) -> list[Outcome]:
        self.attempts += 1
        self.attempted.set()
        if self.attempts <= self.failures:
            raise OperationalError("INSERT", {}, Exception("database is down"))
        return super().handle_batch(messages)


def test_mqtt_ingest_retries_until_the_database_is_back(
    sqlite_store: Store, messages: Messages, publisher: Publisher, central_settings: CentralSettings
) -> None:
    ingestor = FailingIngestor(sqlite_store, failures=3)
    ingest = MqttIngest(ingestor, central_settings, max_retry_delay_s=0.2).start()
    try:
        assert ingest.wait_subscribed(10)
        publisher.publish(messages.topic(), messages.payload(messages.answer()))
        wait_until(lambda: count(sqlite_store, AnswerEvent) == 1)
    finally:
        ingest.stop()
    assert ingestor.attempts == 4

    # It was acknowledged once stored: the resumed session has nothing to deliver again.
    again = FailingIngestor(sqlite_store, failures=0)
    ingest = MqttIngest(again, central_settings).start()
    try:
        assert ingest.wait_subscribed(10)
        time.sleep(0.5)
    finally:
        ingest.stop()
    assert again.attempts == 0


def test_unacknowledged_message_is_redelivered_after_a_restart(
    sqlite_store: Store, messages: Messages, publisher: Publisher, central_settings: CentralSettings
) -> None:
    down = FailingIngestor(sqlite_store, failures=10**9)
    ingest = MqttIngest(down, central_settings, max_retry_delay_s=0.1).start()
    try:
        assert ingest.wait_subscribed(10)
        event = messages.answer()
        publisher.publish(messages.topic(), messages.payload(event))
        assert down.attempted.wait(10)
    finally:
        ingest.stop()
    assert count(sqlite_store, AnswerEvent) == 0

    # Same client id, so the broker resumes the session and sends the unacknowledged message.
    ingest = MqttIngest(sqlite_store.ingestor, central_settings).start()
    try:
        wait_until(lambda: count(sqlite_store, AnswerEvent) == 1)
    finally:
        ingest.stop()
    with sqlite_store.sessions() as session:
        assert session.scalar(select(AnswerEvent.event_id)) == event["event_id"]


def test_retained_status_is_read_on_subscribe(
    sqlite_store: Store, publisher: Publisher, central_settings: CentralSettings
) -> None:
    gateway = Messages(site_id="site-retained", gateway_id="gw-9")
    topic = gateway.topic("status")
    publisher.publish(topic, gateway.payload(gateway.status()), retain=True)
    ingest = MqttIngest(sqlite_store.ingestor, central_settings).start()
    try:
        wait_until(lambda: count(sqlite_store, GatewayState) == 1)
    finally:
        ingest.stop()
        publisher.publish(topic, b"", retain=True)  # clears the retained message for later tests
    assert gateway_state(sqlite_store, gateway).state == "online"


# --- batches ----------------------------------------------------------------------------------


def observed(store: Store) -> list[str]:
    """Event ids the tracing observers would see, in the order they were called."""
    seen: list[str] = []
    store.ingestor.observers.append(lambda doc: seen.append(doc["event_id"]))
    return seen


def test_batch_stores_each_event_once_within_and_across_batches(
    store: Store, messages: Messages
) -> None:
    seen = observed(store)
    e1, e2, e3, e4 = (messages.answer(question_id=f"q{n}") for n in range(1, 5))  # seq 1..4
    e7 = messages.answer(seq=7)
    review = messages.answer(seq=6, status="review")
    topic = messages.topic()

    def batch(*events: dict) -> list[OutcomeKind]:
        payloads = [(topic, messages.payload(event)) for event in events]
        return [outcome.kind for outcome in store.ingestor.handle_batch(payloads)]

    stored, duplicate = OutcomeKind.STORED, OutcomeKind.DUPLICATE
    assert batch(e1, e2, e1, e7) == [stored, stored, duplicate, stored]
    state = gateway_state(store, messages)
    assert (state.highest_seq, state.seq_gaps) == (7, 4)  # 3, 4, 5 and 6 are missing

    assert batch(e7, e3, e2, review, e3, e4) == [
        duplicate,
        stored,
        duplicate,
        stored,
        duplicate,
        stored,
    ]
    assert count(store, AnswerEvent) == 6
    state = gateway_state(store, messages)
    assert (state.highest_seq, state.seq_gaps) == (7, 1)  # only 5 is still missing
    # Observers see every new scored answer once, after its batch committed; not the review one.
    assert seen == [e1["event_id"], e2["event_id"], e7["event_id"]] + [
        e3["event_id"],
        e4["event_id"],
    ]


def test_malformed_message_in_a_batch_is_dead_lettered_and_the_rest_stored(
    store: Store, messages: Messages
) -> None:
    first, last = messages.answer(), messages.answer()
    batch = [
        (messages.topic(), messages.payload(first)),
        (messages.topic(), b"{not json"),
        (messages.topic(), messages.payload(messages.answer(confidence=1.5))),
        (messages.topic("status"), messages.payload(messages.status(state="offline"))),
        ("classink/v1/site-1/gw-1/config", messages.payload(messages.answer())),
        (messages.topic(), messages.payload(last)),
    ]

    outcomes = store.ingestor.handle_batch(batch)

    assert [outcome.kind for outcome in outcomes] == [
        OutcomeKind.STORED,
        OutcomeKind.REJECTED,
        OutcomeKind.REJECTED,
        OutcomeKind.STATUS,
        OutcomeKind.REJECTED,
        OutcomeKind.STORED,
    ]
    assert [letter.reason.split(":")[0] for letter in dead_letters(store)] == [
        "invalid_json",
        "schema",
        "unknown_topic",
    ]
    with store.sessions() as session:
        ids = set(session.scalars(select(AnswerEvent.event_id)))
    assert ids == {first["event_id"], last["event_id"]}
    state = gateway_state(store, messages)
    assert (state.state, state.highest_seq, state.seq_gaps) == ("offline", 2, 0)


def test_value_the_database_refuses_only_dead_letters_its_own_message(
    postgres_store: Store, messages: Messages
) -> None:
    with postgres_store.engine.begin() as connection:
        connection.execute(text("ALTER TABLE answer_events ALTER COLUMN label TYPE varchar(3)"))
    batch = [
        (messages.topic(), messages.payload(messages.answer(label=label)))
        for label in ("7", "tick", "8")
    ]

    kinds = [outcome.kind for outcome in postgres_store.ingestor.handle_batch(batch)]

    assert kinds == [OutcomeKind.STORED, OutcomeKind.REJECTED, OutcomeKind.STORED]
    assert count(postgres_store, AnswerEvent) == 2
    assert [letter.reason for letter in dead_letters(postgres_store)] == [
        "unstorable: value too long for type character varying(3)"
    ]


def test_a_failed_commit_stores_nothing_and_the_retry_stores_everything(
    store: Store, messages: Messages
) -> None:
    seen = observed(store)
    batch = [(messages.topic(), messages.payload(messages.answer())) for _ in range(5)]
    batch.append((messages.topic(), b"{not json"))
    failures = [OperationalError("COMMIT", {}, Exception("disk full"))]

    def fail_once(_session: Session) -> None:
        if failures:
            raise failures.pop()

    event.listen(store.sessions, "before_commit", fail_once)
    try:
        with pytest.raises(OperationalError):
            store.ingestor.handle_batch(batch)
        assert (count(store, AnswerEvent), count(store, DeadLetter), seen) == (0, 0, [])
        assert count(store, GatewayState) == 0

        outcomes = store.ingestor.handle_batch(batch)
    finally:
        event.remove(store.sessions, "before_commit", fail_once)
    assert [outcome.kind for outcome in outcomes].count(OutcomeKind.STORED) == 5
    assert (count(store, AnswerEvent), count(store, DeadLetter), len(seen)) == (5, 1, 5)
    assert gateway_state(store, messages).highest_seq == 5


class RecordingIngestor(FailingIngestor):
    """Remembers the size of every batch it was handed; slow on the first one if told, so that
    the messages arriving meanwhile queue up."""

    def __init__(self, store: Store, failures: int, first_delay_s: float = 0.0) -> None:
        super().__init__(store, failures)
        self.batch_sizes: list[int] = []
        self.first_delay_s = first_delay_s

    def handle_batch(self, messages: Sequence[tuple[str, bytes]]) -> list[Outcome]:
        if not self.batch_sizes:
            time.sleep(self.first_delay_s)
        self.batch_sizes.append(len(messages))
        return super().handle_batch(messages)


def test_a_batch_that_fails_to_commit_is_not_acknowledged_and_is_redelivered(
    sqlite_store: Store, messages: Messages, publisher: Publisher, central_settings: CentralSettings
) -> None:
    # Create the broker session, then leave, so that the messages queue up for it.
    ingest = MqttIngest(sqlite_store.ingestor, central_settings).start()
    assert ingest.wait_subscribed(10)
    ingest.stop()
    events = [messages.answer(question_id=f"q{n}") for n in range(30)]
    for event_ in events:
        publisher.publish(messages.topic(), messages.payload(event_))

    down = RecordingIngestor(sqlite_store, failures=10**9, first_delay_s=0.3)
    ingest = MqttIngest(down, central_settings, max_retry_delay_s=0.1).start()
    try:
        wait_until(lambda: down.attempts > 3)
    finally:
        ingest.stop()
    assert count(sqlite_store, AnswerEvent) == 0
    assert len(set(down.batch_sizes)) == 1, "a failed batch is retried as it was"

    back = RecordingIngestor(sqlite_store, failures=0, first_delay_s=0.3)
    ingest = MqttIngest(back, central_settings, max_batch=8).start()
    try:
        wait_until(lambda: count(sqlite_store, AnswerEvent) == 30)
        time.sleep(0.3)
    finally:
        ingest.stop()
    assert max(back.batch_sizes) == 8, back.batch_sizes  # what queued meanwhile, capped
    assert back.counts[OutcomeKind.STORED] == 30
    assert count(sqlite_store, AnswerEvent) == 30
    state = gateway_state(sqlite_store, messages)
    assert (state.highest_seq, state.seq_gaps) == (30, 0)
