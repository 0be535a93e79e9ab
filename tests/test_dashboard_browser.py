"""The dashboard pages in headless Chromium, signed in through the login page's cookie: fleet
health, exam results whose handwriting replays in writing order, the review queue (a correction
made through its form), and a class's item statistics chart."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import DevTools, devtools_page, dump_dom, login_url, needs_chromium, screenshot, serve
from conftest import Messages, Store
from PIL import Image
from school_data import School, school

pytestmark = needs_chromium


@pytest.fixture
def site(sqlite_store: Store, messages: Messages) -> Iterator[tuple[School, str]]:
    with school(sqlite_store, messages) as town:
        assert town.admin.post("/api/fleet/gateways/site-1/gw-1/provision").status_code == 200
        with serve(town.app) as base_url:
            yield town, base_url


def test_pages_in_chromium(site: tuple[School, str], tmp_path: Path) -> None:
    town, base = site
    admin = town.app.state.issue_token("admin", "head")
    fleet = dump_dom(login_url(base, admin, "/dashboard/fleet"), tmp_path / "p1")
    assert "gw-1" in fleet and "<h1>Fleet</h1>" in fleet

    exam = dump_dom(login_url(base, admin, "/dashboard/exams/exam-1"), tmp_path / "p2", 8000)
    svgs = re.findall(r'<svg class="replay"[^>]*data-drawn="(\d+)"', exam)
    assert len(svgs) == 9 * 4, "every answer's strokes were replayed by the script"
    assert all(int(n) == 4 for n in svgs)  # two strokes of two points each, point by point
    assert exam.count('class="stroke"') == 9 * 4 * 2

    marker = town.app.state.issue_token("marker", "m-1")
    queue = dump_dom(login_url(base, marker, "/dashboard/review"), tmp_path / "p3")
    assert "Review queue (1)" in queue and "low_confidence" in queue

    teacher = town.app.state.issue_token("teacher", "t1")
    chart = dump_dom(login_url(base, teacher, "/dashboard/classes/c1"), tmp_path / "p4")
    assert chart.count('class="p-value"') == 4 and 'class="discrimination"' in chart
    assert chart.count('class="replay"') == 6 * 4  # only the class's own students
    refused = dump_dom(login_url(base, teacher, "/dashboard/classes/c2"), tmp_path / "p5")
    assert "not one you teach" in refused

    for name, path, token in (
        ("exam", "/dashboard/exams/exam-1", admin),
        ("class", "/dashboard/classes/c1", teacher),
        ("review", "/dashboard/review", marker),
    ):
        shot = screenshot(login_url(base, token, path), tmp_path / f"s-{name}",
                          tmp_path / f"{name}.png")  # fmt: skip
        colours = Image.open(shot).convert("RGB").getcolors(1 << 20) or []
        assert len(colours) > 20, f"the {name} page screenshot looks blank"


def test_a_correction_through_the_review_form(site: tuple[School, str]) -> None:
    town, _ = site
    marker = town.client("marker", "m-1")
    event_id = town.events["s4"]["q4"]
    bad = marker.post(f"/dashboard/review/{event_id}", data={"action": "correct"})
    assert bad.status_code == 422
    done = marker.post(
        f"/dashboard/review/{event_id}",
        data={"action": "correct", "label": "1", "points_awarded": "1"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert "Nothing to review" in marker.get("/dashboard/review").text
    answer = marker.get(f"/api/review/{event_id}").json()
    assert answer["decisions"][0]["decided_by"] == "m-1"


def test_a_marker_corrects_an_answer_by_clicking(site: tuple[School, str], tmp_path: Path) -> None:
    websockets = pytest.importorskip("websockets.sync.client")
    town, base = site
    token = town.app.state.issue_token("marker", "m-9")
    browser, socket_url = devtools_page(
        tmp_path / "profile", login_url(base, token, "/dashboard/review")
    )
    try:
        with websockets.connect(socket_url, max_size=None) as connection:
            page = DevTools(connection)
            page.wait_for("document.querySelector('h1')?.textContent === 'Review queue (1)'")
            page.evaluate(
                "const f = document.querySelector('form[action*=\"/dashboard/review/\"]');"
                "f.label.value = '1'; f.points_awarded.value = '1';"
                "f.querySelector('button[value=correct]').click(); true"
            )
            page.wait_for("document.querySelector('h1')?.textContent === 'Review queue (0)'")
    finally:
        browser.terminate()
        browser.wait(timeout=10)
    decisions = town.admin.get(f"/api/review/{town.events['s4']['q4']}").json()["decisions"]
    assert [(d["action"], d["label"], d["decided_by"]) for d in decisions] == [
        ("correct", "1", "m-9")
    ]
