"""Fleet tables, on the same declarative base (and so the same schema) as the rest of central."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKeyConstraint, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base


class FleetGateway(Base):
    """One provisioned gateway: its identity, the configuration it runs, and its health."""

    __tablename__ = "fleet_gateways"

    site_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    # sha256 of the one-time claim token: a token is long and random, so a fast hash is enough,
    # and a copy of the database does not let anyone claim a gateway.
    claim_token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    claim_expires_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    mqtt_username: Mapped[str | None] = mapped_column(String(140), unique=True)
    # Mosquitto's own password hash ($7$, PBKDF2-SHA512): the broker's password file is written
    # from these, so central never keeps a gateway's password itself.
    mqtt_password_hash: Mapped[str | None] = mapped_column(Text)

    config_version_published: Mapped[int] = mapped_column(BigInteger, default=0)
    config_version_acked: Mapped[int | None] = mapped_column(BigInteger)
    config_acked_at: Mapped[datetime | None]

    # online | degraded | offline | unknown (never heard from), and since when.
    health: Mapped[str] = mapped_column(String(16), default="unknown")
    health_since: Mapped[datetime | None]
    health_reasons: Mapped[list[Any]]
    last_heartbeat_at: Mapped[datetime | None]
    heartbeat_interval_s: Mapped[float | None]
    last_heartbeat: Mapped[dict[str, Any] | None]


class ConfigVersion(Base):
    """Every configuration central published to a gateway, kept so that any can be looked at."""

    __tablename__ = "fleet_config_versions"

    site_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    document: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None]

    __table_args__ = (
        ForeignKeyConstraint(
            ["site_id", "gateway_id"], [FleetGateway.site_id, FleetGateway.gateway_id]
        ),
    )


class FleetAlert(Base):
    """A condition someone should look at: open while `cleared_at` is null."""

    __tablename__ = "fleet_alerts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    site_id: Mapped[str] = mapped_column(String(63))
    gateway_id: Mapped[str] = mapped_column(String(63))
    # offline | outbox_full | low_battery:<pen> | config_rejected
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]


class FleetSite(Base):
    """A school site: where its gateways are, for the fleet map. Every field is optional, and a
    site's gateways are shown whether or not it has a row here."""

    __tablename__ = "fleet_sites"

    site_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(200))
    # WGS 84 degrees; both or neither (the API refuses one without the other).
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
