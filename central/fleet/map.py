"""The fleet map page: sites with coordinates drawn as an SVG plot, coloured by the health of
their worst gateway with a dot per gateway; sites without coordinates as cards beside it, grouped
by region. Server-rendered, no script."""

from __future__ import annotations

import math
from html import escape
from itertools import groupby

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from central.fleet.sites import SiteView, fleet_sites
from central.school.dashboard import _page
from central.svg import _num

router = APIRouter(tags=["dashboard"])

WIDTH, HEIGHT, MARGIN = 760, 460, 60
COLOURS = {"online": "#2e9d4f", "degraded": "#e5a50a", "offline": "#c01c28", "unknown": "#9a9996"}
STYLE = (
    ".fleet-map{display:flex;gap:1.5rem;flex-wrap:wrap;align-items:flex-start}"
    ".cards{display:flex;flex-direction:column;gap:.5rem;min-width:16rem}"
    ".card{border:1px solid #ccc;border-radius:6px;padding:.4rem .6rem}"
    ".card h4{margin:.1rem 0}.card ul{margin:.2rem 0;padding-left:1.1rem}"
    ".legend span{margin-right:1em}"
)


def project(sites: list[SiteView]) -> dict[str, tuple[float, float]]:
    """Equirectangular, longitude scaled by the cosine of the middle latitude so that a district
    keeps its shape, fitted into the plot; north up."""
    placed = [
        (s.site_id, s.latitude, s.longitude)
        for s in sites
        if s.latitude is not None and s.longitude is not None
    ]
    if not placed:
        return {}
    lats = [lat for _, lat, _ in placed]
    lons = [lon for _, _, lon in placed]
    squeeze = math.cos(math.radians((min(lats) + max(lats)) / 2))
    span_x = (max(lons) - min(lons)) * squeeze
    span_y = max(lats) - min(lats)
    inner_w, inner_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    scale = min(inner_w / span_x if span_x else math.inf, inner_h / span_y if span_y else math.inf)
    if math.isinf(scale):  # every site at one point
        scale = 0.0
    off_x = MARGIN + (inner_w - span_x * scale) / 2
    off_y = MARGIN + (inner_h - span_y * scale) / 2
    out = {}
    for site_id, lat, lon in placed:
        out[site_id] = (
            off_x + (lon - min(lons)) * squeeze * scale,
            off_y + (max(lats) - lat) * scale,
        )
    return out


def _gateway_title(site: SiteView) -> str:
    return "; ".join(
        f"{g.gateway_id}: {g.health}"
        + (f" ({', '.join(g.health_reasons)})" if g.health_reasons else "")
        for g in site.gateways
    )


def map_svg(sites: list[SiteView]) -> str:
    points = project(sites)
    parts = [
        f"<svg class='fleet-plot' xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' "
        f"height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}' role='img' aria-label='fleet map'>",
        f"<rect width='{WIDTH}' height='{HEIGHT}' fill='#f6f8fa' stroke='#ccc'/>",
    ]
    for site in sites:
        if site.site_id not in points:
            continue
        x, y = points[site.site_id]
        label = site.name or site.site_id
        parts.append(
            f"<g class='site {escape(site.health)}' data-site='{escape(site.site_id)}' "
            f"data-health='{escape(site.health)}'>"
            f"<circle cx='{_num(x)}' cy='{_num(y)}' r='11' fill='{COLOURS[site.health]}' "
            f"stroke='#333'><title>{escape(label)}: {escape(_gateway_title(site))}</title></circle>"
            f"<text x='{_num(x)}' y='{_num(y - 16)}' text-anchor='middle' font-size='12'>"
            f"{escape(label)}</text>"
        )
        # One small dot per gateway under the site, so a single offline room is visible.
        for n, gateway in enumerate(site.gateways):
            gx = x - 6 * (len(site.gateways) - 1) + 12 * n
            parts.append(
                f"<circle class='gateway {escape(gateway.health)}' cx='{_num(gx)}' "
                f"cy='{_num(y + 20)}' r='4.5' fill='{COLOURS.get(gateway.health, '#9a9996')}'>"
                f"<title>{escape(gateway.gateway_id)}: {escape(gateway.health)}</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _card(site: SiteView) -> str:
    items = "".join(
        f"<li class='{escape(g.health)}'>{escape(g.gateway_id)}: {escape(g.health)}</li>"
        for g in site.gateways
    )
    title = escape(site.name or site.site_id)
    return (
        f"<div class='card {escape(site.health)}' data-site='{escape(site.site_id)}'>"
        f"<h4>{title}</h4><ul>{items or '<li>no gateways</li>'}</ul></div>"
    )


def unplaced_cards(sites: list[SiteView]) -> str:
    unplaced = [s for s in sites if s.latitude is None or s.longitude is None]
    if not unplaced:
        return ""
    unplaced.sort(key=lambda s: (s.region or "", s.site_id))
    groups = "".join(
        f"<h3>{escape(region or 'no region')}</h3>" + "".join(_card(s) for s in members)
        for region, members in groupby(unplaced, key=lambda s: s.region or "")
    )
    return f"<div class='cards' id='unplaced'><h2>Sites without coordinates</h2>{groups}</div>"


@router.get("/dashboard/fleet/map", response_class=HTMLResponse)
def fleet_map_page(request: Request) -> HTMLResponse:
    root = escape(request.scope.get("root_path", ""))
    with request.app.state.sessions() as session:
        sites = fleet_sites(session)
    placed = sum(1 for s in sites if s.latitude is not None and s.longitude is not None)
    legend = "".join(
        f"<span><svg width='12' height='12'><circle cx='6' cy='6' r='5' fill='{colour}'/></svg> "
        f"{health}</span>"
        for health, colour in COLOURS.items()
    )
    plot = map_svg(sites) if placed else "<p>No site has coordinates yet.</p>"
    body = (
        f"<style>{STYLE}</style>"
        f"<p><a href='{root}/dashboard/fleet' id='table-view'>table view</a> · "
        f"{len(sites)} sites, {placed} on the map. Place a site with "
        "<code>PUT /api/fleet/sites/{site_id}</code> (latitude, longitude, region).</p>"
        f"<p class='legend'>{legend}</p>"
        f"<div class='fleet-map'>{plot}{unplaced_cards(sites)}</div>"
    )
    return _page(request, "Fleet map", body)
