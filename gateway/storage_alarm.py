"""When a failing disk is worth a log line: at once, then at most every few seconds.

A full disk fails every write, and the pipeline (per stroke) and the uplink (per removal) would
otherwise log a line each time; operators need to see it loudly, not be flooded by it.
"""

from __future__ import annotations

import time

EVERY_S = 2.0


class StorageAlarm:
    def __init__(self, every_s: float = EVERY_S) -> None:
        self._every_s = every_s
        self._next_at = 0.0

    def due(self, now: float | None = None) -> bool:
        """True for the first failure and then for at most one failure every `every_s`."""
        now = time.monotonic() if now is None else now
        if now < self._next_at:
            return False
        self._next_at = now + self._every_s
        return True
