"""The durable outbox: every event is on disk before anything else happens to it.

SQLite in WAL mode with synchronous=FULL, so a committed event survives a power cut. Rows are
removed only when the broker has acknowledged the message that carried them (see uplink.py); the
sequence counter lives in the same database and advances in the same transaction as the insert, so a
crash can neither reuse a sequence number nor skip one.

The same database remembers which of a pen's offline strokes are settled (pen-wire.md §3.7): marked
in the transaction that appends the answer carrying them, so a pen is asked to delete a stroke only
once it is on disk here, and a stroke fetched twice is used once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 1);
CREATE TABLE IF NOT EXISTS offline_settled (
    pen_id TEXT NOT NULL,
    stroke_key TEXT NOT NULL,
    PRIMARY KEY (pen_id, stroke_key)
) WITHOUT ROWID;
"""

OfflineStrokeId = tuple[str, str]  # pen id, OfflineStroke.key


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    event_id: str
    topic: str
    payload: bytes


class Outbox:
    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection shared under a lock: the pipeline thread appends, the uplink thread reads
        # and deletes, and SQLite serialises writers anyway.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        self._added = threading.Condition()

    def append(
        self,
        topic: str,
        build: Callable[[int, str], dict],
        settles: Iterable[OfflineStrokeId] = (),
    ) -> OutboxRow:
        """Store one event; `build(seq, event_id)` makes its payload inside the transaction, and
        the offline strokes it carries are marked settled in the same transaction."""
        event_id = str(uuid.uuid4())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (seq,) = self._db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
                payload = json.dumps(build(seq, event_id), separators=(",", ":")).encode()
                self._db.execute(
                    "INSERT INTO outbox (seq, event_id, topic, payload) VALUES (?, ?, ?, ?)",
                    (seq, event_id, topic, payload),
                )
                self._db.execute("UPDATE meta SET value = ? WHERE key='next_seq'", (seq + 1,))
                self._insert_settled(settles)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        with self._added:
            self._added.notify_all()
        return OutboxRow(seq, event_id, topic, payload)

    def settle(self, strokes: Iterable[OfflineStrokeId]) -> None:
        """Mark offline strokes settled that no event carries (the pipeline dropped them)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._insert_settled(strokes)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def settled(self, pen_id: str, keys: Iterable[str]) -> set[str]:
        """Which of these offline strokes of the pen are settled already."""
        wanted = list(keys)
        found: set[str] = set()
        with self._lock:
            for i in range(0, len(wanted), 500):  # SQLite caps the number of parameters
                batch = wanted[i : i + 500]
                marks = ",".join("?" * len(batch))
                found.update(
                    k
                    for (k,) in self._db.execute(
                        "SELECT stroke_key FROM offline_settled"
                        f" WHERE pen_id = ? AND stroke_key IN ({marks})",
                        (pen_id, *batch),
                    )
                )
        return found

    def _insert_settled(self, strokes: Iterable[OfflineStrokeId]) -> None:
        self._db.executemany(
            "INSERT OR IGNORE INTO offline_settled (pen_id, stroke_key) VALUES (?, ?)", strokes
        )

    def pending(self, after_seq: int, limit: int) -> list[OutboxRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, topic, payload FROM outbox"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [OutboxRow(*r) for r in rows]

    def remove(self, seqs: Iterable[int]) -> None:
        batch = [(s,) for s in seqs]
        if not batch:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", batch)
            self._db.execute("COMMIT")

    def depth(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def wait_for_new(self, timeout: float) -> None:
        with self._added:
            self._added.wait(timeout)

    def close(self) -> None:
        with self._lock:
            self._db.close()
