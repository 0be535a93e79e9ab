"""Fleet settings: CLASSINK_FLEET_* environment variables."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from central.fleet.service import LOW_BATTERY_PERCENT, BrokerAuthFiles


def _default_client_id() -> str:
    return f"classink-fleet-{socket.gethostname()}-{os.getpid()}"


class FleetSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLASSINK_FLEET_")

    enabled: bool = Field(True, description="run the fleet monitor (heartbeats, config) at all")
    # Unset: the same broker as central's ingest (CLASSINK_MQTT_HOST/PORT or --mqtt-host/port).
    mqtt_host: str | None = None
    mqtt_port: int | None = Field(None, ge=1, le=65535)
    mqtt_tls_ca: Path | None = None
    # Central's own broker login; with the files below it is written into the password file.
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    client_id: str = Field(default_factory=_default_client_id)
    # Mosquitto's password file and ACL, which central rewrites when a gateway claims its
    # identity, then signals the broker (whose pid is in the pid file) to re-read them.
    mosquitto_password_file: Path | None = None
    mosquitto_acl_file: Path | None = None
    mosquitto_pid_file: Path | None = None
    sweep_s: float = Field(10, gt=0, description="how often stopped heartbeats are looked for")
    low_battery_percent: int = Field(LOW_BATTERY_PERCENT, ge=0, le=100)

    def broker_auth(self) -> BrokerAuthFiles | None:
        if self.mosquitto_password_file is None or self.mosquitto_acl_file is None:
            return None
        if not (self.mqtt_username and self.mqtt_password):
            raise ValueError(
                "CLASSINK_FLEET_MQTT_USERNAME and _PASSWORD are needed to write the broker's "
                "password file: central must be able to log in itself"
            )
        pid_file = self.mosquitto_pid_file

        def reload() -> None:
            if pid_file is None:
                return
            os.kill(int(pid_file.read_text().strip()), signal.SIGHUP)

        return BrokerAuthFiles(
            self.mosquitto_password_file,
            self.mosquitto_acl_file,
            self.mqtt_username,
            self.mqtt_password,
            reload,
        )
