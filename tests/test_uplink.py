"""Outbox and uplink against a real Mosquitto: rows leave the outbox only on the broker's PUBACK."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from classink.mosquitto import Mosquitto, free_port
from gateway.outbox import Outbox
from gateway.uplink import Uplink, topic

SITE, GW = "test-site", "gw-1"


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class Subscriber:
    """A central-like consumer with a persistent session, collecting event ids."""

    def __init__(self, port: int) -> None:
        self.ids: list[str] = []
        self.status: list[dict] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub", protocol=mqtt.MQTTv5
        )
        self.client.on_connect = lambda c, *a: c.subscribe(
            [(topic(SITE, GW, "answers"), 1), (topic(SITE, GW, "status"), 1)]
        )
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        body = json.loads(msg.payload)
        with self._lock:
            if msg.topic.endswith("/status"):
                self.status.append(body)
            else:
                self.ids.append(body["event_id"])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def add_events(outbox: Outbox, n: int) -> list[str]:
    return [
        outbox.append(
            topic(SITE, GW, "answers"), lambda seq, eid: {"event_id": eid, "seq": seq}
        ).event_id
        for _ in range(n)
    ]


def make_uplink(outbox: Outbox, port: int) -> Uplink:
    return Uplink(outbox, SITE, GW, "127.0.0.1", port, "test")


def test_outbox_sequence_survives_reopening(tmp_path):
    box = Outbox(tmp_path / "o.db")
    first = add_events(box, 3)
    box.remove([1, 2])
    box.close()
    box = Outbox(tmp_path / "o.db")
    [row] = box.pending(0, 10)
    assert row.event_id == first[2] and row.seq == 3
    assert box.append("t", lambda seq, eid: {"seq": seq}).seq == 4  # never reused after deletes


def test_every_row_is_delivered_and_removed_only_after_ack(tmp_path):
    with Mosquitto() as broker:
        sub = Subscriber(broker.port)
        box = Outbox(tmp_path / "o.db")
        ids = add_events(box, 200)
        up = make_uplink(box, broker.port)
        up.start()
        try:
            assert wait_until(lambda: box.depth() == 0)
            assert wait_until(lambda: set(sub.ids) >= set(ids))
            assert up.stats.acknowledged == 200
            assert any(s["state"] == "online" for s in sub.status)
        finally:
            up.stop()
            sub.close()


def test_nothing_leaves_while_the_broker_is_down_and_all_arrives_after(tmp_path):
    port = free_port()
    work = tmp_path / "broker"
    work.mkdir()
    broker = Mosquitto(port=port, workdir=work).start()
    sub = Subscriber(port)
    box = Outbox(tmp_path / "o.db")
    up = make_uplink(box, port)
    up.start()
    try:
        first = add_events(box, 20)
        assert wait_until(lambda: box.depth() == 0)
        broker.stop()
        assert wait_until(lambda: not up.stats.connected)
        later = add_events(box, 30)
        time.sleep(1.0)
        assert box.depth() == 30, "rows must stay in the outbox while no broker acknowledges them"
        broker = Mosquitto(port=port, workdir=work).start()
        assert wait_until(lambda: box.depth() == 0, timeout=60)
        assert wait_until(lambda: set(sub.ids) >= set(first + later), timeout=30)
    finally:
        up.stop(drain_s=0)
        sub.close()
        broker.stop()


def test_a_restarted_gateway_sends_what_it_had_not_delivered(tmp_path):
    port = free_port()
    box = Outbox(tmp_path / "o.db")
    up = make_uplink(box, port)  # nobody listens on this port yet
    up.start()
    ids = add_events(box, 10)
    time.sleep(0.5)
    up.stop(drain_s=0)
    box.close()
    assert Outbox(tmp_path / "o.db").depth() == 10
    with Mosquitto(port=port) as broker:
        sub = Subscriber(broker.port)
        box = Outbox(tmp_path / "o.db")
        up = make_uplink(box, broker.port)
        up.start()
        try:
            assert wait_until(lambda: box.depth() == 0)
            assert wait_until(lambda: set(sub.ids) >= set(ids))
        finally:
            up.stop()
            sub.close()


@pytest.mark.parametrize("kind", ["answers", "status"])
def test_topics_follow_the_contract(kind):
    assert topic("s1", "g1", kind) == f"classink/v1/s1/g1/{kind}"
