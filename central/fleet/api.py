"""Fleet HTTP endpoints: provisioning, the claim exchange, configuration, gateway health.

The claim endpoint is what a new gateway calls with its one-time token; the others are for the
people who run the fleet. The Fleet (and, when central runs its broker client, the FleetMonitor
that publishes configuration) are taken from the app's state, where `install` puts them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from central.fleet.models import FleetAlert, FleetGateway
from central.fleet.monitor import FleetMonitor
from central.fleet.service import ClaimRefused, Fleet, FleetError

ID = r"^[a-z0-9][a-z0-9-]{0,62}$"

router = APIRouter(prefix="/api/fleet", tags=["fleet"])


def install(app: FastAPI, fleet: Fleet, monitor: FleetMonitor | None = None) -> None:
    app.state.fleet = fleet
    app.state.fleet_monitor = monitor


def _fleet(request: Request) -> Fleet:
    fleet = getattr(request.app.state, "fleet", None)
    if fleet is None:
        # No broker files configured: identities and health still work, the broker is not told.
        fleet = Fleet(request.app.state.sessions)
        request.app.state.fleet = fleet
    return fleet


FleetDep = Annotated[Fleet, Depends(_fleet)]


class ClaimRequest(BaseModel):
    claim_token: str = Field(min_length=16, max_length=200)


class ClaimResponse(BaseModel):
    site_id: str
    gateway_id: str
    mqtt_username: str
    mqtt_password: str


class ProvisionResponse(BaseModel):
    site_id: str
    gateway_id: str
    claim_token: str


class GatewayView(BaseModel):
    site_id: str
    gateway_id: str
    claimed: bool
    health: str
    health_since: datetime | None
    health_reasons: list[str]
    last_heartbeat_at: datetime | None
    config_version_published: int
    config_version_acked: int | None
    config_acked_at: datetime | None
    last_heartbeat: dict[str, Any] | None

    @classmethod
    def of(cls, g: FleetGateway) -> GatewayView:
        return cls(
            site_id=g.site_id,
            gateway_id=g.gateway_id,
            claimed=g.mqtt_username is not None,
            health=g.health,
            health_since=g.health_since,
            health_reasons=list(g.health_reasons or []),
            last_heartbeat_at=g.last_heartbeat_at,
            config_version_published=g.config_version_published or 0,
            config_version_acked=g.config_version_acked,
            config_acked_at=g.config_acked_at,
            last_heartbeat=g.last_heartbeat,
        )


class AlertView(BaseModel):
    site_id: str
    gateway_id: str
    kind: str
    message: str
    raised_at: datetime
    cleared_at: datetime | None

    @classmethod
    def of(cls, a: FleetAlert) -> AlertView:
        return cls(
            site_id=a.site_id,
            gateway_id=a.gateway_id,
            kind=a.kind,
            message=a.message,
            raised_at=a.raised_at,
            cleared_at=a.cleared_at,
        )


class ConfigPublished(BaseModel):
    version: int
    published: bool


@router.post("/gateways/{site_id}/{gateway_id}/provision")
def provision(site_id: str, gateway_id: str, fleet: FleetDep) -> ProvisionResponse:
    for value in (site_id, gateway_id):
        if not is_id(value):
            raise HTTPException(422, f"{value!r} is not an id ({ID})")
    return ProvisionResponse(
        site_id=site_id, gateway_id=gateway_id, claim_token=fleet.provision(site_id, gateway_id)
    )


@router.post("/claim", responses={403: {"description": "unknown, used or expired token"}})
def claim(body: ClaimRequest, fleet: FleetDep) -> ClaimResponse:
    try:
        credentials = fleet.claim(body.claim_token)
    except ClaimRefused as refused:
        raise HTTPException(403, str(refused)) from refused
    return ClaimResponse(
        site_id=credentials.site_id,
        gateway_id=credentials.gateway_id,
        mqtt_username=credentials.username,
        mqtt_password=credentials.password,
    )


@router.get("/gateways")
def gateways(fleet: FleetDep) -> list[GatewayView]:
    return [GatewayView.of(g) for g in fleet.gateways()]


@router.get("/alerts")
def alerts(fleet: FleetDep, include_cleared: bool = False) -> list[AlertView]:
    return [AlertView.of(a) for a in fleet.alerts(open_only=not include_cleared)]


@router.put("/gateways/{site_id}/{gateway_id}/config")
def publish_config(
    site_id: str,
    gateway_id: str,
    request: Request,
    fleet: FleetDep,
    body: Annotated[dict[str, Any], Body()],
) -> ConfigPublished:
    """Store the next configuration version for the gateway and publish it (retained)."""
    monitor: FleetMonitor | None = getattr(request.app.state, "fleet_monitor", None)
    if monitor is None:
        raise HTTPException(503, "central runs no broker client: configuration cannot be sent")
    try:
        document = fleet.new_config(site_id, gateway_id, body)
    except FleetError as exc:
        raise HTTPException(422, str(exc)) from exc
    return ConfigPublished(version=document["version"], published=monitor.publish_config(document))


def is_id(value: str) -> bool:
    return re.fullmatch(ID, value) is not None
