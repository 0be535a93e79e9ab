"""The gateway's conversation with one pen, sans-I/O: what to send when, and what to pass on.

PenConnection turns bytes into events; PenSession decides the requests (pen-wire.md §3.5, §3.6):
handshake, password, status, the pen's clock, real-time streaming of every note, then the offline
strokes, note by note, each note's strokes handed on as one OfflineBatch. The pen's real-time
events are held while offline strokes are being fetched and released after them, so that strokes
reach the pipeline in the order they were written. A batch's pages are deleted from the pen only
when the caller reports the batch durable (`batch_durable`), never earlier.

Time comes in as `now` (seconds, any monotonic clock); bytes go out through `data_to_send`. The
session also notices a pen that has gone silent (out of range behind a USB dongle, say): it asks
for the pen's status, and if that goes unanswered too it treats the link as lost and goes back to
offering the handshake until the pen answers again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto

from firmware_bridge import protocol as p
from firmware_bridge.events import (
    Acknowledged,
    CommandFailed,
    Dot,
    Event,
    NoteId,
    OfflineChunk,
    OfflineChunkRejected,
    OfflineDataStart,
    OfflineNoteList,
    OfflinePageList,
    OfflineStroke,
    PasswordResult,
    PenInfo,
    PenStatus,
    Rejected,
    SettingChanged,
)


@dataclass(frozen=True)
class OfflineBatch:
    """Every verified offline stroke of one note's fetched pages, in the order the pen sent them."""

    batch_id: int
    note: NoteId
    pages: tuple[int, ...]
    strokes: tuple[OfflineStroke, ...]


@dataclass(frozen=True)
class MemoryDrained:
    """Every note the pen listed at this connection has been fetched (or refused): the pen's
    real-time events follow. The gateway uses it to put a restart's strokes in writing order."""


@dataclass(frozen=True)
class LinkLost:
    """The session gave up on a silent pen; what it had of an open stroke was closed before this."""

    silent_s: float


@dataclass(frozen=True)
class SessionTimes:
    """How long the session waits; tests scale these down with the simulated pens' clocks."""

    retry_s: float = 2.0  # between handshake offers, and before asking a request again
    silence_s: float = 5.0  # quiet this long while connected: ask for the status
    lost_s: float = 5.0  # and quiet this much longer: the link is lost
    stall_s: float = 5.0  # no chunk this long: ask for the note's data again (> pen ack timeout)


class _State(Enum):
    HANDSHAKE = auto()
    PASSWORD = auto()
    STATUS = auto()
    USING_NOTES = auto()
    LISTING = auto()
    PAGES = auto()
    FETCHING = auto()
    ONLINE = auto()
    REFUSED = auto()  # the pen wants a password we do not have, or refused ours


# Responses the session consumes; everything else goes on to the caller.
_CONVERSATION = (
    PasswordResult,
    PenStatus,
    SettingChanged,
    Acknowledged,
    CommandFailed,
    OfflineNoteList,
    OfflinePageList,
    OfflineDataStart,
    OfflineChunk,
    OfflineChunkRejected,
)


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def no_password(_pen_id: str) -> str | None:
    return None


