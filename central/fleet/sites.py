"""School sites of the fleet: where they are (optional coordinates) and how their gateways are.

A site exists as soon as one of its gateways is provisioned; a `fleet_sites` row only adds a
name, a region and coordinates, which the fleet map (central/fleet/map.py) draws from.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Self

from fastapi import APIRouter, Body, HTTPException, Request
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.fleet.api import ID, is_id
from central.fleet.models import FleetGateway, FleetSite

router = APIRouter(prefix="/api/fleet", tags=["fleet"])

# Worst first: a site shows the health of its worst gateway.
HEALTH_ORDER = ("offline", "degraded", "unknown", "online")


# Printable text only: PostgreSQL refuses NUL in text, and control characters help nobody.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


class SiteIn(BaseModel):
    name: str | None = Field(default=None, max_length=200, pattern=PRINTABLE)
    region: str | None = Field(default=None, max_length=200, pattern=PRINTABLE)
    latitude: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    longitude: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give latitude and longitude together, or neither")
        return self


class GatewayHealth(BaseModel):
    gateway_id: str
    health: str
    health_reasons: list[str]


class SiteView(BaseModel):
    site_id: str
    name: str | None
    region: str | None
    latitude: float | None
    longitude: float | None
    health: str  # of its worst gateway; "unknown" for a site without gateways
    health_counts: dict[str, int]
    gateways: list[GatewayHealth]


def worst_health(healths: list[str]) -> str:
    for health in HEALTH_ORDER:
        if health in healths:
            return health
    return "unknown"


def fleet_sites(session: Session) -> list[SiteView]:
    """Every site with a row or a gateway, in site id order."""
    rows = {site.site_id: site for site in session.scalars(select(FleetSite))}
    gateways: dict[str, list[FleetGateway]] = {}
    for gateway in session.scalars(
        select(FleetGateway).order_by(FleetGateway.site_id, FleetGateway.gateway_id)
    ):
        gateways.setdefault(gateway.site_id, []).append(gateway)
    views = []
    for site_id in sorted(set(rows) | set(gateways)):
        row = rows.get(site_id)
        mine = gateways.get(site_id, [])
        healths = [g.health for g in mine]
        views.append(
            SiteView(
                site_id=site_id,
                name=row.name if row else None,
                region=row.region if row else None,
                latitude=row.latitude if row else None,
                longitude=row.longitude if row else None,
                health=worst_health(healths),
                health_counts=dict(Counter(healths)),
                gateways=[
                    GatewayHealth(
                        gateway_id=g.gateway_id,
                        health=g.health,
                        health_reasons=list(g.health_reasons or []),
                    )
                    for g in mine
                ],
            )
        )
    return views


@router.get("/sites")
def list_sites(request: Request) -> list[SiteView]:
    with request.app.state.sessions() as session:
        return fleet_sites(session)


@router.put("/sites/{site_id}", responses={422: {}})
def put_site(request: Request, site_id: str, body: Annotated[SiteIn, Body()]) -> SiteView:
    """Names and places a site; coordinates are WGS 84 degrees, both or neither."""
    if not is_id(site_id):
        raise HTTPException(422, f"{site_id!r} is not an id ({ID})")
    with request.app.state.sessions.begin() as session:
        session.merge(FleetSite(site_id=site_id, **body.model_dump()))
    with request.app.state.sessions() as session:
        return next(site for site in fleet_sites(session) if site.site_id == site_id)
