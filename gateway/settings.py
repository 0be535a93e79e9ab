"""Gateway configuration: a JSON file, overridden by CLASSINK_GATEWAY_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"  # mqtt.md: ids are topic levels


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLASSINK_GATEWAY_", extra="forbid")

    site_id: str = Field(pattern=ID_PATTERN, description="school or site id, a topic level")
    gateway_id: str = Field(pattern=ID_PATTERN, description="this gateway's id, a topic level")
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(1883, ge=1, le=65535)
    outbox_path: Path = Path("/var/lib/classink/outbox.db")
    # Uplink (gateway/uplink.py, gateway/outbox.py) and the rest of issue 5.
    outbox_max_mb: float = Field(
        256, gt=0, description="outbox bound; past it pens keep their offline memory (mqtt.md)"
    )
    mqtt_tls_ca: Path | None = Field(None, description="CA certificate: connect with TLS")
    mqtt_credentials: Path | None = Field(
        None, description="credentials file written by `classink gateway claim`"
    )
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    config_dir: Path | None = Field(
        None, description="where configuration synced from central is kept (gateway/sync.py)"
    )
    heartbeat_s: float = Field(30, gt=0, description="seconds between heartbeats")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port; 0: off")
    metrics_host: str = "127.0.0.1"
    templates: list[Path] = Field(default_factory=list, description="exam template JSON files")
    roster: Path | None = Field(None, description='JSON file {"pens": {pen_id: student_id}}')
    booklets: list[Path] = Field(
        default_factory=list, description="booklet manifests of `classink sheets print`"
    )
    serial_ports: list[str] = Field(default_factory=list, description="pen serial devices")
    ble: bool = Field(False, description="also find and connect pens over Bluetooth LE (bleak)")
    review_below: float = Field(
        0.6, ge=0, le=1, description="confidence under which a person reviews"
    )
    answer_idle_s: float = Field(
        2.5, gt=0, description="seconds without a stroke that end an answer"
    )
    answer_revisit_s: float = Field(
        3 * 3600.0,
        gt=0,
        description="for this long after an answer, more ink in its box is a correction carrying "
        "the earlier strokes; later it is a new attempt (revisions rise either way)",
    )
    stage_trace: Path | None = Field(
        None, description="write each answer's stage times here (gateway/stage_trace.py)"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        json_file = settings_cls.model_config.get("json_file")
        if json_file:
            sources += (JsonConfigSettingsSource(settings_cls, json_file=json_file),)
        return sources


def load_settings(path: Path | None) -> GatewaySettings:
    if path is None:
        return GatewaySettings()
    if not Path(path).is_file():
        raise FileNotFoundError(f"gateway config {path} does not exist")

    class FromFile(GatewaySettings):
        model_config = SettingsConfigDict(**{**GatewaySettings.model_config, "json_file": path})

    return FromFile()
