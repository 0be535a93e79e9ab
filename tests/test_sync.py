"""Configuration synced down from central: checked, stored atomically, rolled back, reported, and
still in use after a restart without a broker."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import central.fleet.models  # noqa: F401  (registers the fleet tables)
from central.db import create_schema, make_engine, make_session_factory
from central.fleet.models import FleetGateway
from central.fleet.monitor import FleetMonitor
from central.fleet.service import Fleet, FleetError
from classink.mosquitto import Mosquitto, free_port
from gateway import daemon
from gateway.fleet_agent import FleetAgent
from gateway.scoring.recognizer import MODELS_DIR
from gateway.settings import GatewaySettings
from gateway.sync import ConfigError, ConfigStore, ConfigSync

SITE, GW = "site-1", "gw-1"
EXAMPLE = json.loads(
    (Path(__file__).parents[1] / "protocol_specs/examples/grade3-maths.exam.json").read_text()
)
FIRST_Q = EXAMPLE["pages"][0]["regions"][0]


def digit_sha() -> str:
    return hashlib.sha256((MODELS_DIR / "digit.npz").read_bytes()).hexdigest()


def body(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "templates": [copy.deepcopy(EXAMPLE)],
        "roster": {"pens": {"9c:7b:ef:00:00:01": "stu-001"}},
        "models": [{"field": "digit", "sha256": digit_sha()}],
    }
    doc.update(overrides)
    return doc


def document(version: int, gateway_id: str = GW, **overrides: Any) -> bytes:
    doc = {
        "schema": "classink.config.v1",
        "site_id": SITE,
        "gateway_id": gateway_id,
        "version": version,
        "published_at": "2026-12-03T08:00:00Z",
        **body(**overrides),
    }
    return json.dumps(doc).encode()


def overlapping_boxes() -> dict[str, Any]:
    template = copy.deepcopy(EXAMPLE)
    regions = template["pages"][0]["regions"]
    regions[1]["box_mm"] = list(regions[0]["box_mm"])
    return template


def test_versions_switch_atomically_and_keep_the_previous_one(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "config", SITE, GW)
    assert store.load() is None
    first = store.apply(document(1))
    assert first is not None and first.version == 1
    other_key = "9" if FIRST_Q["answer"] != "9" else "8"
    second = store.apply(
        document(2, answer_keys={EXAMPLE["template_id"]: {FIRST_Q["question_id"]: other_key}})
    )
    assert second is not None and store.current_version == 2
    assert os.readlink(tmp_path / "config/previous") == "versions/00000001.json"
    [template] = second.templates.templates
    assert template.pages[0].regions[0].answer == other_key  # the key correction applies
    assert second.registry.roster() == {"9c:7b:ef:00:00:01": "stu-001"}
    assert store.apply(document(2)) is None and store.apply(document(1)) is None  # not newer
    assert sorted(p.name for p in (tmp_path / "config/versions").iterdir()) == [
        "00000001.json",
        "00000002.json",
    ]


@pytest.mark.parametrize(
    ("overrides", "gateway_id", "problem"),
    [
        ({"templates": [overlapping_boxes()]}, GW, "templates or booklets"),
        ({"answer_keys": {EXAMPLE["template_id"]: {"no-such-q": "1"}}}, GW, "no question"),
        ({"models": [{"field": "digit", "sha256": "0" * 64}]}, GW, "not on this gateway"),
        ({"roster": {"pens": {"not-a-pen": "stu-1"}}}, GW, "roster"),
        ({"roster": {}}, GW, "schema"),
        ({}, "gw-2", "meant for"),
    ],
)
def test_a_bad_version_is_refused_and_the_running_one_kept(
    tmp_path: Path, overrides: dict, gateway_id: str, problem: str
) -> None:
    store = ConfigStore(tmp_path / "config", SITE, GW)
    store.apply(document(1))
    sync = ConfigSync(store)
    sync.load()
    sync.receive(document(2, gateway_id=gateway_id, **overrides))
    assert sync.take_new() is None
    assert sync.version == 1 and store.current_version == 1
    assert sync.rejected is not None and problem in sync.rejected[1]
    with pytest.raises(ConfigError):
        store.apply(document(2, gateway_id=gateway_id, **overrides))
    sync.receive(document(3))
    assert sync.take_new().version == 3 and sync.rejected is None


def test_a_damaged_current_version_rolls_back_to_the_previous(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "config", SITE, GW)
    store.apply(document(1))
    store.apply(document(2))
    (tmp_path / "config/versions/00000002.json").write_text('{"half a file')
    loaded = ConfigStore(tmp_path / "config", SITE, GW).load()
    assert loaded is not None and loaded.version == 1
    assert store.current_version == 1


def test_central_refuses_to_publish_what_breaks_the_schema(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    create_schema(engine)
    fleet = Fleet(make_session_factory(engine))
    with pytest.raises(FleetError, match="not provisioned"):
        fleet.new_config(SITE, GW, body())
    fleet.provision(SITE, GW)
    with pytest.raises(FleetError, match="schema|valid"):
        fleet.new_config(SITE, GW, body(roster={"pens": {"x": 5}}))
    assert fleet.new_config(SITE, GW, body())["version"] == 1
    assert fleet.new_config(SITE, GW, body())["version"] == 2
    engine.dispose()


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def private_broker() -> Iterator[Mosquitto]:
    """Its own broker: the retained statuses and configs it leaves must not reach other tests."""
    with Mosquitto() as broker:
        yield broker


def test_a_running_gateway_applies_reports_and_keeps_configuration(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    gw = "gw-live"
    mosquitto = private_broker
    engine = make_engine(f"sqlite:///{tmp_path / 'central.db'}")
    create_schema(engine)
    fleet = Fleet(make_session_factory(engine))
    fleet.provision(SITE, gw)
    monitor = FleetMonitor(
        fleet, "127.0.0.1", mosquitto.port, client_id=f"fleet-{gw}", sweep_s=0.5
    ).start()
    assert monitor.subscribed.wait(10)
    metrics_port = free_port()
    settings = GatewaySettings(
        site_id=SITE,
        gateway_id=gw,
        mqtt_port=mosquitto.port,
        outbox_path=tmp_path / "outbox.db",
        config_dir=tmp_path / "config",
        heartbeat_s=0.3,
        metrics_port=metrics_port,
    )
    stop = threading.Event()
    result: list[Any] = []
    runner = threading.Thread(target=lambda: result.append(daemon.run(settings, stop)))
    runner.start()

    def acked() -> int | None:
        with fleet._sessions() as session:
            row = session.get(FleetGateway, (SITE, gw))
            return row.config_version_acked if row else None

    try:
        assert wait_until(lambda: fleet.gateways()[0].health == "online")
        assert monitor.publish_config(fleet.new_config(SITE, gw, body()))
        assert wait_until(lambda: acked() == 1), "central records the version the gateway runs"
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read()
        assert b"classink_config_version 1.0" in scraped
        bad = body(templates=[overlapping_boxes()])
        assert monitor.publish_config(fleet.new_config(SITE, gw, bad))
        assert wait_until(lambda: any(a.kind == "config_rejected" for a in fleet.alerts()))
        assert acked() == 1 and fleet.gateways()[0].health == "degraded"
    finally:
        stop.set()
        runner.join(30)
        monitor.stop()
        engine.dispose()
    [pipeline] = result
    assert [t.template_id for t in pipeline.templates.templates] == [EXAMPLE["template_id"]]
    assert pipeline.roster == {"9c:7b:ef:00:00:01": "stu-001"}

    # Restarted with no broker at all: the last good version is what it scores with.
    offline = settings.model_copy(update={"mqtt_port": free_port(), "templates": []})
    agent = FleetAgent(offline, "test")
    assert agent.config is not None and agent.config.version == 1
    assert [t.template_id for t in agent.templates().templates] == [EXAMPLE["template_id"]]
