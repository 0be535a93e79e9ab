"""On the gateways' listener a client's id is its username: one gateway's login cannot take over
another gateway's client id (and with it that gateway's connection and persistent session)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from central.fleet.broker_auth import (
    BrokerUser,
    gateway_username,
    mosquitto_hash,
    write_broker_files,
)
from classink.mosquitto import Mosquitto

SITE = "site-1"
PASSWORD = {"gw-a": "password-of-a", "gw-b": "password-of-b"}
B_CLIENT_ID = f"classink-gw-{SITE}-gw-b"  # what gateway B's uplink calls itself


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    users = [
        BrokerUser(gateway_username(SITE, gw), mosquitto_hash(pw), SITE, gw)
        for gw, pw in PASSWORD.items()
    ]
    mosquitto = Mosquitto(
        password_file=tmp_path / "passwd", acl_file=tmp_path / "acl", gateway_listener=True
    )
    write_broker_files(users, mosquitto.password_file, mosquitto.acl_file)
    with mosquitto:
        yield mosquitto


class Login:
    """A connected client that records whether the broker dropped it."""

    def __init__(self, port: int, gateway: str, client_id: str) -> None:
        self.connected, self.dropped = threading.Event(), threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(gateway_username(SITE, gateway), PASSWORD[gateway])
        self.client.on_connect = lambda c, u, f, rc, p: rc.is_failure or self.connected.set()
        self.client.on_disconnect = lambda c, u, f, rc, p: self.dropped.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.connected.wait(10), f"{gateway} could not log in"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def takeover(port: int) -> bool:
    """Gateway A logs in with gateway B's client id while B is connected: is B dropped?"""
    b = Login(port, "gw-b", B_CLIENT_ID)
    a = Login(port, "gw-a", B_CLIENT_ID)
    try:
        return b.dropped.wait(2)
    finally:
        a.close()
        b.close()


def test_a_gateway_cannot_take_over_another_gateways_client_id(broker: Mosquitto) -> None:
    assert not takeover(broker.gateway_port)


def test_without_the_gateways_listener_it_could(broker: Mosquitto) -> None:
    # The same logins on the plain listener: the broker hands B's client id to A. This is what
    # use_username_as_clientid prevents, and shows the test above can fail.
    assert takeover(broker.port)
