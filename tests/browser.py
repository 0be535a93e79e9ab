"""Headless Chromium for the page tests: serve a central app on a real port, sign in, load pages.

Signing in uses the login page's `#token=` link, which the page's own script submits, so a test
goes through the same cookie path as a person does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from fastapi import FastAPI

from classink.mosquitto import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]

# `make test` installs Chromium, so under CI a missing browser is a broken set-up, not a skip.
if os.environ.get("CI") == "true" and not Path(CHROMIUM).exists():
    raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs the chromium package")
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
)


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Runs `app` with uvicorn in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the app did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def login_url(base_url: str, token: str, path: str) -> str:
    """Opens `path` signed in: the login page sets the cookie, then goes on to `path`."""
    return f"{base_url}/login?next={quote(path, safe='/')}#token={quote(token, safe='')}"


def chromium(profile: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def dump_dom(url: str, profile: Path, budget_ms: int = 5000) -> str:
    """The DOM after the page's scripts ran for `budget_ms` of virtual time."""
    done = chromium(profile, f"--virtual-time-budget={budget_ms}", "--dump-dom", url)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(url: str, profile: Path, out: Path, size: str = "1100,1300") -> Path:
    done = chromium(
        profile, "--virtual-time-budget=5000", f"--screenshot={out}", f"--window-size={size}", url
    )
    assert done.returncode == 0 and out.exists(), done.stderr[-2000:]
    return out


def devtools_page(profile: Path, url: str) -> tuple[subprocess.Popen, str]:
    """Chromium on `url` with the DevTools protocol open; returns it and the page's socket URL."""
    browser = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text().strip():
        if time.monotonic() > deadline:
            browser.kill()
            raise AssertionError("Chromium did not open its DevTools port")
        time.sleep(0.1)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
        pages = [t for t in json.load(response) if t["type"] == "page"]
    return browser, pages[0]["webSocketDebuggerUrl"]


class DevTools:
    """Evaluates JavaScript in a page over the DevTools protocol (websockets' sync client)."""

    def __init__(self, connection: Any) -> None:
        self._cdp = connection
        self._ids = 0

    def evaluate(self, expression: str) -> object:
        self._ids += 1
        params = {"expression": expression, "returnByValue": True}
        self._cdp.send(
            json.dumps({"id": self._ids, "method": "Runtime.evaluate", "params": params})
        )
        while True:
            reply = json.loads(self._cdp.recv(timeout=10))
            if reply.get("id") == self._ids:
                return reply.get("result", {}).get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 20) -> object:
        """Polls `expression` until it is truthy (pages navigate in between)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except (TimeoutError, json.JSONDecodeError):
                value = None
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")
