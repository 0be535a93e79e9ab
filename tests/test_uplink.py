"""Outbox and uplink against a real Mosquitto: rows leave the outbox only on the broker's PUBACK."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.reliability import can_mount_tmpfs, fill_disk, small_tmpfs
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


@contextlib.contextmanager
def sending(box: Outbox) -> Iterator[tuple[Subscriber, Uplink]]:
    """A broker, a subscriber on it, and an uplink started on `box`; all stopped afterwards."""
    with Mosquitto() as broker:
        sub = Subscriber(broker.port)
        up = make_uplink(box, broker.port)
        up.start()
        try:
            yield sub, up
        finally:
            up.stop()
            sub.close()


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
    box = Outbox(tmp_path / "o.db")
    ids = add_events(box, 200)
    with sending(box) as (sub, up):
        assert wait_until(lambda: box.depth() == 0)
        assert wait_until(lambda: set(sub.ids) >= set(ids))
        # Counted just after the rows are deleted, so a moment after depth() says 0.
        assert wait_until(lambda: up.stats.removed == 200)
        assert up.stats.acknowledged == 200
        assert any(s["state"] == "online" for s in sub.status)


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


# -- issue 5: the outbox bound, reconnect backoff, TLS and per-gateway logins -------------------


def test_the_outbox_bound_refuses_telemetry_then_holds_back_pen_memory_but_keeps_answers(
    tmp_path,
):
    from firmware_bridge.session import OfflineBatch
    from gateway.outbox import TELEMETRY, OutboxFull, Pressure

    box = Outbox(tmp_path / "o.db", max_bytes=1000)
    payload = {"pad": "x" * 80}  # about 100 bytes a row

    def add(kind="answer"):
        return box.append("t", lambda seq, eid: {"seq": seq, **payload}, kind=kind)

    add(kind=TELEMETRY)
    batch = OfflineBatch(1, 7, (1,), ())
    live = [object()]
    while box.pressure is Pressure.OK:
        add()
    assert box.fill_ratio() >= 0.8
    with pytest.raises(OutboxFull):
        add(kind=TELEMETRY)
    assert box.counts.refused_telemetry == 1
    assert box.hold_back_offline([batch, *live]) == [batch, *live]  # not full yet
    while box.pressure is not Pressure.FULL:
        add()
    stored = box.depth()
    for _ in range(5):
        add()  # answers are never refused, past the bound too
    assert box.depth() == stored + 5
    assert box.hold_back_offline([batch, *live]) == live
    assert box.counts.held_offline_batches == 1 and box.counts.times_full == 1
    size = box.bytes
    box.close()
    box = Outbox(tmp_path / "o.db", max_bytes=1000)  # the size is measured again on opening
    assert box.bytes == size and box.pressure is Pressure.FULL
    box.remove([r.seq for r in box.pending(0, 1000)])
    assert box.bytes == 0 and box.pressure is Pressure.OK
    add(kind=TELEMETRY)


def test_reconnect_backoff_grows_with_jitter_and_resets():
    import random

    from gateway.uplink import Backoff

    a, b = Backoff(1, 16, random.Random(1)), Backoff(1, 16, random.Random(2))
    first = [a.next() for _ in range(8)]
    for attempt, delay in enumerate(first):
        step = min(16, 2**attempt)
        assert step / 2 <= delay <= step
    assert first != [b.next() for _ in range(8)], "two gateways must not retry in lockstep"
    a.reset()
    assert a.next() <= 1


def test_uplink_over_tls_with_its_own_login_and_refused_without(tmp_path, secure_broker):
    from conftest import secure_client

    from gateway.identity import Credentials

    token = secure_broker.fleet.provision(SITE, GW)
    creds: Credentials = Credentials(**_as_identity(secure_broker.fleet.claim(token)))
    central = None
    deadline = time.monotonic() + 10
    while central is None:
        try:
            central = secure_client(
                secure_broker, secure_broker.central_username, secure_broker.central_password
            )
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    got: list[str] = []
    central.on_message = lambda c, u, m: got.append(json.loads(m.payload).get("event_id"))
    central.subscribe(topic(SITE, GW, "answers"), qos=1)

    wrong = Outbox(tmp_path / "wrong.db")
    add_events(wrong, 3)
    refused = Uplink(
        wrong,
        SITE,
        GW,
        "127.0.0.1",
        secure_broker.broker.tls_port,
        "test",
        username=creds.mqtt_username,
        password="not-the-password",
        tls_ca=secure_broker.ca_cert,
    )
    refused.start()
    from classink.pki import make_broker_pki

    untrusting = Uplink(
        Outbox(tmp_path / "other.db"),
        SITE,
        GW,
        "127.0.0.1",
        secure_broker.broker.tls_port,
        "test",
        username=creds.mqtt_username,
        password=creds.mqtt_password,
        tls_ca=make_broker_pki(tmp_path / "other-ca").ca_cert,  # not the CA that signed the broker
    )
    untrusting.start()
    box = Outbox(tmp_path / "o.db")
    ids = add_events(box, 50)
    up = Uplink(
        box,
        SITE,
        GW,
        "127.0.0.1",
        secure_broker.broker.tls_port,
        "test",
        username=creds.mqtt_username,
        password=creds.mqtt_password,
        tls_ca=secure_broker.ca_cert,
    )
    up.start()
    try:
        assert wait_until(lambda: box.depth() == 0 and set(got) >= set(ids))
        assert wait_until(lambda: refused.stats.refused_connections >= 1)
        assert wrong.depth() == 3 and refused.stats.acknowledged == 0
        assert untrusting.stats.connects == 0, "a broker the CA did not sign must be refused"
    finally:
        up.stop()
        refused.stop(drain_s=0)
        untrusting.stop(drain_s=0)
        central.loop_stop()


def _as_identity(credentials) -> dict:
    return {
        "site_id": credentials.site_id,
        "gateway_id": credentials.gateway_id,
        "mqtt_username": credentials.username,
        "mqtt_password": credentials.password,
    }


@pytest.mark.skipif(not can_mount_tmpfs(), reason="a real full disk needs root and mount -t tmpfs")
def test_a_full_disk_delays_removing_acknowledged_rows_but_not_sending(tmp_path):
    # On a full disk even a DELETE fails (it grows the WAL). That once ended the publisher thread,
    # and with it every later send: a fault test lost 84 of 96 answers.
    with small_tmpfs(tmp_path / "fs", "1m") as fs:
        box = Outbox(fs / "o.db")
        ids = add_events(box, 50)
        filler = fill_disk(fs)
        with sending(box) as (sub, up):
            assert wait_until(lambda: set(sub.ids) >= set(ids))
            assert wait_until(lambda: up.stats.remove_failures > 0)
            assert wait_until(lambda: up.stats.acknowledged == 50)
            assert box.depth() == 50, "nothing can be removed while the disk is full"
            assert up.stats.removed == 0
            filler.unlink()
            assert wait_until(lambda: box.depth() == 0)
            assert wait_until(lambda: up.stats.removed == 50)
            late = add_events(box, 10)  # the publisher thread is still alive and sending
            assert wait_until(lambda: set(sub.ids) >= set(late))


def test_acknowledged_rows_that_cannot_be_deleted_yet_are_deleted_later(tmp_path):
    # The same as the full-disk test above, without root: the outbox refuses the first deletes.
    class FullDisk(Outbox):
        refusals = 3

        def remove(self, seqs):
            if self.refusals:
                self.refusals -= 1
                raise sqlite3.OperationalError("database or disk is full")
            super().remove(seqs)

    box = FullDisk(tmp_path / "o.db")
    ids = add_events(box, 30)
    with sending(box) as (sub, up):
        assert wait_until(lambda: set(sub.ids) >= set(ids))
        assert wait_until(lambda: box.depth() == 0)
        assert up.stats.remove_failures == 3
        assert wait_until(lambda: up.stats.removed == 30)
        assert up.stats.acknowledged == 30
        late = add_events(box, 5)
        assert wait_until(lambda: set(sub.ids) >= set(late))


def test_an_unexpected_error_in_the_publisher_is_reported_not_silent(tmp_path):
    class BrokenOutbox(Outbox):
        def pending(self, after_seq, limit):
            raise RuntimeError("a bug")

    box = BrokenOutbox(tmp_path / "o.db")
    up = make_uplink(box, free_port())
    up.start()
    try:
        assert wait_until(lambda: up.failed, timeout=5)
    finally:
        up.stop(drain_s=0)
