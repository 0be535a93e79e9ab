"""Central's MQTT v5 subscriber: the sans-I/O core on hand-made bytes, then the client and
MqttIngest against the real Mosquitto fixture (shared subscription, no PUBACK before commit,
redelivery after a worker is killed between its commit and its acknowledgement)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from conftest import Messages, Publisher, Store
from sqlalchemy import func, select

from central.ingest import ANSWERS_SUBSCRIPTION, MqttIngest, OutcomeKind
from central.models import AnswerEvent
from central.mqtt_subscriber.client import BrokerAddress, MqttSubscriber
from central.mqtt_subscriber.protocol import (
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
    encode_pubacks,
    encode_subscribe,
)
from central.settings import CentralSettings
from classink.mosquitto import Mosquitto

REPO = Path(__file__).resolve().parents[1]


def connected_core() -> SubscriberProtocol:
    core = SubscriberProtocol()
    assert core.receive(b"\x20\x03\x01\x00\x00") == [Connected(session_present=True)]
    return core


def test_connect_packet_asks_for_a_persistent_session_with_a_login() -> None:
    packet = encode_connect(
        ConnectOptions("central-1", 30, 3600, 1000, username="central", password="pw")
    )
    assert packet[0] == 0x10 and packet[1] == len(packet) - 2
    body = packet[2:]
    assert body[:7] == b"\x00\x04MQTT\x05"
    assert body[7] == 0x80 | 0x40  # username and password; clean start off
    assert struct.unpack("!H", body[8:10]) == (30,)
    # Properties: session expiry (0x11) and receive maximum (0x21).
    assert body[10:19] == b"\x08\x11" + struct.pack("!I", 3600) + b"\x21" + struct.pack("!H", 1000)
    assert body[19:] == b"\x00\x09central-1\x00\x07central\x00\x02pw"


def test_subscribe_and_puback_packets() -> None:
    packet = encode_subscribe(1, [Subscription("$share/c/a/+", 1), Subscription("b", 1, 1)])
    assert packet == b"\x82\x16\x00\x01\x00\x00\x0c$share/c/a/+\x01\x00\x01b\x11"
    assert encode_pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"


def test_core_turns_bytes_into_events_across_reads() -> None:
    core = SubscriberProtocol()
    assert core.receive(b"\x20\x03\x00\x87\x00") == [Refused(0x87)]
    core = connected_core()
    publish = b"\x32\x0a\x00\x03a/b\x00\x05\x00" + b"hi"
    stream = b"\x90\x05\x00\x01\x00\x01\x87" + publish + b"\xd0\x00" + b"\xe0\x01\x8b"
    events = core.receive(stream[:9]) + core.receive(stream[9:])
    assert events == [
        Subscribed((0x01, 0x87)),
        Message("a/b", b"hi", 5, duplicate=False),
        Pong(),
        ServerDisconnected(0x8B),
    ]
    assert events[0].refused == (0x87,)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"\x30\x05\x00\x01a\x00x", "PUBLISH before CONNACK"),
        (b"\xd0\x00", "before CONNACK"),
        (b"\x20\x01\x00", "malformed CONNACK"),
        (b"\x32\xff\xff\xff\xff\x7f", "longer than four bytes"),
    ],
)
def test_core_refuses_what_a_broker_must_not_send_before_connack(
    stream: bytes, message: str
) -> None:
    with pytest.raises(ProtocolError, match=message):
        SubscriberProtocol().receive(stream)


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"\x34\x06\x00\x01a\x00\x01\x00", "QoS 2"),
        (b"\x20\x03\x00\x00\x00", "second CONNACK"),
        (b"\xb0\x02\x00\x01", "unexpected packet type 11"),
        (b"\x90\x03\x00\x01\x05", "malformed properties"),
    ],
)
def test_core_refuses_what_a_broker_must_not_send_after_connack(
    stream: bytes, message: str
) -> None:
    with pytest.raises(ProtocolError, match=message):
        connected_core().receive(stream)


def test_core_refuses_oversize_packets() -> None:
    core = SubscriberProtocol(max_packet=100)
    with pytest.raises(ProtocolError, match="larger than 100"):
        core.receive(b"\x30\x65")


# --- against Mosquitto ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mosquitto() -> Iterator[Mosquitto]:
    """A broker of this module's own (overriding the session's): these tests count exactly which
    messages come back, which a persistent `$share/central` session left on a shared broker by
    another test would take its share of."""
    with Mosquitto() as broker:
        yield broker


class Recorder:
    """A SubscriberHandler that keeps what it was told."""

    def __init__(self) -> None:
        self.subscribed = threading.Event()
        self.messages: list[tuple[int, Message]] = []
        self.arrived = threading.Condition()
        self.sessions: list[bool] = []

    def on_connected(self, session_present: bool) -> None:
        self.sessions.append(session_present)

    def on_subscribed(self, refused: Sequence[int]) -> None:
        if not refused:
            self.subscribed.set()

    def on_disconnected(self, reason: str) -> None:
        self.subscribed.clear()

    def on_messages(self, generation: int, messages: list[Message]) -> None:
        with self.arrived:
            self.messages += [(generation, message) for message in messages]
            self.arrived.notify_all()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[tuple[int, Message]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.messages) >= n, timeout), self.messages
            return list(self.messages)


@pytest.fixture
def client_id(mosquitto: Mosquitto) -> Iterator[str]:
    from conftest import mqtt_client

    name = f"subscriber-test-{uuid.uuid4().hex[:8]}"
    yield name
    client = mqtt_client(mosquitto, name)  # ends the persistent session
    client.disconnect()
    client.loop_stop()


def start_subscriber(mosquitto: Mosquitto, client_id: str, handler: Recorder) -> MqttSubscriber:
    subscriber = MqttSubscriber(
        BrokerAddress("127.0.0.1", mosquitto.port),
        ConnectOptions(client_id, keepalive_s=5, session_expiry_s=300, receive_maximum=100),
        [Subscription(ANSWERS_SUBSCRIPTION, qos=1)],
        handler,
    )
    subscriber.start()
    assert handler.subscribed.wait(10), "the subscriber did not subscribe"
    return subscriber


def test_unacknowledged_messages_come_back_on_the_next_connection_and_acked_ones_do_not(
    mosquitto: Mosquitto, publisher: Publisher, client_id: str
) -> None:
    messages = Messages(site_id="site-sub", gateway_id="gw-1")
    first = Recorder()
    subscriber = start_subscriber(mosquitto, client_id, first)
    payloads = [messages.payload(messages.answer()) for _ in range(3)]
    for payload in payloads:
        publisher.publish(messages.topic(), payload)
    received = first.wait_for(3)
    assert [m.payload for _, m in received] == payloads
    assert all(m.topic == messages.topic() and m.packet_id for _, m in received)
    generation = received[0][0]
    assert subscriber.ack(generation, [received[0][1].packet_id])
    time.sleep(0.3)  # the PUBACK reaches the broker before we leave
    subscriber.stop()
    assert not subscriber.ack(generation, [received[1][1].packet_id]), "stale acks are dropped"

    again = Recorder()
    subscriber = start_subscriber(mosquitto, client_id, again)
    try:
        redelivered = again.wait_for(2)
        time.sleep(0.3)
        assert [m.payload for _, m in again.messages] == payloads[1:]
        assert all(m.duplicate for _, m in redelivered)
        assert again.sessions == [True]
        subscriber.ack(redelivered[0][0], [m.packet_id for _, m in redelivered])
        time.sleep(0.3)
    finally:
        subscriber.stop()

    last = Recorder()
    subscriber = start_subscriber(mosquitto, client_id, last)
    time.sleep(0.5)
    subscriber.stop()
    assert last.messages == []


def test_the_subscriber_reconnects_after_the_broker_drops_it(
    mosquitto: Mosquitto, publisher: Publisher, client_id: str
) -> None:
    from conftest import mqtt_client

    handler = Recorder()
    subscriber = start_subscriber(mosquitto, client_id, handler)
    subscriber._min_delay = 0.1
    try:
        # Another connection with the same client id takes the session over: the broker drops us.
        thief = mqtt_client(mosquitto, client_id, clean=False)
        thief.disconnect()
        thief.loop_stop()
        deadline = time.monotonic() + 10
        while len(handler.sessions) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(handler.sessions) == 2, "no reconnection"
        assert handler.subscribed.wait(10)
        messages = Messages(site_id="site-sub", gateway_id="gw-2")
        publisher.publish(messages.topic(), b"after")
        assert handler.wait_for(1)[0][1].payload == b"after"
    finally:
        subscriber.stop()


KILLED_WORKER = """
import os, signal, sys
from central.db import make_engine, make_session_factory
from central.ingest import Ingestor, MqttIngest
from central.settings import CentralSettings