@dataclass
class PenSession:
    app_version: str
    password_for: Callable[[str], str | None] = no_password  # the pen registry's, by pen id
    times: SessionTimes = field(default_factory=SessionTimes)
    clock_ms: Callable[[], int] = wall_clock_ms

    def __post_init__(self) -> None:
        self.connection = p.PenConnection()
        self._out = bytearray()
        self._state = _State.HANDSHAKE
        self._asked: bytes = b""
        self._asked_at = 0.0
        self._heard_at = 0.0
        self._status_asked = False
        self._held: list[Event] = []
        self._notes: list[NoteId] = []
        self._pages: tuple[int, ...] = ()
        self._fetched: list[OfflineStroke] = []
        self._accepted: set[int] = set()
        self._next_batch = 0
        self._open_batches: dict[int, OfflineBatch] = {}

    @property
    def online(self) -> bool:
        return self._state is _State.ONLINE

    @property
    def pen_info(self) -> PenInfo | None:
        return self.connection.pen_info

    def connect(self, now: float) -> None:
        """The link is up (port open, GATT subscribed): offer the handshake."""
        self.connection = p.PenConnection()
        self._restart(now)

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        self._heard_at, self._status_asked = now, False
        out: list[Event] = []
        online = self._state is _State.ONLINE
        for event in self.connection.receive_data(data):
            if online and type(event) is Dot:  # the bulk of a streaming pen's events
                out.append(event)
            else:
                self._on_event(event, now, out)
                online = self._state is _State.ONLINE
        return out

    def tick(self, now: float) -> list[Event]:
        """Timers: handshake offers, unanswered requests, and a pen gone silent."""
        if self._state is _State.REFUSED:
            return []  # a pen that refused us is left alone until its link is opened again
        if self._state is _State.HANDSHAKE:
            if now - self._asked_at >= self.times.retry_s:
                self._ask(self._asked, now)
            return []
        silent = now - self._heard_at
        if silent >= self.times.silence_s + self.times.lost_s:
            return self._lose(now, silent)
        if silent >= self.times.silence_s and not self._status_asked:
            self._status_asked = True
            self._out += p.status_request()
        patience = self.times.stall_s if self._state is _State.FETCHING else self.times.retry_s
        if self._asked and now - self._asked_at >= patience:
            self._ask(self._asked, now)
        return []

    def close(self) -> list[Event]:
        """The link went away: close what was open; held events are passed on, not dropped."""
        out = self._release() + self.connection.close()
        self._state = _State.HANDSHAKE
        self._open_batches.clear()
        return out

    def batch_durable(self, batch_id: int) -> None:
        """Every stroke of the batch is settled in the outbox: the pen may now delete its pages."""
        batch = self._open_batches.pop(batch_id, None)
        if batch is not None and batch.pages:
            self._out += p.offline_delete_pages_request(batch.note, batch.pages)

    # -- the conversation ------------------------------------------------------------------------

    def _restart(self, now: float) -> None:
        self._state = _State.HANDSHAKE
        self._open_batches.clear()  # a new connection re-lists: old batches are fetched again
        self._heard_at = now
        self._ask(p.version_request(self.app_version), now)

    def _ask(self, request: bytes, now: float) -> None:
        """Send a request whose answer the session waits for, asking again after retry_s."""
        self._asked, self._asked_at = request, now
        self._out += request

    def _answered(self) -> None:
        self._asked = b""

    def _lose(self, now: float, silent: float) -> list[Event]:
        out = self._release() + self.connection.close()
        out.append(LinkLost(silent))
        self.connection = p.PenConnection()
        self._restart(now)
        return out

    def _on_event(self, event: Event, now: float, out: list[Event]) -> None:
        if isinstance(event, PenInfo):
            out.append(event)
            self._answered()
            self._held, self._state = [], _State.STATUS
            self._ask(p.status_request(), now)
            return
        if isinstance(event, _CONVERSATION):
            self._converse(event, now, out)
            return
        if self._state is _State.ONLINE:
            out.append(event)
        else:
            self._held.append(event)

    def _converse(self, event: Event, now: float, out: list[Event]) -> None:
        match event:
            case PenStatus() if self._state is _State.STATUS:
                self._answered()
                password = self.password_for(self.connection.pen_info.pen_id)
                if not event.locked:
                    self._start_streaming(now)
                elif password is None:
                    out.append(Rejected("password_required", "the pen is locked; no password"))
                    self._state = _State.REFUSED
                else:
                    self._state = _State.PASSWORD
                    self._ask(p.password_request(password), now)
            case PasswordResult() if self._state is _State.PASSWORD:
                self._answered()
                if event.accepted:
                    self._start_streaming(now)
                else:
                    # Never guess again: a pen locks itself after max_retries wrong passwords.
                    out.append(Rejected("password_refused", f"{event.retries} tries so far"))
                    self._state = _State.REFUSED
            case Acknowledged(request=p.USING_NOTES) if self._state is _State.USING_NOTES:
                self._state = _State.LISTING
                self._ask(p.offline_note_list_request(), now)
            case OfflineNoteList() if self._state is _State.LISTING:
                self._notes = sorted(set(event.notes))
                self._next_note(now, out)
            case OfflinePageList() if self._state is _State.PAGES:
                self._pages, self._fetched, self._accepted = tuple(event.pages), [], set()
                self._state = _State.FETCHING
                self._ask(p.offline_data_request(event.note, event.pages), now)
            case OfflineDataStart() if self._state is _State.FETCHING:
                # The data request stays asked until the last chunk, so that a transfer the pen
                # gives up on is asked for again; the pen then sends the same chunks under the
                # same ids (§3.6), and those already accepted are acknowledged, not used again.
                self._asked_at = now
                if event.strokes == 0:
                    self._notes.pop(0)
                    self._next_note(now, out)
            case OfflineChunk() if self._state is _State.FETCHING:
                self._on_chunk(event, now, out)
            case OfflineChunkRejected() if self._state is _State.FETCHING:
                self._asked_at = now  # the transfer is alive, if damaged
                self._out += p.offline_chunk_ack(event.packet_id, accepted=False)
            case CommandFailed(request=p.OFFLINE_PAGE_LIST | p.OFFLINE_DATA):
                if self._state in (_State.PAGES, _State.FETCHING):
                    out.append(Rejected("offline_refused", f"pen refused 0x{event.request:02x}"))
                    self._notes.pop(0)
                    self._next_note(now, out)
            case OfflineChunk():
                # A chunk re-sent after the transfer ended (its ack was lost): ack it again.
                self._out += p.offline_chunk_ack(event.packet_id, accepted=True)

    def _start_streaming(self, now: float) -> None:
        self._out += p.set_clock_request(self.clock_ms())
        self._state = _State.USING_NOTES
        self._ask(p.using_notes_request(), now)

    def _on_chunk(self, chunk: OfflineChunk, now: float, out: list[Event]) -> None:
        self._asked_at = now  # the transfer is alive: do not ask for the data again
        self._out += p.offline_chunk_ack(chunk.packet_id, accepted=True)
        if chunk.packet_id in self._accepted:
            return  # our ack was lost and the pen sent it again: its strokes are already here
        self._accepted.add(chunk.packet_id)
        self._fetched += chunk.strokes
        if chunk.last:
            self._answered()
            batch = OfflineBatch(
                self._next_batch, self._notes[0], self._pages, tuple(self._fetched)
            )
            self._next_batch += 1
            self._open_batches[batch.batch_id] = batch
            out.append(batch)
            self._notes.pop(0)
            self._next_note(now, out)

    def _next_note(self, now: float, out: list[Event]) -> None:
        """Fetch the note at the head of the queue, or, with none left, go online."""
        if self._notes:
            self._state = _State.PAGES
            self._ask(p.offline_page_list_request(self._notes[0]), now)
            return
        self._answered()
        self._state = _State.ONLINE
        out.append(MemoryDrained())
        out += self._release()

    def _release(self) -> list[Event]:
        held, self._held = self._held, []
        return held
