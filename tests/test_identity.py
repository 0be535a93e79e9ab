"""Gateway identity: one-time claim tokens exchanged for broker logins, and a real Mosquitto whose
ACL keeps each gateway to its own topics."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import uvicorn
from conftest import SecureBroker, admin_headers, secure_client
from fastapi.testclient import TestClient
from sqlalchemy import select

from central.api import create_app
from central.fleet.api import install
from central.fleet.broker_auth import acl_text, gateway_username
from central.fleet.models import FleetGateway
from central.fleet.service import Fleet
from central.settings import CentralSettings
from classink.mosquitto import free_port, wait_for_port
from gateway.identity import IdentityError, claim, load_credentials, save_credentials

SITE = "site-1"


@pytest.fixture
def central_url(secure_broker: SecureBroker) -> Iterator[str]:
    """Central's web app on a real port, with the secure broker's fleet."""
    engine = secure_broker.sessions.kw["bind"]
    app = create_app(CentralSettings(database_url=str(engine.url)), engine=engine)
    install(app, secure_broker.fleet)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port, 20)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def connect_when_admitted(secure: SecureBroker, username: str, password: str) -> mqtt.Client:
    """The broker re-reads its files on SIGHUP a moment after the claim: retry briefly."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return secure_client(secure, username, password)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Inbox:
    def __init__(self, client: mqtt.Client) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.subacks: list[list[int]] = []
        self.got = threading.Condition()
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe

    def _on_message(self, _c, _u, message: mqtt.MQTTMessage) -> None:
        with self.got:
            self.messages.append((message.topic, message.payload))
            self.got.notify_all()

    def _on_subscribe(self, _c, _u, _mid, codes, _p) -> None:
        with self.got:
            self.subacks.append([c.value for c in codes])
            self.got.notify_all()

    def wait_for(self, predicate, timeout: float = 10) -> bool:
        with self.got:
            return self.got.wait_for(lambda: predicate(self), timeout)

    def topics(self) -> list[str]:
        return [t for t, _ in self.messages]


def test_a_claim_token_works_once_and_is_kept_only_as_a_hash(tmp_path: Path) -> None:
    import central.fleet.models  # noqa: F401
    from central.db import create_schema, make_engine, make_session_factory

    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    create_schema(engine)
    app = create_app(CentralSettings(), engine=engine)
    sessions = make_session_factory(engine)
    install(app, Fleet(sessions))
    with TestClient(app, headers=admin_headers(app)) as http:
        token = http.post(f"/api/fleet/gateways/{SITE}/gw-a/provision").json()["claim_token"]
        with sessions() as session:
            row = session.execute(select(FleetGateway)).scalar_one()
            assert token not in json.dumps(
                {c.name: str(getattr(row, c.name)) for c in FleetGateway.__table__.columns}
            )
        first = http.post("/api/fleet/claim", json={"claim_token": token})
        assert first.status_code == 200
        assert first.json()["mqtt_username"] == gateway_username(SITE, "gw-a")
        again = http.post("/api/fleet/claim", json={"claim_token": token})
        assert again.status_code == 403 and "used" in again.json()["detail"]
        made_up = http.post("/api/fleet/claim", json={"claim_token": "x" * 43})
        assert made_up.status_code == 403
        assert http.post("/api/fleet/gateways/Bad_Site/gw/provision").status_code == 422
        with sessions() as session:
            row = session.execute(select(FleetGateway)).scalar_one()
            assert row.mqtt_password_hash.startswith("$7$")
            assert first.json()["mqtt_password"] not in row.mqtt_password_hash
    engine.dispose()


def test_acl_grants_each_gateway_only_its_own_topics() -> None:
    text = acl_text([])
    assert "user" not in text.replace("# written", "")
    from central.fleet.broker_auth import BrokerUser

    text = acl_text([BrokerUser("gw.s.g", "h", "s", "g")])
    assert "topic write classink/v1/s/g/answers" in text
    assert "topic read classink/v1/s/g/config" in text
    assert "+" not in text  # no wildcard grants for a gateway


