"""Shared fixtures: a private Mosquitto, a private PostgreSQL, central stores on both databases, and
a factory for schema-valid gateway messages."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pg import create_database, postgres_server
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from central.db import create_schema, make_engine, make_session_factory
from central.ingest import Ingestor
from central.settings import CentralSettings
from classink.mosquitto import Mosquitto

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    with Mosquitto() as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind; PostgreSQL starts only when a test asks for it."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'central.db'}"
    server_url = request.getfixturevalue("postgres_url")
    return create_database(server_url, f"classink_test_{next(_database_numbers)}")


@dataclass
class Store:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    ingestor: Ingestor


def _open_store(url: str) -> Iterator[Store]:
    engine = make_engine(url)
    create_schema(engine)
    sessions = make_session_factory(engine)
    try:
        yield Store(url, engine, sessions, Ingestor(sessions))
    finally:
        engine.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A central store with its schema, on SQLite and on PostgreSQL."""
    yield from _open_store(database_url)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """For tests about delivery rather than storage, where one database is enough."""
    yield from _open_store(f"sqlite:///{tmp_path / 'central.db'}")


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[Store]:
    """For behaviour that only PostgreSQL shows."""
    yield from _open_store(
        create_database(postgres_url, f"classink_test_{next(_database_numbers)}")
    )


class Messages:
    """Schema-valid gateway messages; every answer gets the gateway's next seq unless told."""

    def __init__(self, site_id: str = "site-1", gateway_id: str = "gw-1") -> None:
        self.site_id = site_id
        self.gateway_id = gateway_id
        self._seq = itertools.count(1)
        self._random = random.Random(7)

    def pen_id(self) -> str:
        return ":".join(f"{self._random.randrange(256):02x}" for _ in range(6))

    def answer(self, **overrides: Any) -> dict[str, Any]:
        event: dict[str, Any] = {
            "schema": "classink.answer.v1",
            "event_id": str(uuid.uuid4()),
            "site_id": self.site_id,
            "gateway_id": self.gateway_id,
            "seq": next(self._seq),
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "exam_id": "exam-1",
            "page_address": "1.2.3.4",
            "pen_id": "00:1a:2b:3c:4d:5e",
            "student_id": "s1",
            "question_id": "q1",
            "kind": "digit",
            "revision": 1,
            "label": "7",
            "confidence": 0.97,
            "status": "scored",
            "correct": True,
            "points_awarded": 1,
            "points_possible": 1,
            "box_mm": [20.0, 30.0, 15.0, 10.0],
            "strokes": [
                {"t0_ms": 0, "points": [[22.0, 31.5, 0, 0.4], [27.5, 31.0, 40, 0.6]]},
                {"t0_ms": 300, "points": [[27.5, 31.0, 0, 0.5], [23.0, 38.5, 60, 0.7]]},
            ],
        }
        if overrides.get("status") == "review":
            event.update(correct=None, points_awarded=None)
        event.update(overrides)
        return event

    def status(self, **overrides: Any) -> dict[str, Any]:
        message: dict[str, Any] = {
            "schema": "classink.status.v1",
            "site_id": self.site_id,
            "gateway_id": self.gateway_id,
            "state": "online",
            "reason": "connected",
            "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "software_version": "0.1.0",
        }
        message.update(overrides)
        return message

    def topic(self, kind: str = "answers") -> str:
        return f"classink/v1/{self.site_id}/{self.gateway_id}/{kind}"

    @staticmethod
    def payload(message: dict[str, Any]) -> bytes:
        return json.dumps(message).encode()


@pytest.fixture
def messages() -> Messages:
    return Messages()


def mqtt_client(broker: Mosquitto, client_id: str, *, clean: bool = True) -> mqtt.Client:
    """A connected plain paho client with its network loop running."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0
    client.connect("127.0.0.1", broker.port, clean_start=clean, properties=properties)
    client.loop_start()
    return client


@pytest.fixture
def central_settings(mosquitto: Mosquitto) -> Iterator[CentralSettings]:
    """Settings for one MqttIngest; its broker session is removed after the test, because an
    offline member of the shared subscription would keep receiving a share of later tests'
    messages."""
    client_id = f"central-test-{uuid.uuid4().hex[:8]}"
    yield CentralSettings(
        mqtt_host="127.0.0.1",
        mqtt_port=mosquitto.port,
        client_id=client_id,
    )
    # Connecting with a clean start and no expiry, then leaving, ends the session for good.
    client = mqtt_client(mosquitto, client_id)
    client.disconnect()
    client.loop_stop()


class Publisher:
    """Plays the gateway: publishes at QoS 1 and waits for each PUBACK."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=5)
        assert info.is_published(), f"no PUBACK for {topic}"


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    client = mqtt_client(mosquitto, f"gateway-test-{uuid.uuid4().hex[:8]}")
    yield Publisher(client)
    client.disconnect()
    client.loop_stop()


# -- issue 5: a broker that admits only the fleet's users, over TLS -----------------------------


@dataclass
class SecureBroker:
    broker: Mosquitto
    fleet: Any  # central.fleet.service.Fleet
    sessions: sessionmaker[Session]
    ca_cert: Path
    central_username: str = "central"
    central_password: str = "central-test-password"


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureBroker]:
    """Mosquitto with a password file, an ACL and a TLS listener (throwaway CA), and a fleet on
    SQLite that rewrites both files and makes the broker re-read them (SIGHUP) on every claim."""
    import central.fleet.models  # noqa: F401  (registers the fleet tables)
    from central.fleet.broker_auth import BrokerUser, mosquitto_hash, write_broker_files
    from central.fleet.service import BrokerAuthFiles, Fleet
    from classink.pki import make_broker_pki

    engine = make_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    create_schema(engine)
    sessions = make_session_factory(engine)
    broker = Mosquitto(
        password_file=tmp_path / "passwd",
        acl_file=tmp_path / "acl",
        tls=make_broker_pki(tmp_path / "pki"),
    )
    central_user = ("central", "central-test-password")
    write_broker_files(
        [BrokerUser(central_user[0], mosquitto_hash(central_user[1]))],
        broker.password_file,
        broker.acl_file,
    )
    auth = BrokerAuthFiles(
        broker.password_file, broker.acl_file, *central_user, reload=lambda: broker.reload()
    )
    broker.start()
    try:
        yield SecureBroker(broker, Fleet(sessions, auth), sessions, broker.tls.ca_cert)
    finally:
        broker.stop()
        engine.dispose()


def secure_client(
    secure: SecureBroker, username: str, password: str, client_id: str | None = None
) -> mqtt.Client:
    """A client connected over TLS with a login; raises ConnectionRefusedError if refused."""
    import threading

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.username_pw_set(username, password)
    client.tls_set(ca_certs=str(secure.ca_cert))
    answered = threading.Event()
    outcome: list[Any] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        outcome.append(reason)
        answered.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", secure.broker.tls_port)
    client.loop_start()
    if not answered.wait(10) or outcome[0].is_failure:
        client.loop_stop()
        raise ConnectionRefusedError(f"{username}: {outcome[0] if outcome else 'no answer'}")
    return client


# -- issue 7: every central route needs a token -------------------------------------------------


def admin_headers(app: Any, user: str = "test-admin") -> dict[str, str]:
    """An Authorization header with a fresh admin token issued by `app` (a central create_app).

    Use as `TestClient(app, headers=admin_headers(app))`; the app's database needs its schema."""
    import central.auth.models  # noqa: F401  (registers the token tables)

    return {"Authorization": f"Bearer {app.state.issue_token('admin', user)}"}
