"""What the gateway daemon does for the fleet, in one place: its identity and TLS on the uplink,
configuration synced from central, the outbox bound's gate on pen data, heartbeats and /metrics.

The daemon calls `admit` with every batch of pen events before the pipeline sees them and `tick`
once per loop, both on its own thread, so the pipeline is only ever touched from that thread.
"""

from __future__ import annotations

import logging
from wsgiref.simple_server import WSGIServer

from firmware_bridge.events import Event
from firmware_bridge.registry import PenRegistry
from gateway.health import Heartbeats, PenWatch
from gateway.identity import load_credentials
from gateway.metrics import GatewayCollector, serve_metrics
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from gateway.settings import GatewaySettings
from gateway.sync import ConfigStore, ConfigSync, GatewayConfig
from gateway.templates import TemplateIndex
from gateway.uplink import Uplink

log = logging.getLogger(__name__)


class FleetAgent:
    def __init__(self, settings: GatewaySettings, software_version: str) -> None:
        self.settings = settings
        self.software_version = software_version
        self.pens = PenWatch()
        self._local_registry = PenRegistry.load(settings.roster)
        self.sync: ConfigSync | None = None
        self.config: GatewayConfig | None = None
        if settings.config_dir is not None:
            store = ConfigStore(settings.config_dir, settings.site_id, settings.gateway_id)
            self.sync = ConfigSync(store)
            self.config = self.sync.load()
            if self.config is not None:
                log.info("running configuration version %d from central", self.config.version)
        self.heartbeats: Heartbeats | None = None
        self._metrics: WSGIServer | None = None

    # -- what the daemon builds its parts from ------------------------------------------------

    @property
    def outbox_max_bytes(self) -> int:
        return int(self.settings.outbox_max_mb * 2**20)

    def templates(self) -> TemplateIndex:
        """The last good configuration from central if there is one, else the local files."""
        if self.config is not None:
            return self.config.templates
        return TemplateIndex.from_files(self.settings.templates, self.settings.booklets)

    def registry(self) -> PenRegistry:
        return self.config.registry if self.config is not None else self._local_registry

    def password_for(self, address: str) -> str | None:
        # Looked up at every pen connection, so a roster synced later applies to the next one.
        return self.registry().password_for(address)

    def make_uplink(self, outbox: Outbox) -> Uplink:
        s = self.settings
        username, password = s.mqtt_username, s.mqtt_password
        if s.mqtt_credentials is not None:
            credentials = load_credentials(s.mqtt_credentials, s.site_id, s.gateway_id)
            username, password = credentials.mqtt_username, credentials.mqtt_password
        return Uplink(
            outbox,
            s.site_id,
            s.gateway_id,
            s.mqtt_host,
            s.mqtt_port,
            self.software_version,
            username=username,
            password=password,
            tls_ca=s.mqtt_tls_ca,
            on_config=self.sync.receive if self.sync is not None else None,
        )

    # -- running --------------------------------------------------------------------------------

    def start(self, pipeline: Pipeline, uplink: Uplink, outbox: Outbox) -> None:
        s = self.settings
        self.heartbeats = Heartbeats(
            site_id=s.site_id,
            gateway_id=s.gateway_id,
            software_version=self.software_version,
            interval_s=s.heartbeat_s,
            outbox=outbox,
            pens=self.pens,
            answers=lambda: pipeline.stats.answers,
            config_version=self._config_version,
            config_rejected=lambda: self.sync.rejected if self.sync is not None else None,
            publish=lambda payload: uplink.publish_telemetry("heartbeat", payload),
        )
        if s.metrics_port:
            collector = GatewayCollector(
                outbox,
                uplink.stats,
                self.pens,
                lambda: pipeline.stats.answers,
                self._config_version,
            )
            self._metrics = serve_metrics(collector, s.metrics_host, s.metrics_port)
            log.info("metrics at http://%s:%d/metrics", s.metrics_host, s.metrics_port)

    def admit(self, link: str, events: list[Event], outbox: Outbox) -> list[Event]:
        self.pens.observe(link, events)
        return outbox.hold_back_offline(events)

    def tick(self, pipeline: Pipeline) -> None:
        if self.sync is not None:
            rejected_before = self.sync.rejected
            config = self.sync.take_new()
            if config is not None:
                self.config = config
                pipeline.reconfigure(config.templates, config.registry.roster())
            changed = config is not None or self.sync.rejected != rejected_before
            if changed and self.heartbeats is not None:
                self.heartbeats.request_now()  # central learns the outcome at once
        if self.heartbeats is not None:
            self.heartbeats.tick()

    def stop(self) -> None:
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()

    def _config_version(self) -> int | None:
        return self.config.version if self.config is not None else None
