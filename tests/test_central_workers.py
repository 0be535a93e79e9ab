"""Two central workers on one shared subscription, against real Mosquitto and PostgreSQL: each
answer is stored exactly once, and both workers take a share of the stream."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from conftest import Messages, Publisher, Store, mqtt_client
from sqlalchemy import func, select

from central.ingest import ANSWERS_SUBSCRIPTION, Ingestor, MqttIngest, OutcomeKind
from central.models import AnswerEvent, GatewayState
from central.settings import CentralSettings
from classink.mosquitto import Mosquitto

GATEWAYS = 4
ANSWERS_PER_GATEWAY = 150


@pytest.fixture
def worker_settings(mosquitto: Mosquitto) -> Iterator[list[CentralSettings]]:
    ids = [f"central-worker-{n}-{uuid.uuid4().hex[:6]}" for n in (1, 2)]
    yield [
        CentralSettings(mqtt_host="127.0.0.1", mqtt_port=mosquitto.port, client_id=client_id)
        for client_id in ids
    ]
    for client_id in ids:  # end the sessions, so later tests' messages are not shared with them
        client = mqtt_client(mosquitto, client_id)
        client.disconnect()
        client.loop_stop()


def test_two_workers_on_a_shared_subscription_store_each_answer_exactly_once(
    postgres_store: Store, publisher: Publisher, worker_settings: list[CentralSettings]
) -> None:
    assert ANSWERS_SUBSCRIPTION.startswith("$share/central/")
    ingestors = [Ingestor(postgres_store.sessions) for _ in worker_settings]
    workers = [
        MqttIngest(ingestor, settings, max_batch=50)
        for ingestor, settings in zip(ingestors, worker_settings, strict=True)
    ]
    gateways = [Messages(site_id="site-share", gateway_id=f"gw-{n}") for n in range(GATEWAYS)]
    event_ids: set[str] = set()
    for worker in workers:
        worker.start()
    try:
        assert all(worker.wait_subscribed(10) for worker in workers)
        for n in range(ANSWERS_PER_GATEWAY):
            for gateway in gateways:
                answer = gateway.answer(question_id=f"q{n}")
                event_ids.add(answer["event_id"])
                payload = gateway.payload(answer)
                publisher.publish(gateway.topic(), payload)
                if n % 5 == 0:  # a gateway's outbox resending what it was not sure about
                    publisher.publish(gateway.topic(), payload)
        deadline = time.monotonic() + 30
        while _stored(postgres_store) < len(event_ids) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # a duplicate stored late would show up now
    finally:
        for worker in workers:
            worker.stop()

    with postgres_store.sessions() as session:
        stored_ids = list(session.scalars(select(AnswerEvent.event_id)))
        states = list(session.scalars(select(GatewayState)))
    assert len(stored_ids) == len(set(stored_ids)) == len(event_ids)
    assert set(stored_ids) == event_ids
    stored_by = [ingestor.counts[OutcomeKind.STORED] for ingestor in ingestors]
    assert sum(stored_by) == len(event_ids)
    assert all(count > 0 for count in stored_by), f"one worker did nothing: {stored_by}"
    duplicates = sum(ingestor.counts[OutcomeKind.DUPLICATE] for ingestor in ingestors)
    assert duplicates == GATEWAYS * len(range(0, ANSWERS_PER_GATEWAY, 5))
    assert {(s.gateway_id, s.highest_seq, s.seq_gaps) for s in states} == {
        (gateway.gateway_id, ANSWERS_PER_GATEWAY, 0) for gateway in gateways
    }


def _stored(store: Store) -> int:
    with store.sessions() as session:
        return session.scalar(select(func.count()).select_from(AnswerEvent)) or 0
