"""The durable outbox: every event is on disk before anything else happens to it.

SQLite in WAL mode with synchronous=FULL, so a committed event survives a power cut. Rows are
removed only when the broker has acknowledged the message that carried them (see uplink.py); the
sequence counter lives in the same database and advances in the same transaction as the insert, so a
crash can neither reuse a sequence number nor skip one.

The same database remembers which of a pen's offline strokes are settled (pen-wire.md §3.7): marked
in the transaction that appends the answer carrying them, so a pen is asked to delete a stroke only
once it is on disk here, and a stroke fetched twice is used once.

It also keeps, per answer box, the revision and strokes of the latest answer appended
(`AnsweredBox`, in the same transaction), so that a restarted gateway numbers the next revision
on (answers.py), and the student id each pen wrote on each page, so that the page's later answers
are still that student's.

The outbox is bounded (`max_bytes`, payload bytes waiting for the broker) by a policy that never
drops a scored answer (protocol_specs/mqtt.md, "Outbox bound"):

* below HIGH_SHARE of the bound everything is stored;
* from HIGH_SHARE on, new telemetry (anything that is not an answer) is refused;
* at the bound the outbox is FULL: pens' offline memory is no longer fetched into it
  (`hold_back_offline`), so those strokes stay on the pens, which delete nothing until told to.
  Answers from live writing are still stored, since the pen keeps no other copy of them;
  the bound is there to be noticed (log, metric, heartbeat, central alert) long before the disk is.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass
from enum import StrEnum
from pathlib import Path

import orjson

from firmware_bridge.events import Event
from firmware_bridge.session import OfflineBatch

log = logging.getLogger(__name__)

NUMPY = orjson.OPT_SERIALIZE_NUMPY  # numpy scalars in a payload are written as numbers
HIGH_SHARE = 0.8  # of max_bytes: from here on, telemetry is refused
ANSWER = "answer"
TELEMETRY = "telemetry"

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
CREATE TABLE IF NOT EXISTS stroke_journal (
    id INTEGER PRIMARY KEY,
    pen_id TEXT NOT NULL,
    stroke_key TEXT NOT NULL,
    stroke BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS stroke_journal_key ON stroke_journal (pen_id, stroke_key);
CREATE TABLE IF NOT EXISTS answered_boxes (
    pen_id TEXT NOT NULL,
    address TEXT NOT NULL,
    question_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    written_at REAL NOT NULL,
    strokes BLOB NOT NULL,
    PRIMARY KEY (pen_id, address, question_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS written_ids (
    pen_id TEXT NOT NULL,
    address TEXT NOT NULL,
    student_id TEXT NOT NULL,
    PRIMARY KEY (pen_id, address)
) WITHOUT ROWID;
"""

OfflineStrokeId = tuple[str, str]  # pen id, OfflineStroke.key


class Pressure(StrEnum):
    OK = "ok"
    HIGH = "high"  # telemetry refused
    FULL = "full"  # pens' offline memory left on the pens as well


class OutboxFull(Exception):
    """A telemetry event refused because the outbox is nearly full; answers are never refused."""


@dataclass
class OutboxCounts:
    refused_telemetry: int = 0
    held_offline_batches: int = 0
    times_full: int = 0


@dataclass(frozen=True)
class AnsweredBox:
    """The latest answer appended for one box: `strokes` as stroke_journal.encode_many."""

    pen_id: str
    address: str
    question_id: str
    revision: int
    written_at: float
    strokes: bytes


@dataclass(frozen=True)
class Pending:
    """An answer to append: its payload is built inside the transaction that numbers it."""

    topic: str
    build: Callable[[int, str], dict]
    settles: Iterable[OfflineStrokeId] = ()
    unjournal: Iterable[int] = ()
    box: AnsweredBox | None = None


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    event_id: str
    topic: str
    payload: bytes


