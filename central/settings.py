"""Central service settings: CLASSINK_* environment variables, overridable per command."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_client_id() -> str:
    # The broker keeps our session (and the answers queued for it) under this id, so it must be the
    # same after a restart: derive it from the host rather than generating a random one.
    return f"classink-central-{socket.gethostname()}"


class CentralSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLASSINK_")

    database_url: str = "sqlite:///classink-central.db"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    # A broker with per-client logins (central/fleet writes Mosquitto's password file and ACL)
    # needs central's own; with a CA file the connection is TLS, verified against it.
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_tls_ca: Path | None = None
    # How long the broker keeps queueing answers for us while central is down.
    mqtt_session_expiry_s: int = 7 * 24 * 3600
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    client_id: str = Field(default_factory=_default_client_id)