ingestor = Ingestor(make_session_factory(make_engine(sys.argv[1])))
# Observers run after the commit and before the PUBACKs: dying here is the worst moment.
ingestor.observers.append(lambda doc: os.kill(os.getpid(), signal.SIGKILL))
settings = CentralSettings(mqtt_host="127.0.0.1", mqtt_port=int(sys.argv[2]), client_id=sys.argv[3])
ingest = MqttIngest(ingestor, settings).start()
ingest.wait_subscribed(10)
print("subscribed", flush=True)
sys.stdin.read()
"""


def test_a_worker_killed_between_commit_and_ack_gets_its_batch_again_and_stores_it_once(
    sqlite_store: Store,
    publisher: Publisher,
    central_settings: CentralSettings,
    mosquitto: Mosquitto,
) -> None:
    messages = Messages(site_id="site-kill", gateway_id="gw-1")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED_WORKER,
            sqlite_store.url,
            str(mosquitto.port),
            central_settings.client_id,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "subscribed"
        events = [messages.answer(question_id=f"q{n}") for n in range(5)]
        for event in events:
            publisher.publish(messages.topic(), json.dumps(event).encode())
        assert worker.wait(20) == -9, "the worker was meant to die in its observer"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    with sqlite_store.sessions() as session:
        committed = session.scalar(select(func.count()).select_from(AnswerEvent))
    assert committed and committed >= 1, "the worker died before committing anything"

    ingest = MqttIngest(sqlite_store.ingestor, central_settings).start()
    try:
        wait_for(lambda: sqlite_store.ingestor.counts[OutcomeKind.STORED] + committed >= 5)
        time.sleep(0.3)
    finally:
        ingest.stop()
    counts = sqlite_store.ingestor.counts
    assert counts[OutcomeKind.DUPLICATE] >= 1, "the committed but unacked batch came back"
    with sqlite_store.sessions() as session:
        stored = list(session.scalars(select(AnswerEvent.event_id)))
    assert sorted(stored) == sorted(event["event_id"] for event in events)


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