class Outbox:
    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"outbox max_bytes must be positive, not {max_bytes}")
        self.max_bytes = max_bytes
        self.counts = OutboxCounts()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection shared under a lock: the pipeline thread appends, the uplink thread reads
        # and deletes, and SQLite serialises writers anyway.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            (stored,) = self._db.execute("SELECT TOTAL(LENGTH(payload)) FROM outbox").fetchone()
        self._bytes = int(stored)
        self._pressure = Pressure.OK
        self._added = threading.Condition()
        self._note_pressure()

    def append(
        self,
        topic: str,
        build: Callable[[int, str], dict],
        settles: Iterable[OfflineStrokeId] = (),
        kind: str = ANSWER,
        unjournal: Iterable[int] = (),
    ) -> OutboxRow:
        """Store one event; `build(seq, event_id)` makes its payload inside the transaction, and
        the offline strokes it carries are marked settled in the same transaction.

        Raises OutboxFull for telemetry (kind != ANSWER) once the outbox is under pressure."""
        if kind != ANSWER and self._pressure is not Pressure.OK:
            self.counts.refused_telemetry += 1
            raise OutboxFull(f"outbox {self._pressure}: telemetry refused, answers kept")
        return self.append_many([Pending(topic, build, settles, unjournal)])[0]

    def append_many(self, events: list[Pending]) -> list[OutboxRow]:
        """Store events in one transaction (one fsync for a poll round's answers), in order, each
        with its offline strokes settled and its journaled strokes deleted; all or none."""
        rows: list[OutboxRow] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (seq,) = self._db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
                for event in events:
                    event_id = str(uuid.uuid4())
                    payload = orjson.dumps(event.build(seq, event_id), option=NUMPY)
                    self._db.execute(
                        "INSERT INTO outbox (seq, event_id, topic, payload) VALUES (?, ?, ?, ?)",
                        (seq, event_id, event.topic, payload),
                    )
                    self._insert_settled(event.settles)
                    self._delete_journaled(event.unjournal)
                    if event.box is not None:
                        self._db.execute(
                            "INSERT OR REPLACE INTO answered_boxes VALUES (?, ?, ?, ?, ?, ?)",
                            astuple(event.box),
                        )
                    rows.append(OutboxRow(seq, event_id, event.topic, payload))
                    seq += 1
                self._db.execute("UPDATE meta SET value = ? WHERE key='next_seq'", (seq,))
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._bytes += sum(len(r.payload) for r in rows)
            self._note_pressure()
        with self._added:
            self._added.notify_all()
        return rows

    def answered_boxes(self) -> list[AnsweredBox]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM answered_boxes").fetchall()
        return [AnsweredBox(*row) for row in rows]

    def forget_box_strokes(self, before: float) -> None:
        """Empty the strokes of boxes last answered before `before` (wall clock); the revisions
        stay, a few dozen bytes per box."""
        with self._lock:
            self._db.execute(
                "UPDATE answered_boxes SET strokes = x'' WHERE written_at < ? AND strokes != x''",
                (before,),
            )

    def remember_written_id(self, pen_id: str, address: str, student_id: str) -> None:
        """The student id a pen wrote on a page (read from its student_id box)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO written_ids VALUES (?, ?, ?)", (pen_id, address, student_id)
            )

    def written_ids(self) -> dict[tuple[str, str], str]:
        with self._lock:
            rows = self._db.execute("SELECT pen_id, address, student_id FROM written_ids")
            return {(pen, address): student for pen, address, student in rows}

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

    def rows(self, seqs: list[int]) -> list[OutboxRow]:
        """These rows (those still in the outbox), in seq order."""
        marks = ",".join("?" * len(seqs))
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, topic, payload FROM outbox"
                f" WHERE seq IN ({marks}) ORDER BY seq",
                seqs,
            ).fetchall()
        return [OutboxRow(*r) for r in rows]

    def remove(self, seqs: Iterable[int]) -> None:
        wanted = list(seqs)
        if not wanted:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            freed = 0
            try:
                for i in range(0, len(wanted), 500):  # SQLite caps the number of parameters
                    batch = wanted[i : i + 500]
                    marks = ",".join("?" * len(batch))
                    freed += sum(
                        size
                        for (size,) in self._db.execute(
                            f"DELETE FROM outbox WHERE seq IN ({marks}) RETURNING LENGTH(payload)",
                            batch,
                        )
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._bytes -= freed
            self._note_pressure()

    # -- the bound ------------------------------------------------------------------------------

    @property
    def bytes(self) -> int:
        """Payload bytes waiting for the broker."""
        return self._bytes

    @property
    def pressure(self) -> Pressure:
        return self._pressure

    def fill_ratio(self) -> float:
        return self._bytes / self.max_bytes if self.max_bytes else 0.0

    def hold_back_offline(self, events: list[Event]) -> list[Event]:
        """While FULL, offline batches are not taken in: never reported durable, the pen keeps
        their pages and hands them over again on a later connection."""
        if self._pressure is not Pressure.FULL:
            return events
        kept = [e for e in events if not isinstance(e, OfflineBatch)]
        if len(kept) != len(events):
            self.counts.held_offline_batches += len(events) - len(kept)
            log.error(
                "OUTBOX FULL: left %d offline batch(es) on the pen; they are fetched again later",
                len(events) - len(kept),
            )
        return kept

    def _note_pressure(self) -> None:
        """Called with the lock held (or before the outbox is shared)."""
        ratio = self.fill_ratio()
        now = Pressure.FULL if ratio >= 1 else Pressure.HIGH if ratio >= HIGH_SHARE else Pressure.OK
        before, self._pressure = self._pressure, now
        if now is before:
            return
        if now is Pressure.FULL:
            self.counts.times_full += 1
            log.error(
                "OUTBOX FULL: %d of %d bytes wait for the broker; pens keep their offline memory, "
                "telemetry is refused, answers are still stored",
                self._bytes,
                self.max_bytes,
            )
        elif now is Pressure.HIGH:
            log.warning(
                "outbox at %.0f%% of its bound: telemetry is refused until the broker catches up",
                100 * ratio,
            )
        else:
            log.info("outbox back under %.0f%% of its bound", 100 * HIGH_SHARE)

    # -- the stroke journal (gateway/stroke_journal.py) --------------------------------------------

    def journal(self, strokes: list[tuple[str, str, bytes]]) -> list[int]:
        """Store finished strokes (pen id, stroke key, encoded stroke) in one transaction; their
        rows go in the transaction that appends the answer carrying them (`unjournal`)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                ids = [
                    self._db.execute(
                        "INSERT INTO stroke_journal (pen_id, stroke_key, stroke) VALUES (?, ?, ?)",
                        row,
                    ).lastrowid
                    for row in strokes
                ]
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return ids

    def journaled(self) -> list[tuple[int, bytes]]:
        with self._lock:
            return self._db.execute("SELECT id, stroke FROM stroke_journal ORDER BY id").fetchall()

    def journaled_keys(self, pen_id: str, keys: Iterable[str]) -> set[str]:
        wanted = list(keys)
        found: set[str] = set()
        with self._lock:
            for i in range(0, len(wanted), 500):
                batch = wanted[i : i + 500]
                marks = ",".join("?" * len(batch))
                found.update(
                    k
                    for (k,) in self._db.execute(
                        "SELECT stroke_key FROM stroke_journal"
                        f" WHERE pen_id = ? AND stroke_key IN ({marks})",
                        (pen_id, *batch),
                    )
                )
        return found

    def unjournal(self, ids: Iterable[int], settles: Iterable[OfflineStrokeId] = ()) -> None:
        """Forget journaled strokes that no answer will carry (the pipeline dropped them)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._delete_journaled(ids)
                self._insert_settled(settles)
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _delete_journaled(self, ids: Iterable[int]) -> None:
        self._db.executemany("DELETE FROM stroke_journal WHERE id = ?", [(i,) for i in ids])

    def _rollback(self) -> None:
        # SQLite may have rolled back by itself (a full disk, say): a second ROLLBACK would raise
        # and hide the error that matters.
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def depth(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def wait_for_new(self, timeout: float) -> None:
        with self._added:
            self._added.wait(timeout)

    def close(self) -> None:
        with self._lock:
            self._db.close()
