"""The classroom gateway daemon: pens in, durable scored answers out to the broker."""

from __future__ import annotations

import logging
import threading

from classink import __version__
from firmware_bridge.ble import BleThread
from firmware_bridge.registry import PenRegistry
from firmware_bridge.serial import SerialHub
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from gateway.scoring.recognizer import Recognizer
from gateway.settings import GatewaySettings
from gateway.templates import TemplateIndex
from gateway.uplink import Uplink

log = logging.getLogger(__name__)

POLL_S = 0.05


def run(settings: GatewaySettings, stop: threading.Event) -> Pipeline:
    templates = TemplateIndex.from_files(settings.templates, settings.booklets)
    outbox = Outbox(settings.outbox_path)
    uplink = Uplink(
        outbox,
        settings.site_id,
        settings.gateway_id,
        settings.mqtt_host,
        settings.mqtt_port,
        __version__,
    )
    registry = PenRegistry.load(settings.roster)
    pipeline = Pipeline(
        site_id=settings.site_id,
        gateway_id=settings.gateway_id,
        templates=templates,
        roster=registry.roster(),
        outbox=outbox,
        recognizer=Recognizer.load(),
        review_below=settings.review_below,
        idle_s=settings.answer_idle_s,
    )
    hub = SerialHub(settings.serial_ports, f"classink {__version__}", registry.password_for)
    ble = BleThread(f"classink {__version__}", registry.password_for) if settings.ble else None
    log.info(
        "gateway %s/%s: %d pen ports, %d templates, outbox depth %d",
        settings.site_id,
        settings.gateway_id,
        len(hub.links),
        len(templates.templates),
        outbox.depth(),
    )
    uplink.start()
    if ble is not None:
        ble.start()
    try:
        while not stop.is_set():
            for link, events in hub.poll(POLL_S):
                pipeline.on_pen_events(link.device, events)
            for name, events in ble.take_events() if ble is not None else ():
                pipeline.on_pen_events(name, events)
            pipeline.tick()
            # Only now, with their strokes in the outbox, may pens delete offline data.
            for name, batch_id in pipeline.take_durable_batches():
                if ble is not None and name.startswith("ble:"):
                    ble.batch_durable(name, batch_id)
                else:
                    hub.batch_durable(name, batch_id)
    finally:
        for link, events in hub.close():
            pipeline.on_pen_events(link.device, events)
        for name, events in ble.stop() if ble is not None else ():
            pipeline.on_pen_events(name, events)
        pipeline.flush()
        uplink.stop()
        log.info(
            "gateway stopped: %d strokes, %d answers (%d for review), %d published, "
            "%d acknowledged, "
            "outbox depth %d, rejects %s",
            pipeline.stats.strokes,
            pipeline.stats.answers,
            pipeline.stats.reviews,
            uplink.stats.published,
            uplink.stats.acknowledged,
            outbox.depth(),
            dict(pipeline.rejects.counts),
        )
        outbox.close()
    return pipeline
