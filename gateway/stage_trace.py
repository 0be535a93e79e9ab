"""Per-answer stage times, for finding where an answer's latency goes (bench/classroom.py).

Off unless the gateway's `stage_trace` setting names a file. Each answer gets one JSON line once the
broker acknowledged it: its event id and the wall-clock times (time.time(), seconds) at which it was
finalised (answer closed), committed to the outbox, handed to the MQTT client, and acknowledged.
The pipeline thread reports the first two, the uplink thread the others, hence the lock.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson


class StageTrace:
    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - open for the gateway's lifetime
        self._open: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def stored(self, event_id: str, final: float, committed: float) -> None:
        with self._lock:
            self._open.setdefault(event_id, {}).update(final=final, committed=committed)

    def published(self, event_id: str) -> None:
        at = time.time()
        with self._lock:
            self._open.setdefault(event_id, {})["published"] = at

    def acknowledged(self, event_id: str, at: float) -> None:
        with self._lock:
            stages = self._open.pop(event_id, {})
            # Only answers whose every stage this run saw (not rows left by an earlier run).
            if {"final", "committed", "published"} <= stages.keys():
                self._file.write(orjson.dumps({"event_id": event_id, **stages, "acked": at}))
                self._file.write(b"\n")

    def close(self) -> None:
        with self._lock:
            self._file.close()
