"""Gateway health: heartbeats that keep to their schema, central's online/degraded/offline state
with alerts, and the Prometheus endpoint."""

from __future__ import annotations

import copy
import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import central.fleet.models  # noqa: F401  (registers the fleet tables)
from central.db import create_schema, make_engine, make_session_factory
from central.fleet.monitor import FleetMonitor
from central.fleet.service import Fleet
from classink.mosquitto import free_port
from classink.schemas import first_problem
from firmware_bridge.events import Battery, Dot, PenInfo, PenStatus
from firmware_bridge.session import LinkLost
from gateway.health import Heartbeats, PenWatch
from gateway.metrics import GatewayCollector, serve_metrics
from gateway.outbox import Outbox
from gateway.uplink import UplinkStats

SITE, GW = "site-1", "gw-1"
PEN_A = bytes.fromhex("9c7bef000001")
PEN_B = bytes.fromhex("9c7bef000002")


def pen_info(mac: bytes) -> PenInfo:
    return PenInfo("pen", "1.0", "2.0", "sub", 1, mac)


def status(battery: int) -> PenStatus:
    return PenStatus(False, 10, 0, 0, 20, 255, 10, True, True, True, False, battery, True, 0)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def heartbeats(outbox: Outbox, pens: PenWatch, clock: Clock, sent: list[dict]) -> Heartbeats:
    return Heartbeats(
        site_id=SITE,
        gateway_id=GW,
        software_version="0.1.0",
        interval_s=5,
        outbox=outbox,
        pens=pens,
        answers=lambda: 12,
        config_version=lambda: 3,
        config_rejected=lambda: None,
        publish=lambda payload: sent.append(json.loads(payload)),
        clock=clock,
    )


def test_heartbeats_carry_pens_batteries_rates_and_keep_to_the_schema(tmp_path: Path) -> None:
    pens = PenWatch()
    pens.observe("ttyACM0", [pen_info(PEN_A), status(80)])
    pens.observe("ttyACM1", [pen_info(PEN_B), Battery(9)])
    pens.observe("ttyACM2", [pen_info(bytes(6)), LinkLost(5.0)])
    clock, sent = Clock(), []
    beat = heartbeats(Outbox(tmp_path / "o.db", max_bytes=10_000), pens, clock, sent)
    assert beat.tick() and not beat.tick()  # the first at once, then every interval
    pens.observe("ttyACM0", [Dot(1, 2, 100, 0, 0, 0, 0)] * 50)
    clock.t += 5
    assert beat.tick()
    for doc in sent:
        assert first_problem("heartbeat.v1.json", doc) is None, doc
    last = sent[-1]
    assert last["pens"] == [
        {"pen_id": "9c:7b:ef:00:00:01", "battery_percent": 80},
        {"pen_id": "9c:7b:ef:00:00:02", "battery_percent": 9},
    ]
    assert last["rates"]["dots_per_s"] == 10.0
    assert last["config_version"] == 3 and last["outbox"]["pressure"] == "ok"
    beat.request_now()
    assert beat.tick()


@pytest.fixture
def fleet(database_url: str) -> Iterator[Fleet]:
    engine = make_engine(database_url)
    create_schema(engine)
    yield Fleet(make_session_factory(engine), low_battery_percent=15)
    engine.dispose()


def beat(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": "classink.heartbeat.v1",
        "site_id": SITE,
        "gateway_id": GW,
        "at": "2026-12-03T08:00:00.000Z",
        "interval_s": 10,
        "uptime_s": 60,
        "software_version": "0.1.0",
        "config_version": 2,
        "config_rejected": None,
        "pens": [{"pen_id": "9c:7b:ef:00:00:01", "battery_percent": 70}],
        "outbox": {"depth": 0, "bytes": 0, "max_bytes": 1000, "pressure": "ok"},
        "rates": {"dots_per_s": 0, "answers_per_s": 0},
        "cpu_percent": 1.5,
        "rss_mb": 80,
    }
    doc.update(copy.deepcopy(overrides))
    assert first_problem("heartbeat.v1.json", doc) is None
    return doc


