"""Issue 5's fault tests: a classroom on real processes (Mosquitto, central, gateway) through
gateway SIGKILLs, a broker outage, central SIGKILLs, a lossy link and a full outbox disk. Each ends
with central's export compared with the pens' ground truth: nothing lost, nothing duplicated.

Bounded: 8 coordinate pens sitting the 12-question sample exam (about 35 s of writing) per test.
`python -m bench.reliability` runs the same scenarios at full length (a 60 s broker outage).
"""

from __future__ import annotations

import pytest

from bench.live_classroom import LiveClassroom
from bench.reliability import (
    broker_outage,
    can_mount_tmpfs,
    central_kills,
    full_disk,
    gateway_kills,
    lossy_link,
    run_scenario,
    small_tmpfs,
)

pytestmark = pytest.mark.slow

PENS = 8


def room(tmp_path, **options) -> LiveClassroom:
    return LiveClassroom(tmp_path / "run", pens=PENS, seed=23, **options)


def assert_exactly_once(figures: dict) -> None:
    assert figures["written"] == PENS * 12
    assert (figures["lost"], figures["duplicated"], figures["unexpected"]) == (0, 0, 0), figures


def test_gateway_killed_twenty_times_at_random_moments(tmp_path):
    run = room(tmp_path)
    figures = run_scenario("kills", run, lambda r: gateway_kills(r, kills=20, seed=5))
    assert_exactly_once(figures)
    assert figures["gateway_starts"] == 21
    # The pens noticed and offered their last strokes again; the gateway used each once.
    assert figures["pens_reoffered_strokes"] > 0
    assert "replayed" in run.gateway_log()


def test_broker_stopped_mid_exam_then_started_again(tmp_path):
    run = room(tmp_path)
    figures = run_scenario("outage", run, lambda r: broker_outage(r, outage_s=10.0, after_s=8.0))
    assert_exactly_once(figures)
    assert "disconnected from broker" in run.gateway_log()


def test_central_consumer_killed_mid_stream(tmp_path):
    run = room(tmp_path)
    figures = run_scenario("central", run, lambda r: central_kills(r, kills=3, every_s=6.0))
    assert_exactly_once(figures)
    assert run.central_restarts == 3


def test_lossy_slow_link_between_gateway_and_broker(tmp_path):
    run = room(tmp_path)
    link = lossy_link(run, seed=3)
    try:
        figures = run_scenario("lossy", run, lambda r: {})
    finally:
        link.stop()
    assert_exactly_once(figures)
    # Cut again and again mid-exam, the gateway came back each time (the last cut is the stop).
    assert link.stats.cuts >= 3 and link.stats.connections >= link.stats.cuts


@pytest.mark.skipif(not can_mount_tmpfs(), reason="a real full disk needs root and mount -t tmpfs")
def test_outbox_disk_full_is_said_loudly_and_loses_nothing(tmp_path):
    with small_tmpfs(tmp_path / "outbox-fs", "6m") as fs:
        run = room(tmp_path, outbox_dir=fs)
        figures = run_scenario("disk", run, lambda r: full_disk(r, fs, after_s=8.0, hold_s=8.0))
    assert_exactly_once(figures)
    assert figures["gateway_said_so"], "the gateway did not log GATEWAY STORAGE FAILING"
