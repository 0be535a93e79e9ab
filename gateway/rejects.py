"""Counted, logged rejections: bad input is never silent and never crashes the gateway."""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("gateway.rejects")

LOG_FIRST = 5  # per reason; after that, every LOG_EVERY-th, so a noisy pen cannot flood the log
LOG_EVERY = 100


class Rejects:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def record(self, reason: str, detail: str) -> None:
        self.counts[reason] += 1
        n = self.counts[reason]
        if n <= LOG_FIRST or n % LOG_EVERY == 0:
            log.warning("rejected (%s, #%d): %s", reason, n, detail)
