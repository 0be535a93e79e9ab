"""The classroom gateway daemon: pens in, durable scored answers out to the broker."""

from __future__ import annotations

import logging
import threading
import time

from classink import __version__
from firmware_bridge.ble import BleThread
from firmware_bridge.serial import SerialHub
from gateway.fleet_agent import FleetAgent
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from gateway.scoring.recognizer import Recognizer
from gateway.settings import GatewaySettings
from gateway.stage_trace import StageTrace

log = logging.getLogger(__name__)

POLL_S = 0.05
# Each pen streams a frame every ~8 ms: read them in rounds of at least this long, so that a
# round's fixed work (a read and a decode per pen, idle answers, heartbeats, a journal commit) is
# paid ~14 times a second rather than at every frame. Adds at most this much latency.
ROUND_S = 0.07


def run(settings: GatewaySettings, stop: threading.Event) -> Pipeline:
    # Identity, synced configuration, outbox bound, heartbeats and metrics (gateway/fleet_agent.py).
    agent = FleetAgent(settings, __version__)
    templates = agent.templates()
    outbox = Outbox(settings.outbox_path, agent.outbox_max_bytes)
    uplink = agent.make_uplink(outbox)
    trace = StageTrace(settings.stage_trace) if settings.stage_trace is not None else None
    uplink.trace = trace
    registry = agent.registry()
    pipeline = Pipeline(
        site_id=settings.site_id,
        gateway_id=settings.gateway_id,
        templates=templates,
        roster=registry.roster(),
        outbox=outbox,
        recognizer=Recognizer.load(),
        review_below=settings.review_below,
        idle_s=settings.answer_idle_s,
        revisit_s=settings.answer_revisit_s,
        trace=trace,
    )
    hub = SerialHub(settings.serial_ports, f"classink {__version__}", agent.password_for)
    ble = BleThread(f"classink {__version__}", agent.password_for) if settings.ble else None
    log.info(
        "gateway %s/%s: %d pen ports, %d templates, outbox depth %d",
        settings.site_id,
        settings.gateway_id,
        len(hub.links),
        len(templates.templates),
        outbox.depth(),
    )
    # Answers that were open when the last run died come back before any pen is read.
    pipeline.replay_journal()
    uplink.start()
    agent.start(pipeline, uplink, outbox)
    if ble is not None:
        ble.start()
    try:
        while not stop.is_set():
            if uplink.failed:
                # Scoring on without sending would look healthy while nothing arrives: exit, so
                # that the service manager restarts the gateway from its outbox.
                raise RuntimeError("the uplink failed (logged above); restart the gateway")
            round_started = time.monotonic()
            # One round's reads from every pen go in together: their strokes share one journal
            # transaction and the answers they close one outbox transaction (at tick).
            reads = [
                (link.device, agent.admit(link.device, events, outbox))
                for link, events in hub.poll(POLL_S)
            ]
            for name, events in ble.take_events() if ble is not None else ():
                reads.append((name, agent.admit(name, events, outbox)))
            pipeline.on_round(reads)
            agent.tick(pipeline)
            pipeline.tick()
            # Only now, with their strokes in the outbox, may pens delete offline data.
            for name, batch_id in pipeline.take_durable_batches():
                if ble is not None and name.startswith("ble:"):
                    ble.batch_durable(name, batch_id)
                else:
                    hub.batch_durable(name, batch_id)
            stop.wait(ROUND_S - (time.monotonic() - round_started))
    finally:
        for link, events in hub.close():
            pipeline.on_pen_events(link.device, events)
        for name, events in ble.stop() if ble is not None else ():
            pipeline.on_pen_events(name, events)
        pipeline.flush()
        agent.stop()
        uplink.stop()
        log.info(
            "gateway stopped: %d strokes, %d answers (%d for review), %d published, "
            "%d acknowledged, %d removed from the outbox, "
            "outbox depth %d, rejects %s",
            pipeline.stats.strokes,
            pipeline.stats.answers,
            pipeline.stats.reviews,
            uplink.stats.published,
            uplink.stats.acknowledged,
            uplink.stats.removed,
            outbox.depth(),
            dict(pipeline.rejects.counts),
        )
        outbox.close()
        if trace is not None:
            trace.close()
    return pipeline