def test_gateway_a_cannot_publish_as_b_or_read_bs_config(
    secure_broker: SecureBroker, central_url: str, tmp_path: Path
) -> None:
    fleet = secure_broker.fleet
    tokens = {gw: fleet.provision(SITE, gw) for gw in ("gw-a", "gw-b")}
    files = {}
    for gw, token in tokens.items():
        files[gw] = tmp_path / f"{gw}.json"
        save_credentials(claim(central_url, token), files[gw])
        assert files[gw].stat().st_mode & 0o777 == 0o600
    with pytest.raises(IdentityError, match="403"):
        claim(central_url, tokens["gw-a"])  # single use
    a = load_credentials(files["gw-a"], SITE, "gw-a")
    with pytest.raises(IdentityError, match="gw-b"):
        load_credentials(files["gw-b"], SITE, "gw-a")

    central = connect_when_admitted(
        secure_broker, secure_broker.central_username, secure_broker.central_password
    )
    seen = Inbox(central)
    central.subscribe("classink/v1/+/+/answers", qos=1)
    assert seen.wait_for(lambda s: s.subacks)
    for gw in ("gw-a", "gw-b"):
        info = central.publish(f"classink/v1/{SITE}/{gw}/config", gw.encode(), qos=1, retain=True)
        info.wait_for_publish(5)

    gateway_a = connect_when_admitted(secure_broker, a.mqtt_username, a.mqtt_password)
    mine = Inbox(gateway_a)
    try:
        # Publish as B first, then as itself: the broker keeps one client's order, so when A's
        # own message has arrived, B's would have arrived before it had it been let through.
        gateway_a.publish(f"classink/v1/{SITE}/gw-b/answers", b"forged", qos=1).wait_for_publish(5)
        gateway_a.publish(f"classink/v1/{SITE}/other/answers", b"forged", qos=1)
        gateway_a.publish(f"classink/v1/{SITE}/gw-a/answers", b"mine", qos=1).wait_for_publish(5)
        assert seen.wait_for(lambda s: f"classink/v1/{SITE}/gw-a/answers" in s.topics())
        assert seen.topics() == [f"classink/v1/{SITE}/gw-a/answers"]

        gateway_a.subscribe(f"classink/v1/{SITE}/gw-b/config", qos=1)
        gateway_a.subscribe(f"classink/v1/{SITE}/gw-a/config", qos=1)
        assert mine.wait_for(lambda s: len(s.subacks) == 2 and s.messages)
        # Mosquitto 2.0 may grant the subscription itself; its read ACL stops every message.
        assert mine.messages == [(f"classink/v1/{SITE}/gw-a/config", b"gw-a")]
        # A cannot write configuration either, not even its own.
        gateway_a.publish(f"classink/v1/{SITE}/gw-a/config", b"self-made", qos=1, retain=True)
        time.sleep(0.5)
        assert mine.messages == [(f"classink/v1/{SITE}/gw-a/config", b"gw-a")]
    finally:
        gateway_a.loop_stop()
        central.loop_stop()

    with pytest.raises(ConnectionRefusedError):
        secure_client(secure_broker, a.mqtt_username, "wrong-password")
    with pytest.raises(ConnectionRefusedError):
        secure_client(secure_broker, gateway_username(SITE, "gw-b"), a.mqtt_password)


def test_heartbeats_reach_central_over_tls_only_under_the_gateways_own_name(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    from central.fleet.monitor import FleetMonitor
    from gateway.health import Heartbeats, PenWatch
    from gateway.outbox import Outbox
    from gateway.uplink import Uplink

    fleet = secure_broker.fleet
    creds = fleet.claim(fleet.provision(SITE, "gw-a"))
    fleet.provision(SITE, "gw-b")
    connect_when_admitted(secure_broker, creds.username, creds.password).loop_stop()
    monitor = FleetMonitor(
        fleet,
        "127.0.0.1",
        secure_broker.broker.tls_port,
        client_id="fleet-test",
        username=secure_broker.central_username,
        password=secure_broker.central_password,
        tls_ca=secure_broker.ca_cert,
    ).start()
    outbox = Outbox(tmp_path / "o.db")
    uplink = Uplink(
        outbox,
        SITE,
        "gw-a",
        "127.0.0.1",
        secure_broker.broker.tls_port,
        "test",
        username=creds.username,
        password=creds.password,
        tls_ca=secure_broker.ca_cert,
    )

    def beats(gateway_id: str) -> Heartbeats:
        return Heartbeats(
            site_id=SITE,
            gateway_id=gateway_id,
            software_version="test",
            interval_s=1,
            outbox=outbox,
            pens=PenWatch(),
            answers=lambda: 0,
            config_version=lambda: None,
            config_rejected=lambda: None,
            publish=lambda payload: uplink.client.publish(
                f"classink/v1/{SITE}/{gateway_id}/heartbeat", payload, qos=1
            ),
        )

    def health() -> dict[str, str]:
        return {g.gateway_id: g.health for g in fleet.gateways()}

    try:
        assert monitor.subscribed.wait(10)
        uplink.start()
        deadline = time.monotonic() + 10
        while not uplink.stats.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        beats("gw-b").tick()  # A pretending to be B: the ACL drops it
        beats("gw-a").tick()
        deadline = time.monotonic() + 10
        while health()["gw-a"] != "online" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert health() == {"gw-a": "online", "gw-b": "unknown"}
    finally:
        uplink.stop(drain_s=0)
        monitor.stop()


def test_central_ingest_logs_in_over_tls_and_stores_a_claimed_gateways_answer(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    from conftest import Messages

    from central.ingest import Ingestor, MqttIngest
    from central.models import AnswerEvent

    fleet = secure_broker.fleet
    creds = fleet.claim(fleet.provision(SITE, "gw-a"))
    gateway = connect_when_admitted(secure_broker, creds.username, creds.password)
    settings = CentralSettings(
        database_url="sqlite://",
        mqtt_port=secure_broker.broker.tls_port,
        mqtt_username=secure_broker.central_username,
        mqtt_password=secure_broker.central_password,
        mqtt_tls_ca=secure_broker.ca_cert,
        client_id="central-tls-test",
    )
    ingest = MqttIngest(Ingestor(secure_broker.sessions), settings).start()
    try:
        assert ingest.wait_subscribed(10), "central could not log in to the secured broker"
        messages = Messages(SITE, "gw-a")
        event = messages.answer()
        gateway.publish(messages.topic(), messages.payload(event), qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 10
        stored = None
        while stored is None and time.monotonic() < deadline:
            with secure_broker.sessions() as session:
                stored = session.get(AnswerEvent, event["event_id"])
            time.sleep(0.05)
        assert stored is not None and stored.gateway_id == "gw-a"
    finally:
        ingest.stop()
        gateway.loop_stop()
