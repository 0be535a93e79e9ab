"""The session replay page in headless Chromium: strokes appear in step with the audio.

The app really serves the page and a generated WAV file; Chromium runs the page's script. Two
ways of driving time: opening the page at an audio position (`?t=`), read back with --dump-dom,
and real playback observed over the DevTools protocol while the audio plays.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import devtools_page, dump_dom, login_url, needs_chromium, serve
from conftest import admin_headers
from fastapi.testclient import TestClient
from test_matching_api import _session, wav_bytes

from central.api import create_app
from central.db import create_schema, make_engine
from central.settings import CentralSettings

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The app's base URL and an admin token."""
    url = f"sqlite:///{tmp_path_factory.mktemp('replay') / 'central.db'}"
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    app = create_app(CentralSettings(database_url=url))
    headers = admin_headers(app)
    with TestClient(app, headers=headers) as client:
        assert client.post("/api/matching/sessions", json=_session()).status_code == 201
        put = client.put(
            "/api/matching/sessions/session-1/audio",
            content=wav_bytes(seconds=3.0),
            headers={"content-type": "audio/wav"},
        )
        assert put.status_code == 204
    with serve(app) as base_url:
        yield base_url, headers["Authorization"].removeprefix("Bearer ")


def _points(dom: str) -> list[int]:
    return [int(n) for n in re.findall(r'id="stroke-\d+"[^>]*data-points="(\d+)"', dom)]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    # Stroke 0 starts at 200 ms (points at 200, 300, 400 ms); stroke 1 at 1500 (1500, 1700 ms).
    [(0.25, [1, 0]), (1.0, [3, 0]), (1.6, [3, 1]), (2.5, [3, 2])],
)
def test_strokes_follow_the_audio_position(
    site: tuple[str, str], tmp_path: Path, seconds: float, expected: list[int]
) -> None:
    base_url, token = site
    page = f"/matching/sessions/session-1?t={seconds}"
    dom = dump_dom(login_url(base_url, token, page), tmp_path / "profile")
    assert f'data-session-ms="{round(seconds * 1000)}"' in dom
    assert _points(dom) == expected
    drawn = int(re.search(r'<output id="drawn">(\d+)</output>', dom).group(1))
    assert drawn == sum(n == full for n, full in zip(expected, [3, 2], strict=True))


def test_strokes_appear_while_the_audio_plays(site: tuple[str, str], tmp_path: Path) -> None:
    websockets = pytest.importorskip("websockets.sync.client")
    base_url, token = site
    browser, socket_url = devtools_page(
        tmp_path / "profile",
        login_url(base_url, token, "/matching/sessions/session-1?autoplay=1"),
    )
    expression = (
        "JSON.stringify([Number(document.body.dataset.sessionMs || 0),"
        " [...document.querySelectorAll('path.stroke')].map(p => Number(p.dataset.points || 0))])"
    )
    samples: list[tuple[int, list[int]]] = []
    asked = 0
    try:
        with websockets.connect(socket_url, max_size=None) as cdp:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                asked += 1
                params = {"expression": expression, "returnByValue": True}
                cdp.send(json.dumps({"id": asked, "method": "Runtime.evaluate", "params": params}))
                reply = json.loads(cdp.recv(timeout=10))
                value = reply.get("result", {}).get("result", {}).get("value")
                session_ms, points = json.loads(value) if value else (0, [])
                if len(points) == 2:  # the replay page has loaded (not about:blank)
                    samples.append((session_ms, points))
                    if points == [3, 2]:
                        break
                time.sleep(0.1)
    finally:
        browser.terminate()
        browser.wait(timeout=10)
    assert samples and samples[-1][1] == [3, 2], samples[-5:]
    # Drawing grew with the playback clock: some sample showed the first stroke alone.
    assert any(points[0] > 0 and points[1] == 0 for _, points in samples), samples
    clocks = [ms for ms, _ in samples]
    assert clocks == sorted(clocks) and clocks[-1] >= 1700
