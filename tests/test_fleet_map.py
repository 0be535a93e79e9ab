"""The fleet map: sites get optional coordinates and a region through the API (on SQLite and
PostgreSQL), the map page draws placed sites as an SVG plot coloured by their worst gateway's
health and lists the others beside it by region, and an admin reaches it by clicking through the
dashboard in headless Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import DevTools, devtools_page, login_url, needs_chromium, screenshot, serve
from conftest import Store, admin_headers
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from central.api import create_app
from central.fleet.map import COLOURS, HEIGHT, MARGIN, WIDTH, project
from central.fleet.service import Fleet
from central.fleet.sites import SiteView
from central.settings import CentralSettings

GATEWAYS = {
    "hill": ["room-1", "room-2"],  # room-2 goes offline: the site shows offline
    "river": ["room-1"],
    "lake": ["room-1"],  # no coordinates, degraded
}


def heartbeat(site: str, gateway: str, pressure: str = "ok") -> dict[str, Any]:
    return {
        "schema": "classink.heartbeat.v1", "site_id": site, "gateway_id": gateway,
        "at": "2026-12-03T08:00:00.000Z", "interval_s": 10, "uptime_s": 60,
        "software_version": "0.1.0", "config_version": None, "config_rejected": None,
        "pens": [], "outbox": {"depth": 0, "bytes": 0, "max_bytes": 1000, "pressure": pressure},
        "rates": {"dots_per_s": 0, "answers_per_s": 0}, "cpu_percent": 1.0, "rss_mb": 80,
    }  # fmt: skip


@pytest.fixture
def fleet_app(store: Store) -> Iterator[tuple[FastAPI, TestClient]]:
    app = create_app(CentralSettings(database_url=store.url), engine=store.engine)
    with TestClient(app, headers=admin_headers(app)) as admin:
        for site, gateways in GATEWAYS.items():
            for gateway in gateways:
                made = admin.post(f"/api/fleet/gateways/{site}/{gateway}/provision")
                assert made.status_code == 200, made.text
        fleet = Fleet(store.sessions)
        fleet.record_heartbeat(heartbeat("hill", "room-1"))
        fleet.record_heartbeat(heartbeat("hill", "room-2"))
        fleet.record_status(
            {"schema": "classink.status.v1", "site_id": "hill", "gateway_id": "room-2",
             "state": "offline", "reason": "power cut", "at": "2026-12-03T08:01:00.000Z",
             "software_version": "0.1.0"}
        )  # fmt: skip
        fleet.record_heartbeat(heartbeat("river", "room-1"))
        fleet.record_heartbeat(heartbeat("lake", "room-1", pressure="high"))
        places = {
            "hill": {
                "name": "Hill School",
                "region": "south",
                "latitude": 38.9,
                "longitude": 115.4,
            },
            "river": {"region": "south", "latitude": 38.2, "longitude": 116.1},
            "lake": {"name": "Lake School", "region": "north"},
            "meadow": {"region": "north"},  # a site with no gateway yet
        }
        for site, body in places.items():
            put = admin.put(f"/api/fleet/sites/{site}", json=body)
            assert put.status_code == 200, put.text
        yield app, admin


def test_sites_carry_coordinates_and_their_worst_health(
    fleet_app: tuple[FastAPI, TestClient],
) -> None:
    _, admin = fleet_app
    sites = {s["site_id"]: s for s in admin.get("/api/fleet/sites").json()}
    assert set(sites) == {"hill", "river", "lake", "meadow"}
    assert sites["hill"]["health"] == "offline"
    assert sites["hill"]["health_counts"] == {"online": 1, "offline": 1}
    assert (sites["hill"]["latitude"], sites["hill"]["longitude"]) == (38.9, 115.4)
    assert sites["river"]["health"] == "online"
    assert sites["lake"]["health"] == "degraded" and sites["lake"]["latitude"] is None
    assert sites["meadow"]["gateways"] == [] and sites["meadow"]["health"] == "unknown"


def test_bad_coordinates_are_refused(fleet_app: tuple[FastAPI, TestClient]) -> None:
    _, admin = fleet_app
    for body in ({"latitude": 10.0}, {"latitude": 95.0, "longitude": 0.0},
                 {"latitude": 1.0, "longitude": -181.0}):  # fmt: skip
        assert admin.put("/api/fleet/sites/hill", json=body).status_code == 422, body
    assert admin.put("/api/fleet/sites/Bad Site", json={}).status_code == 422
    assert admin.put("/api/fleet/sites/hill", json={"name": "a\x00b"}).status_code == 422
    # Clearing both is allowed: the site leaves the plot for the list.
    cleared = admin.put("/api/fleet/sites/river", json={"region": "south"})
    assert cleared.status_code == 200 and cleared.json()["latitude"] is None


def test_the_map_page_plots_placed_sites_and_lists_the_others(
    fleet_app: tuple[FastAPI, TestClient],
) -> None:
    _, admin = fleet_app
    page = admin.get("/dashboard/fleet/map")
    assert page.status_code == 200
    html = page.text
    plotted = dict(
        re.findall(r"<g class='site \w+' data-site='([\w-]+)' data-health='(\w+)'", html)
    )
    assert plotted == {"hill": "offline", "river": "online"}
    centres = {
        site: (float(x), float(y))
        for site, x, y in re.findall(
            r"data-site='([\w-]+)'[^>]*><circle cx='([\d.]+)' cy='([\d.]+)'", html
        )
    }
    # Hill is north-west of River: left of it and higher up on the plot.
    assert centres["hill"][0] < centres["river"][0] and centres["hill"][1] < centres["river"][1]
    assert html.count("class='gateway ") == 3
    unplaced = html[html.index("id='unplaced'") :]
    assert "Lake School" in unplaced and "meadow" in unplaced and "hill" not in unplaced
    assert unplaced.index("<h3>north</h3>") < unplaced.index("Lake School")


@needs_chromium
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_admin_clicks_from_the_dashboard_to_the_map(
    fleet_app: tuple[FastAPI, TestClient], tmp_path: Path
) -> None:
    websockets = pytest.importorskip("websockets.sync.client")
    app, _ = fleet_app
    token = app.state.issue_token("admin", "head")
    with serve(app) as base:
        browser, socket_url = devtools_page(
            tmp_path / "profile", login_url(base, token, "/dashboard")
        )
        try:
            with websockets.connect(socket_url, max_size=None) as connection:
                page = DevTools(connection)
                page.wait_for("document.querySelector('h1')?.textContent === 'classink dashboard'")
                page.evaluate(
                    "document.querySelector('nav a[href$=\"/dashboard/fleet\"]').click(); true"
                )
                page.wait_for("document.querySelector('h1')?.textContent === 'Fleet'")
                page.evaluate("document.getElementById('map-view').click(); true")
                page.wait_for("document.querySelector('h1')?.textContent === 'Fleet map'")
                fills = page.evaluate(
                    "JSON.stringify(Object.fromEntries([...document.querySelectorAll('g.site')]"
                    ".map(g => [g.dataset.site, g.querySelector('circle').getAttribute('fill')])))"
                )
                box = page.evaluate(
                    "JSON.stringify(document.querySelector('svg.fleet-plot').getBoundingClientRect())"
                )
                cards = page.evaluate(
                    "[...document.querySelectorAll('#unplaced .card')]"
                    ".map(c => c.dataset.site).join()"
                )
                page.evaluate("document.getElementById('table-view').click(); true")
                page.wait_for("document.querySelector('h1')?.textContent === 'Fleet'")
        finally:
            browser.terminate()
            browser.wait(timeout=10)
        shot = screenshot(login_url(base, token, "/dashboard/fleet/map"), tmp_path / "s",
                          tmp_path / "map.png")  # fmt: skip
    assert json.loads(fills) == {"hill": COLOURS["offline"], "river": COLOURS["online"]}
    assert json.loads(box)["width"] > 500, "the plot is laid out at its size"
    assert cards == "lake,meadow"
    # The health colours really are painted: the offline red and the online green.
    painted = {colour for _, colour in Image.open(shot).convert("RGB").getcolors(1 << 20) or []}
    for health in ("offline", "online"):
        rgb = tuple(int(COLOURS[health][i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in painted, health


def test_the_projection_keeps_north_up_and_centres_a_lone_site() -> None:
    def site(site_id: str, lat: float | None, lon: float | None) -> SiteView:
        return SiteView(
            site_id=site_id, name=None, region=None, latitude=lat, longitude=lon,
            health="unknown", health_counts={}, gateways=[],
        )  # fmt: skip

    assert project([site("a", 10.0, 20.0), site("b", None, None)]) == {"a": (WIDTH / 2, HEIGHT / 2)}
    spread = project([site("n", 40.0, 100.0), site("s", 30.0, 100.0), site("e", 35.0, 105.0)])
    assert spread["n"][1] < spread["e"][1] < spread["s"][1]
    assert spread["n"][0] == spread["s"][0] < spread["e"][0]
    assert all(MARGIN <= x <= WIDTH - MARGIN and MARGIN <= y <= HEIGHT - MARGIN
               for x, y in spread.values())  # fmt: skip
