"""Starting the fleet with `classink central serve`: the Fleet on the app, its broker client."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from central.fleet.api import install
from central.fleet.monitor import FleetMonitor
from central.fleet.service import Fleet
from central.fleet.settings import FleetSettings
from central.settings import CentralSettings

log = logging.getLogger(__name__)


def start_fleet(app: FastAPI, central: CentralSettings) -> FleetMonitor | None:
    """Put the Fleet on the app and start its broker client; None when CLASSINK_FLEET_ENABLED
    is false (then identities still work over HTTP, but no heartbeat or configuration flows)."""
    settings = FleetSettings()
    fleet = Fleet(app.state.sessions, settings.broker_auth(), settings.low_battery_percent)
    if not settings.enabled:
        install(app, fleet)
        return None
    # Central's own login must be in the broker's password file before it connects.
    fleet.sync_broker_auth()
    monitor = FleetMonitor(
        fleet,
        settings.mqtt_host or central.mqtt_host,
        settings.mqtt_port or central.mqtt_port,
        client_id=settings.client_id,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
        tls_ca=settings.mqtt_tls_ca,
        sweep_s=settings.sweep_s,
    ).start()
    install(app, fleet, monitor)
    return monitor
