"""Gateway health: what the pens, the outbox and the process are doing, as a heartbeat.

The daemon shows `PenWatch` every batch of pen events before the pipeline gets them, and calls
`Heartbeats.tick` from its loop; every `interval_s` (or at once after a configuration change) a
`classink.heartbeat.v1` message goes to `classink/v1/{site}/{gateway}/heartbeat`
(protocol_specs/schemas/heartbeat.v1.json). The same figures feed the Prometheus endpoint
(gateway/metrics.py).
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from firmware_bridge.events import Battery, Dot, Event, LatticeFrame, PenInfo, PenStatus, PowerOff
from firmware_bridge.session import LinkLost
from gateway.outbox import Outbox
from gateway.uplink import now_rfc3339

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass
class PenState:
    pen_id: str
    battery_percent: int | None = None


@dataclass
class PenWatch:
    """Which pens are connected on which link, their batteries, and how many dots came in."""

    pens: dict[str, PenState] = field(default_factory=dict)  # link -> pen
    dots: int = 0

    def observe(self, link: str, events: list[Event]) -> None:
        for event in events:
            if type(event) is Dot or isinstance(event, LatticeFrame):
                self.dots += 1
            elif isinstance(event, PenInfo):
                self.pens[link] = PenState(event.pen_id)
            elif isinstance(event, PenStatus | Battery):
                pen = self.pens.get(link)
                if pen is not None:
                    pen.battery_percent = (
                        event.battery_percent if isinstance(event, PenStatus) else event.percent
                    )
            elif isinstance(event, LinkLost | PowerOff):
                self.pens.pop(link, None)

    def forget(self, link: str) -> None:
        self.pens.pop(link, None)


def rss_mb() -> float:
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
        return resident_pages * _PAGE_BYTES / 2**20
    except (OSError, IndexError, ValueError):
        # Not Linux: the peak is the best there is.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class Rates:
    """Per-second rates of counters between two samples."""

    _last: dict[str, float] = field(default_factory=dict)
    _at: float | None = None

    def sample(self, now: float, **counters: float) -> dict[str, float]:
        elapsed = now - self._at if self._at is not None else 0.0
        rates = {
            name: max(0.0, (value - self._last.get(name, value)) / elapsed) if elapsed > 0 else 0.0
            for name, value in counters.items()
        }
        self._last, self._at = dict(counters), now
        return rates


@dataclass
class Heartbeats:
    site_id: str
    gateway_id: str
    software_version: str
    interval_s: float
    outbox: Outbox
    pens: PenWatch
    answers: Callable[[], int]
    config_version: Callable[[], int | None]
    config_rejected: Callable[[], tuple[int | None, str] | None]
    publish: Callable[[bytes], object]
    clock: Callable[[], float] = time.monotonic
    last: dict | None = None  # the last heartbeat built, for /metrics

    def __post_init__(self) -> None:
        self._started = self.clock()
        self._due = self._started  # the first one at once: central learns the versions early
        self._rates = Rates()
        self._rates.sample(self._started, dots=0, answers=0, cpu=cpu_seconds())

    def request_now(self) -> None:
        self._due = self.clock()

    def tick(self) -> bool:
        now = self.clock()
        if now < self._due:
            return False
        self._due = now + self.interval_s
        self.last = self.build(now)
        self.publish(json.dumps(self.last, separators=(",", ":")).encode())
        return True

    def build(self, now: float) -> dict:
        rates = self._rates.sample(
            now, dots=self.pens.dots, answers=self.answers(), cpu=cpu_seconds()
        )
        rejected = self.config_rejected()
        return {
            "schema": "classink.heartbeat.v1",
            "site_id": self.site_id,
            "gateway_id": self.gateway_id,
            "at": now_rfc3339(),
            "interval_s": self.interval_s,
            "uptime_s": round(now - self._started, 1),
            "software_version": self.software_version,
            "config_version": self.config_version(),
            "config_rejected": (
                None if rejected is None else {"version": rejected[0], "reason": rejected[1]}
            ),
            "pens": [
                {"pen_id": p.pen_id, "battery_percent": p.battery_percent}
                for p in self.pens.pens.values()
            ],
            "outbox": {
                "depth": self.outbox.depth(),
                "bytes": self.outbox.bytes,
                "max_bytes": self.outbox.max_bytes,
                "pressure": str(self.outbox.pressure),
            },
            "rates": {
                "dots_per_s": round(rates["dots"], 2),
                "answers_per_s": round(rates["answers"], 3),
            },
            "cpu_percent": round(100 * rates["cpu"], 1),
            "rss_mb": round(rss_mb(), 1),
        }