def open_alerts(fleet: Fleet) -> set[str]:
    return {a.kind for a in fleet.alerts()}


def test_central_tracks_online_degraded_offline_with_alerts(fleet: Fleet) -> None:
    t0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    fleet.record_heartbeat(beat(), t0)
    [gw] = fleet.gateways()
    assert (gw.health, gw.config_version_acked, open_alerts(fleet)) == ("online", 2, set())

    full = {"depth": 900, "bytes": 1000, "max_bytes": 1000, "pressure": "full"}
    weak = [{"pen_id": "9c:7b:ef:00:00:01", "battery_percent": 8}]
    fleet.record_heartbeat(beat(outbox=full, pens=weak), t0 + timedelta(seconds=10))
    [gw] = fleet.gateways()
    assert gw.health == "degraded" and gw.health_since == t0 + timedelta(seconds=10)
    assert open_alerts(fleet) == {"outbox_full", "low_battery:9c:7b:ef:00:00:01"}
    fleet.record_heartbeat(beat(outbox=full, pens=weak), t0 + timedelta(seconds=20))
    assert len(fleet.alerts()) == 2  # an alert is raised once, not at every heartbeat

    fleet.record_heartbeat(beat(), t0 + timedelta(seconds=30))
    assert fleet.gateways()[0].health == "online" and open_alerts(fleet) == set()

    assert fleet.sweep(t0 + timedelta(seconds=55)) == 0  # within three intervals
    assert fleet.sweep(t0 + timedelta(seconds=61)) == 1
    [gw] = fleet.gateways()
    assert gw.health == "offline" and gw.health_since == t0 + timedelta(seconds=30)
    assert open_alerts(fleet) == {"offline"}
    fleet.record_heartbeat(beat(), t0 + timedelta(seconds=70))
    assert fleet.gateways()[0].health == "online" and open_alerts(fleet) == set()

    fleet.record_status(
        {"site_id": SITE, "gateway_id": GW, "state": "offline", "reason": "connection lost"},
        t0 + timedelta(seconds=75),
    )
    assert fleet.gateways()[0].health == "offline" and open_alerts(fleet) == {"offline"}
    assert len(fleet.alerts(open_only=False)) == 4


def test_the_monitor_refuses_heartbeats_that_break_the_contract(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    create_schema(engine)
    monitor = FleetMonitor(
        Fleet(make_session_factory(engine)), "127.0.0.1", free_port(), client_id="t"
    )
    topic = f"classink/v1/{SITE}/{GW}/heartbeat"
    assert monitor.handle(topic, json.dumps(beat()).encode()) == "heartbeat"
    assert monitor.handle(topic, b"{not json") == "rejected"
    assert monitor.handle(topic, json.dumps({**beat(), "cpu_percent": -1}).encode()) == "rejected"
    assert monitor.handle(f"classink/v1/{SITE}/gw-2/heartbeat", json.dumps(beat()).encode()) == (
        "rejected"
    )
    assert monitor.counts == {"heartbeat": 1, "rejected": 3}
    engine.dispose()


def test_metrics_endpoint_shows_the_outbox_filling(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=500)
    pens = PenWatch()
    pens.observe("ttyACM0", [pen_info(PEN_A), status(55)])
    port = free_port()
    server = serve_metrics(
        GatewayCollector(box, UplinkStats(), pens, lambda: 7, lambda: None), "127.0.0.1", port
    )

    def scrape() -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()

    try:
        text = scrape()
        assert "classink_outbox_full 0.0" in text
        assert 'classink_pen_battery_percent{pen_id="9c:7b:ef:00:00:01"} 55.0' in text
        assert "classink_answers_total 7.0" in text
        while box.fill_ratio() < 1:
            box.append("t", lambda seq, eid: {"seq": seq, "pad": "x" * 100})
        text = scrape()
        assert "classink_outbox_full 1.0" in text
        assert 'classink_outbox_pressure{state="full"} 1.0' in text
        assert f"classink_outbox_depth {box.depth()}.0" in text
    finally:
        server.shutdown()
        server.server_close()
