"""One classroom end to end with real processes: Mosquitto, central, gateway, 10 simulated pens.

Only the pen radio is simulated (pens speak pen-wire over pseudo-terminals); everything after the
serial port is the production code path in its own process.
"""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import create_engine, select

from central.models import DeadLetter
from classink.demo import GATEWAY_ID, SAMPLE_EXAM, SITE_ID, ClassroomRun, answer_key, stored_events
from hardware_sim.pen import PageAddress

PENS = 10


def publish_raw(port: int, topic: str, payload: bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("classroom")
    run = ClassroomRun(
        work,
        SAMPLE_EXAM,
        pens=PENS,
        seed=11,
        time_scale=4.0,
        noise=0.01,
        stray_page=PageAddress(3, 27, 9999, 1),
    )
    with run.running():
        topic = f"classink/v1/{SITE_ID}/{GATEWAY_ID}/answers"
        publish_raw(run.broker.port, topic, b"{this is not json")
        publish_raw(run.broker.port, topic, b'{"schema": "classink.answer.v1", "event_id": "x"}')
        tally = run.wait_stored()
        time.sleep(0.5)
    return run, tally


def test_every_written_answer_is_stored_exactly_once(finished_run):
    run, tally = finished_run
    assert tally.written == PENS * 12
    assert (tally.received, tally.lost, tally.duplicated, tally.unexpected) == (
        tally.written,
        0,
        0,
        0,
    )


def test_stored_rows_match_the_ground_truth_row_by_row(finished_run):
    run, _ = finished_run
    stored = {answer_key(s): s for s in stored_events(run.database_url, run.exam_id)}
    for truth in run.truth:
        row = stored[answer_key(truth)]
        assert row["pen_id"] == truth["pen_id"]
        assert row["page_address"] == truth["page_address"]
        assert row["kind"] == truth["kind"]
        assert row["revision"] == 1
        if row["status"] == "scored":
            assert row["correct"] == (row["label"] == truth["key"])
        else:
            assert row["status"] == "review" and row["correct"] is None


def test_recognition_on_unseen_writers_is_reported_honestly(finished_run):
    run, _ = finished_run
    stored = {answer_key(s): s for s in stored_events(run.database_url, run.exam_id)}
    agree = sum(stored[answer_key(t)]["label"] == t["intended"] for t in run.truth)
    # Far above chance (10 digits, 4 letters, 2 marks); accuracy itself is tested by the recogniser.
    assert agree / len(run.truth) > 0.6


def test_malformed_payloads_are_dead_lettered_with_a_reason(finished_run):
    run, _ = finished_run
    engine = create_engine(run.database_url)
    with engine.connect() as conn:
        reasons = [r.reason for r in conn.execute(select(DeadLetter))]
    engine.dispose()
    assert any(r == "invalid_json" for r in reasons)
    assert any(r.startswith("schema") for r in reasons)


def test_gateway_counted_line_noise_and_the_unknown_page(finished_run):
    run, _ = finished_run
    log = (run.work / "gateway.log").read_text()
    assert "unknown_page" in log and "3.27.9999.1" in log
    assert any(f"rejected ({reason}" in log for reason in ("garbage", "bad_length", "bad_escape"))
    assert "Traceback" not in log
    assert "Traceback" not in (run.work / "central.log").read_text()
