"""The gateway's Prometheus endpoint (`metrics_port`): outbox, uplink, pens and process figures,
read live at each scrape so that nothing has to be kept in step by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.health import PenWatch, cpu_seconds, rss_mb
from gateway.outbox import Outbox, Pressure
from gateway.uplink import UplinkStats


@dataclass(eq=False)  # registries keep collectors in a dict
class GatewayCollector(Collector):
    outbox: Outbox
    uplink: UplinkStats
    pens: PenWatch
    answers: Callable[[], int]
    config_version: Callable[[], int | None]

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "classink_outbox_depth", "events waiting for the broker", value=self.outbox.depth()
        )
        yield GaugeMetricFamily(
            "classink_outbox_bytes", "payload bytes waiting for the broker", value=self.outbox.bytes
        )
        if self.outbox.max_bytes:
            yield GaugeMetricFamily(
                "classink_outbox_max_bytes", "the outbox bound", value=self.outbox.max_bytes
            )
        pressure = GaugeMetricFamily(
            "classink_outbox_pressure",
            "1 for the outbox's current state: ok, high (telemetry refused), full (pens keep "
            "their offline memory)",
            labels=["state"],
        )
        for state in Pressure:
            pressure.add_metric([str(state)], 1.0 if self.outbox.pressure is state else 0.0)
        yield pressure
        yield GaugeMetricFamily(
            "classink_outbox_full",
            "1 while the outbox is at its bound (alert on this)",
            value=1.0 if self.outbox.pressure is Pressure.FULL else 0.0,
        )
        counts = self.outbox.counts
        yield CounterMetricFamily(
            "classink_outbox_refused_telemetry",
            "telemetry events refused because the outbox was nearly full",
            value=counts.refused_telemetry,
        )
        yield CounterMetricFamily(
            "classink_outbox_held_offline_batches",
            "offline batches left on pens because the outbox was full",
            value=counts.held_offline_batches,
        )
        up = self.uplink
        yield GaugeMetricFamily(
            "classink_uplink_connected", "1 while connected to the broker", value=up.connected
        )
        for name, value, text in (
            ("published", up.published, "events handed to the broker"),
            ("acknowledged", up.acknowledged, "events the broker acknowledged (PUBACK)"),
            ("removed", up.removed, "acknowledged events deleted from the outbox"),
            ("refused", up.refused, "events the broker refused"),
            ("connects", up.connects, "successful connections"),
            ("refused_connections", up.refused_connections, "connections the broker refused"),
        ):
            yield CounterMetricFamily(f"classink_uplink_{name}", text, value=value)
        yield GaugeMetricFamily(
            "classink_pens_connected", "pens connected now", value=len(self.pens.pens)
        )
        battery = GaugeMetricFamily(
            "classink_pen_battery_percent", "battery of each connected pen", labels=["pen_id"]
        )
        for pen in self.pens.pens.values():
            if pen.battery_percent is not None:
                battery.add_metric([pen.pen_id], pen.battery_percent)
        yield battery
        yield CounterMetricFamily("classink_dots", "pen dots received", value=self.pens.dots)
        yield CounterMetricFamily(
            "classink_answers", "answers recognised and stored", value=self.answers()
        )
        version = self.config_version()
        yield GaugeMetricFamily(
            "classink_config_version",
            "version of central's configuration in use; 0 for local files",
            value=version or 0,
        )
        yield CounterMetricFamily(
            "classink_process_cpu_seconds", "CPU time of the gateway process", value=cpu_seconds()
        )
        yield GaugeMetricFamily(
            "classink_process_rss_megabytes", "resident memory of the gateway", value=rss_mb()
        )


def serve_metrics(collector: GatewayCollector, host: str, port: int) -> WSGIServer:
    """Start `/metrics` on a background thread; the caller shuts the returned server down."""
    registry = CollectorRegistry()
    registry.register(collector)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
