"""The fleet's rules, without HTTP or MQTT: provisioning and claims, configuration versions, and
gateway health with its alerts. The API (api.py) and the broker client (monitor.py) call these."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from central.fleet.broker_auth import (
    BrokerUser,
    gateway_username,
    mosquitto_hash,
    new_password,
    write_broker_files,
)
from central.fleet.models import ConfigVersion, FleetAlert, FleetGateway
from classink.schemas import first_problem

log = logging.getLogger(__name__)

CLAIM_VALID_FOR = timedelta(days=14)
OFFLINE_AFTER_HEARTBEATS = 3  # missed heartbeats before a gateway counts as offline
LOW_BATTERY_PERCENT = 15


class FleetError(ValueError):
    """A request the fleet refuses; the message says why, for the person who made it."""


class ClaimRefused(FleetError):
    pass


@dataclass(frozen=True)
class Credentials:
    site_id: str
    gateway_id: str
    username: str
    password: str


@dataclass(frozen=True)
class BrokerAuthFiles:
    """Where the broker's password file and ACL live, central's own broker login, and how to
    make the broker re-read the files (SIGHUP to mosquitto)."""

    password_file: Path
    acl_file: Path
    central_username: str
    central_password: str
    reload: Callable[[], None]


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc3339(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Fleet:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        broker: BrokerAuthFiles | None = None,
        low_battery_percent: int = LOW_BATTERY_PERCENT,
    ) -> None:
        self._sessions = sessions
        self._broker = broker
        self.low_battery_percent = low_battery_percent

    # -- identity -------------------------------------------------------------------------------

    def provision(
        self, site_id: str, gateway_id: str, valid_for: timedelta = CLAIM_VALID_FOR
    ) -> str:
        """A new one-time claim token for the gateway (creating it if new). Only its hash is
        kept; a gateway provisioned again keeps its old credentials until the new claim."""
        token = secrets.token_urlsafe(32)
        with self._sessions.begin() as session:
            gateway = session.get(FleetGateway, (site_id, gateway_id))
            if gateway is None:
                gateway = FleetGateway(
                    site_id=site_id, gateway_id=gateway_id, health_reasons=[], health="unknown"
                )
                session.add(gateway)
            gateway.claim_token_sha256 = _sha256(token)
            gateway.claim_expires_at = _now() + valid_for
            gateway.claimed_at = None
        log.info("gateway %s/%s provisioned; claim token issued", site_id, gateway_id)
        return token

    def claim(self, token: str) -> Credentials:
        """Exchange a claim token for the gateway's broker credentials, once."""
        digest = _sha256(token)
        password = new_password()
        now = _now()
        with self._sessions.begin() as session:
            gateway = session.execute(
                select(FleetGateway).where(FleetGateway.claim_token_sha256 == digest)
            ).scalar_one_or_none()
            if gateway is None:
                raise ClaimRefused("unknown claim token")
            if gateway.claimed_at is not None:
                raise ClaimRefused("this claim token has been used already")
            if gateway.claim_expires_at is None or gateway.claim_expires_at < now:
                raise ClaimRefused("this claim token has expired; provision the gateway again")
            username = gateway_username(gateway.site_id, gateway.gateway_id)
            # Conditional update: of two concurrent claims with one token, only one wins.
            won = session.execute(
                update(FleetGateway)
                .where(
                    FleetGateway.site_id == gateway.site_id,
                    FleetGateway.gateway_id == gateway.gateway_id,
                    FleetGateway.claim_token_sha256 == digest,
                    FleetGateway.claimed_at.is_(None),
                )
                .values(
                    claimed_at=now,
                    mqtt_username=username,
                    mqtt_password_hash=mosquitto_hash(password),
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if won != 1:
                raise ClaimRefused("this claim token has been used already")
            credentials = Credentials(gateway.site_id, gateway.gateway_id, username, password)
        log.info("gateway %s/%s claimed its identity", credentials.site_id, credentials.gateway_id)
        self.sync_broker_auth()
        return credentials

    def sync_broker_auth(self) -> None:
        """Rewrite the broker's password file and ACL from the table, and make it re-read them."""
        if self._broker is None:
            return
        with self._sessions() as session:
            gateways = session.execute(
                select(FleetGateway).where(FleetGateway.mqtt_username.is_not(None))
            ).scalars()
            users = [
                BrokerUser(
                    self._broker.central_username, mosquitto_hash(self._broker.central_password)
                )
            ] + [
                BrokerUser(g.mqtt_username, g.mqtt_password_hash, g.site_id, g.gateway_id)
                for g in gateways
                if g.mqtt_username and g.mqtt_password_hash
            ]
        write_broker_files(users, self._broker.password_file, self._broker.acl_file)
        self._broker.reload()

    # -- configuration --------------------------------------------------------------------------

    def new_config(self, site_id: str, gateway_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Number and store the next configuration for a gateway; returns the document to publish
        (validated against config.v1.json, so central never publishes what gateways must refuse
        on its face)."""
        with self._sessions.begin() as session:
            gateway = session.execute(
                select(FleetGateway)
                .where(FleetGateway.site_id == site_id, FleetGateway.gateway_id == gateway_id)
                .with_for_update()
            ).scalar_one_or_none()
            if gateway is None:
                raise FleetError(f"gateway {site_id}/{gateway_id} is not provisioned")
            now = _now()
            version = gateway.config_version_published + 1
            document = {
                **body,
                "schema": "classink.config.v1",
                "site_id": site_id,
                "gateway_id": gateway_id,
                "version": version,
                "published_at": _rfc3339(now),
            }
            problem = first_problem("config.v1.json", document)
            if problem is not None:
                raise FleetError(f"not a valid configuration: {problem}")
            gateway.config_version_published = version
            session.add(
                ConfigVersion(
                    site_id=site_id,
                    gateway_id=gateway_id,
                    version=version,
                    document=document,
                    created_at=now,
                    published_at=None,
                )
            )
        return document

    def mark_published(self, site_id: str, gateway_id: str, version: int) -> None:
        with self._sessions.begin() as session:
            row = session.get(ConfigVersion, (site_id, gateway_id, version))
            if row is not None:
                row.published_at = _now()

    # -- health ---------------------------------------------------------------------------------

    def record_heartbeat(self, doc: dict[str, Any], received_at: datetime | None = None) -> None:
        """A schema-valid heartbeat: the gateway's state, its acknowledged configuration, alerts."""
        now = received_at or _now()
        site_id, gateway_id = doc["site_id"], doc["gateway_id"]
        reasons: list[str] = []
        alerts: dict[str, str] = {}
        outbox = doc["outbox"]
        if outbox["pressure"] == "full":
            alerts["outbox_full"] = (
                f"outbox full: {outbox['depth']} events, {outbox['bytes']} bytes waiting; "
                "pens keep their offline memory"
            )
        if outbox["pressure"] != "ok":
            reasons.append(f"outbox {outbox['pressure']}")
        for pen in doc["pens"]:
            battery = pen["battery_percent"]
            if battery is not None and battery < self.low_battery_percent:
                alerts[f"low_battery:{pen['pen_id']}"] = f"pen {pen['pen_id']} battery {battery}%"
                reasons.append(f"pen {pen['pen_id']} battery {battery}%")
        rejected = doc["config_rejected"]
        if rejected is not None:
            alerts["config_rejected"] = (
                f"configuration {rejected['version']} refused: {rejected['reason']}"
            )
            reasons.append("configuration refused")
        with self._sessions.begin() as session:
            gateway = self._gateway(session, site_id, gateway_id)
            gateway.last_heartbeat_at = now
            gateway.last_heartbeat = doc
            gateway.heartbeat_interval_s = float(doc["interval_s"])
            if doc["config_version"] is not None and (
                gateway.config_version_acked != doc["config_version"]
            ):
                gateway.config_version_acked = doc["config_version"]
                gateway.config_acked_at = now
            self._set_health(gateway, "degraded" if reasons else "online", reasons, now)
            # A heartbeat says what is true now: every open alert it no longer supports (being
            # offline included) is cleared.
            for alert in self._open_alerts(session, site_id, gateway_id):
                if alert.kind not in alerts:
                    alert.cleared_at = now
                    log.info("alert %s/%s %s cleared", site_id, gateway_id, alert.kind)
            for kind, message in alerts.items():
                self._raise(session, site_id, gateway_id, kind, message, now)

    def record_status(self, doc: dict[str, Any], received_at: datetime | None = None) -> None:
        """Birth and death messages (status.v1): a death makes the gateway offline at once."""
        now = received_at or _now()
        with self._sessions.begin() as session:
            gateway = session.get(FleetGateway, (doc["site_id"], doc["gateway_id"]))
            if gateway is None:
                return  # not a fleet gateway (a development one): nothing to track
            if doc["state"] == "offline":
                self._go_offline(session, gateway, f"gateway said: {doc['reason']}", now)

    def sweep(self, now: datetime | None = None) -> int:
        """Gateways whose heartbeats stopped are offline; returns how many went offline now."""
        now = now or _now()
        gone = 0
        with self._sessions.begin() as session:
            for gateway in session.execute(
                select(FleetGateway).where(FleetGateway.health.in_(("online", "degraded")))
            ).scalars():
                interval = gateway.heartbeat_interval_s or 30.0
                last = gateway.last_heartbeat_at
                if last is not None and now - last > timedelta(
                    seconds=OFFLINE_AFTER_HEARTBEATS * interval
                ):
                    self._go_offline(
                        session, gateway, f"no heartbeat since {_rfc3339(last)}", now, since=last
                    )
                    gone += 1
        return gone

    def gateways(self) -> list[FleetGateway]:
        with self._sessions() as session:
            return list(
                session.execute(
                    select(FleetGateway).order_by(FleetGateway.site_id, FleetGateway.gateway_id)
                ).scalars()
            )

    def alerts(self, open_only: bool = True) -> list[FleetAlert]:
        with self._sessions() as session:
            query = select(FleetAlert).order_by(FleetAlert.raised_at)
            if open_only:
                query = query.where(FleetAlert.cleared_at.is_(None))
            return list(session.execute(query).scalars())

    # -- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _gateway(session: Session, site_id: str, gateway_id: str) -> FleetGateway:
        gateway = session.get(FleetGateway, (site_id, gateway_id), with_for_update=True)
        if gateway is None:
            # Heard from before it was provisioned (a gateway on local credentials): track it.
            gateway = FleetGateway(
                site_id=site_id, gateway_id=gateway_id, health="unknown", health_reasons=[]
            )
            session.add(gateway)
        return gateway

    @staticmethod
    def _set_health(
        gateway: FleetGateway,
        health: str,
        reasons: list[str],
        now: datetime,
        since: datetime | None = None,
    ) -> None:
        if gateway.health != health:
            gateway.health = health
            gateway.health_since = since or now
            log.log(
                logging.WARNING if health != "online" else logging.INFO,
                "gateway %s/%s is %s%s",
                gateway.site_id,
                gateway.gateway_id,
                health,
                f": {', '.join(reasons)}" if reasons else "",
            )
        gateway.health_reasons = reasons

    def _go_offline(
        self,
        session: Session,
        gateway: FleetGateway,
        reason: str,
        now: datetime,
        since: datetime | None = None,
    ) -> None:
        self._set_health(gateway, "offline", [reason], now, since)
        self._raise(session, gateway.site_id, gateway.gateway_id, "offline", reason, now)

    @staticmethod
    def _open_alerts(session: Session, site_id: str, gateway_id: str) -> list[FleetAlert]:
        return list(
            session.execute(
                select(FleetAlert).where(
                    FleetAlert.site_id == site_id,
                    FleetAlert.gateway_id == gateway_id,
                    FleetAlert.cleared_at.is_(None),
                )
            ).scalars()
        )

    def _raise(
        self,
        session: Session,
        site_id: str,
        gateway_id: str,
        kind: str,
        message: str,
        now: datetime,
    ) -> None:
        if any(a.kind == kind for a in self._open_alerts(session, site_id, gateway_id)):
            return
        session.add(
            FleetAlert(
                site_id=site_id,
                gateway_id=gateway_id,
                kind=kind,
                message=message,
                raised_at=now,
                cleared_at=None,
            )
        )
        session.flush()
        log.error("ALERT %s/%s %s: %s", site_id, gateway_id, kind, message)
